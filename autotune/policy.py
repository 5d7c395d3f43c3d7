"""Deployed policies: weights (``.npz``) and JSON metadata, run with numpy alone.

A policy folder holds ``policy.json`` and ``weights.npz``. The online tuner loads it without
torch and without pickle (``numpy.load(allow_pickle=False)``), checks that it was trained for
this observation schema and this knob table (a mismatch is a clear error, never a wrong action),
and evaluates the network as a short list of operations:

* ``linear <key>``: ``x @ W.T + b`` with ``<key>/w`` and ``<key>/b`` from the weights;
* ``tanh``, ``relu``: activations;
* ``lstm <key>``: one step of an LSTM cell (PyTorch's gate order i, f, g, o), its state kept
  between calls;
* ``argmax_split``: one argmax per knob over the concatenated logits (MultiDiscrete);
* ``argmax``: one discrete action (DQN: 0 keeps every knob; ``1 + 2i`` lowers knob ``i``,
  ``2 + 2i`` raises it);
* ``box_levels``: ``tanh`` of the mean, mapped from [-1, 1] onto each knob's ladder (SAC, TD3).

Observations from the schema are already in [0, 1]: the metadata records ``normalization:
none``. With ``frame_stack: n`` the input is the last ``n`` observations, oldest first.
"""

from __future__ import annotations

import json
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autotune.errors import UserError
from autotune.features import FEATURE_NAMES, N_FEATURES, SCHEMA_VERSION, knob_levels
from autotune.knobs import KNOB_TABLE_VERSION, KNOBS, default_values

FORMAT = "autotune-policy"
FORMAT_VERSION = 1
META_FILE = "policy.json"
WEIGHTS_FILE = "weights.npz"

F32 = npt.NDArray[np.float32]
LEVELS = np.array([k.levels for k in KNOBS], dtype=np.int64)


def knob_signature() -> list[dict[str, Any]]:
    """The knob table as a policy records it: names and ladders, in order."""
    return [{"name": k.name, "ladder": list(k.ladder)} for k in KNOBS]


@dataclass
class Policy:
    """A loaded policy.

    Attributes:
        path: the folder it came from.
        meta: its metadata.
        weights: its arrays, by key.
    """

    path: Path
    meta: dict[str, Any]
    weights: dict[str, npt.NDArray[np.float32]]

    def __post_init__(self) -> None:
        self.ops: list[list[Any]] = self.meta["ops"]
        self.frame_stack = int(self.meta.get("frame_stack", 1))
        self._frames: deque[F32] = deque(maxlen=self.frame_stack)
        self._lstm: dict[str, tuple[F32, F32]] = {}

    @property
    def algo(self) -> str:
        return str(self.meta.get("algo", "?"))

    @property
    def action_kind(self) -> str:
        return str(self.meta["action"])

    def reset(self) -> None:
        """Forget the frames and recurrent state of the last episode."""
        self._frames.clear()
        self._lstm.clear()

    def _input(self, obs: F32) -> F32:
        if self.frame_stack == 1:
            return obs
        if not self._frames:
            for _ in range(self.frame_stack):
                self._frames.append(obs)
        else:
            self._frames.append(obs)
        return np.concatenate(list(self._frames))

    def decide(self, obs: npt.ArrayLike, current: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The knob levels the policy wants, given the observation and the levels in effect.

        Args:
            obs: one observation of the schema (length ``N_FEATURES``).
            current: the ladder index of every knob now (used by one-step policies).

        Returns:
            A ladder index per knob, in knob-table order.
        """
        x = np.asarray(obs, dtype=np.float32).reshape(-1)
        if x.shape[0] != N_FEATURES:
            raise UserError(f"observation has {x.shape[0]} fields, the schema {N_FEATURES}")
        x = self._input(x)
        cur = np.asarray(current, dtype=np.int64).reshape(-1)
        for op in self.ops:
            kind = op[0]
            if kind == "linear":
                x = x @ self.weights[f"{op[1]}/w"].T + self.weights[f"{op[1]}/b"]
            elif kind == "tanh":
                x = np.tanh(x)
            elif kind == "relu":
                x = np.maximum(x, 0.0)
            elif kind == "lstm":
                x = self._lstm_step(op[1], x)
            elif kind == "argmax_split":
                out, start = np.empty(len(LEVELS), dtype=np.int64), 0
                for i, n in enumerate(LEVELS):
                    out[i] = int(np.argmax(x[start : start + n]))
                    start += n
                return out
            elif kind == "argmax":
                return _step(cur, int(np.argmax(x)))
            elif kind == "box_levels":
                a = np.tanh(x)
                return np.rint((a + 1.0) / 2.0 * (LEVELS - 1)).astype(np.int64)
            else:
                raise UserError(f"{self.path}: unknown operation {kind!r} in the policy")
        raise UserError(f"{self.path}: the policy's operations end without an action")

    def predict(
        self,
        obs: npt.ArrayLike,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[npt.NDArray[np.int64], Any]:
        """SB3's ``predict`` interface: the knob levels wanted, reading the levels in effect
        from the observation itself."""
        if episode_start is not None and bool(np.any(episode_start)):
            self.reset()
        return self.decide(obs, knob_levels(obs)), None

    def _lstm_step(self, key: str, x: F32) -> F32:
        w_ih, w_hh = self.weights[f"{key}/w_ih"], self.weights[f"{key}/w_hh"]
        b = self.weights[f"{key}/b_ih"] + self.weights[f"{key}/b_hh"]
        hidden = w_hh.shape[1]
        h, c = self._lstm.get(key, (np.zeros(hidden, np.float32), np.zeros(hidden, np.float32)))
        gates = w_ih @ x + w_hh @ h + b
        i, f, g, o = np.split(gates, 4)
        sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        self._lstm[key] = (h.astype(np.float32), c.astype(np.float32))
        return h.astype(np.float32)


def _step(current: npt.NDArray[np.int64], action: int) -> npt.NDArray[np.int64]:
    out = current.copy()
    if action > 0:
        i, up = divmod(action - 1, 2)
        out[i] = int(np.clip(out[i] + (1 if up else -1), 0, LEVELS[i] - 1))
    return out


def check_compatible(meta: dict[str, Any], where: str) -> None:
    """Refuse a policy trained for another schema or knob table, in one clear line."""
    if meta.get("format") != FORMAT:
        raise UserError(f"{where} is not an autotune policy (no {FORMAT!r} format marker)")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise UserError(
            f"{where}: policy format {meta.get('format_version')} is newer than this autotune's "
            f"{FORMAT_VERSION}"
        )
    if meta.get("schema_version") != SCHEMA_VERSION or meta.get("feature_names") != list(
        FEATURE_NAMES
    ):
        raise UserError(
            f"{where}: trained for observation schema {meta.get('schema_version')!r}, this "
            f"autotune uses {SCHEMA_VERSION}; retrain or use a matching autotune"
        )
    if (
        meta.get("knob_table_version") != KNOB_TABLE_VERSION
        or meta.get("knobs") != knob_signature()
    ):
        raise UserError(
            f"{where}: trained for knob table {meta.get('knob_table_version')!r}, this autotune "
            f"uses {KNOB_TABLE_VERSION}; retrain or use a matching autotune"
        )


def load(path: str | Path) -> Policy:
    """Load a policy folder (or its ``policy.json``) and check it fits this autotune.

    Raises:
        UserError: missing or unreadable files, foreign or corrupt content, another schema or
            knob table.
    """
    p = Path(path)
    folder = p.parent if p.name == META_FILE else p
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    if not folder.exists():
        raise UserError(f"{folder}: no such policy")
    if not meta_path.is_file() or not weights_path.is_file():
        raise UserError(f"{folder}: not a policy folder (needs {META_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{meta_path}: not valid policy metadata ({e})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: not valid policy metadata (not an object)")
    check_compatible(meta, str(folder))
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            weights = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{weights_path}: corrupt policy weights ({e})") from None
    needed = {f"{op[1]}/{s}" for op in meta.get("ops", []) if op[0] == "linear" for s in "wb"}
    missing = sorted(needed - set(weights))
    if missing or not meta.get("ops"):
        raise UserError(f"{weights_path}: weights missing for {', '.join(missing) or 'the net'}")
    policy = Policy(path=folder, meta=meta, weights=weights)
    try:
        policy.decide(np.zeros(N_FEATURES, np.float32), np.zeros(len(KNOBS), np.int64))
    except (ValueError, KeyError, IndexError) as e:
        raise UserError(f"{folder}: the policy's weights do not fit its network ({e})") from None
    policy.reset()
    return policy


def write_constant(folder: Path, values: dict[str, float]) -> Path:
    """Export a real policy whose network always picks ``values`` (other knobs at the table's
    defaults): one linear layer with zero weights and a bias that is one-hot per knob.

    It runs through the tuner like any policy (warm-up, guard, canaries): the online bench's
    static-best-through-the-tuner arm, and the tests that force what the tuner is asked.
    """
    wanted = default_values()
    wanted.update(values)
    bias = np.concatenate(
        [np.eye(k.levels, dtype=np.float32)[k.index(wanted[k.name])] for k in KNOBS]
    )
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {"c/w": np.zeros((len(bias), N_FEATURES), np.float32), "c/b": bias}
    np.savez(folder / WEIGHTS_FILE, **arrays)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algo": "constant",
        "action": "multidiscrete",
        "schema_version": SCHEMA_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "knob_table_version": KNOB_TABLE_VERSION,
        "knobs": knob_signature(),
        "frame_stack": 1,
        "ops": [["linear", "c"], ["argmax_split"]],
    }
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder
