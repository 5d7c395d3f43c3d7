"""A tracked run: what training, evaluation and tuning log through.

Every call writes to the run's local spool first (a file append, microseconds) and a background
thread uploads about once a second, so logging never waits on the network. When the store does
not answer, the run carries on spooling; the person is told once, in one line, how to upload it;
the thread tries again every :data:`RETRY_INTERVAL_S` and once more when the run ends. What is
still not uploaded then stays in the spool for ``autotune sync``.

Example::

    with tracked_run("train", name="ppo-seed0", params={"lr": 3e-4}) as run:
        run.log_metrics({"train/episode_reward": 1.5}, step=2048)
        run.log_policy(Path("out/policy"))
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.tracking import store
from autotune.tracking.context import standard_tags
from autotune.tracking.schema import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    POLICY_ARTIFACT,
    POLICY_MODEL_NAME,
    SPOOL_DIR,
)
from autotune.tracking.spool import Spool, now_ms
from autotune.tracking.upload import Unreachable, describe, fully_uploaded, upload

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

FLUSH_INTERVAL_S = 1.0  # how often the uploader sends what has been logged
READY = "ready"  # made in the spool by an upload process once it has loaded the MLflow client
RETRY_INTERVAL_S = 15.0  # how often it tries a store that did not answer
END_TIMEOUT_S = 20.0  # the most a run's end waits for its last upload
START_PROBE_S = 2.0  # the most a run's start waits to learn whether the server answers


_TOLD: set[tuple[str, Callable[[str], None]]] = set()
_TOLD_LOCK = threading.Lock()


def _relay(fd: int) -> None:
    """Pass what the upload process writes to ``fd`` on to this process's stderr, while this
    process lives. The upload process never holds the person's stderr itself: a shell pipe
    (`autotune tune … | tee log`), or a caller reading the command's output to its end, would
    otherwise wait for the upload, seconds after the command exited."""
    out = os.dup(2)  # stderr as it is now (a BPF compile borrows fd 2 for a while later)

    def pump() -> None:
        try:
            while chunk := os.read(fd, 4096):
                os.write(out, chunk)
        except OSError:
            pass
        finally:
            os.close(fd)
            os.close(out)

    threading.Thread(target=pump, name="autotune-follower-stderr", daemon=True).start()


def _stderr_line(message: str) -> None:
    sys.stderr.write(f"autotune: {message}\n")
    sys.stderr.flush()


class TrackedRun:
    """One MLflow run, spooled locally and uploaded in the background.

    Use :func:`tracked_run` rather than making one directly.

    Attributes:
        kind: the run's ``autotune.kind``.
        tracking_uri: where it is uploaded.
        spool: its local spool.
    """

    def __init__(
        self,
        kind: str,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        tracking_uri: str = DEFAULT_TRACKING_URI,
        experiment: str = DEFAULT_EXPERIMENT,
        parent: TrackedRun | str | None = None,
        runs_dir: Path = Path("runs"),
        notify: Callable[[str], None] = _stderr_line,
        retry_interval_s: float = RETRY_INTERVAL_S,
        end_timeout_s: float = END_TIMEOUT_S,
        uploader: str = "thread",
        load_first: bool = False,
        live_upload_s: float | None = None,
    ) -> None:
        self.kind = kind
        self.tracking_uri = store.normalize(tracking_uri)
        self.experiment = experiment
        self.runs_dir = runs_dir
        self._notify = notify
        self._retry_interval_s = retry_interval_s
        self._end_timeout_s = end_timeout_s
        all_tags = {**standard_tags(kind), **{k: str(v) for k, v in (tags or {}).items()}}
        self.spool = Spool.create(runs_dir / SPOOL_DIR, self.tracking_uri, experiment)
        self._run_id: str | None = None
        self._client: MlflowClient | None = None
        self._offline = False
        self._told = False
        self._next_try = 0.0
        self._step = 0
        self._ended = False
        self._upload_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._parent = parent if isinstance(parent, TrackedRun) else None
        parent_id = parent.id if isinstance(parent, TrackedRun) else parent
        self.spool.append(
            {
                "op": "start",
                "t": now_ms(),
                "name": name,
                "experiment": experiment,
                "runs_dir": str(runs_dir.resolve()),
                "tags": all_tags,
                "parent": parent_id,
            }
        )
        if params:
            self.log_params(params)
        self._follower: subprocess.Popen[bytes] | None = None
        self._load_first = load_first and uploader == "process"
        if uploader == "process":
            # Upload from a process of its own (autotune.tracking.follow): this process never
            # loads the MLflow client. The run's id stays the local id here.
            said, say = os.pipe()
            self._follower = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "autotune.tracking.follow",
                    str(self.spool.path),
                    "--retry-s",
                    str(retry_interval_s),
                    *(["--load-first"] if load_first else []),
                    *(["--live-s", str(live_upload_s)] if live_upload_s is not None else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=say,
                start_new_session=True,  # a Ctrl-C of the writer does not cut the upload short
            )
            os.close(say)
            _relay(said)
            return
        # The first upload runs here, so that `id` is MLflow's when the store answers; a
        # server that does not answer a quick health check is not waited for (a host that
        # drops packets would hold each call for the whole HTTP timeout).
        why = None
        if store.is_remote(self.tracking_uri):
            why = store.unhealthy(self.tracking_uri, timeout=START_PROBE_S)
        if why is None:
            self._try_upload(final=False)
        else:
            self._offline = True
            self._next_try = time.monotonic() + self._retry_interval_s
            self._tell(why)
        self._thread = threading.Thread(
            target=self._loop, name=f"autotune-tracking-{self.local_id}", daemon=True
        )
        self._thread.start()

    # -- identity ------------------------------------------------------------------------------

    @property
    def local_id(self) -> str:
        """The spool id (``local-…``), fixed for the run's life."""
        return self.spool.local_id

    @property
    def id(self) -> str:
        """The MLflow run id, or the local spool id until the run is uploaded."""
        return self._run_id or self.local_id

    @property
    def offline(self) -> bool:
        """True while the tracking store is not answering."""
        return self._offline

    # -- logging -------------------------------------------------------------------------------

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Log metrics at ``step`` (default: one more than the last step logged)."""
        if step is None:
            step = self._step
        self._step = int(step) + 1
        clean = {str(k): float(v) for k, v in values.items()}
        self.spool.append({"op": "metrics", "t": now_ms(), "step": int(step), "values": clean})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (hyperparameters; values become strings)."""
        self.spool.append({"op": "params", "values": {str(k): str(v) for k, v in params.items()}})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values become strings)."""
        self.spool.append({"op": "tags", "values": {str(k): str(v) for k, v in tags.items()}})

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Log a file or a folder; it is copied now, so later changes to it are not logged."""
        rel = self.spool.stash(Path(path))
        self.spool.append({"op": "artifact", "src": rel, "path": artifact_path})

    def log_dict(self, obj: Any, name: str) -> None:
        """Log ``obj`` as the JSON artifact ``name`` (``a/b.json`` puts it in folder ``a``)."""
        target = Path(name)
        tmp_dir = self.spool.path / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        tmp = tmp_dir / target.name
        tmp.write_text(json.dumps(obj, indent=2, default=str))
        parent = str(target.parent) if str(target.parent) != "." else None
        self.log_artifact(tmp, parent)
        tmp.unlink()

    def log_policy(self, folder: Path | str) -> None:
        """Log an exported policy folder as the artifact ``policy/`` and as the run's model."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"policy folder {folder} does not exist")
        rel = self.spool.stash(folder)
        self.spool.append({"op": "artifact", "src": rel, "path": POLICY_ARTIFACT})
        self.spool.append({"op": "model", "src": rel, "name": POLICY_MODEL_NAME})

    def wait_uploader(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until the upload process made with ``load_first`` has
        loaded the MLflow client and sent the run's start. True when it has, and at once when
        there is no such process (a thread uploader, or one made without ``load_first``).
        """
        if self._follower is None or not self._load_first:
            return True
        end = time.monotonic() + timeout_s
        while not (self.spool.path / READY).exists():
            if self._follower.poll() is not None or time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True

    # -- ending --------------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        """End the run: one last upload (bounded), then the spool is removed if all went up."""
        if self._ended:
            return
        self._ended = True
        self.spool.append({"op": "end", "t": now_ms(), "status": status})
        if self._follower is not None:
            self.spool.close()
            # Short sessions usually finish uploading here; a longer upload goes on in the
            # follower after this process exits.
            try:
                rc = self._follower.wait(self._end_timeout_s)
            except subprocess.TimeoutExpired:
                self._notify(
                    f"run {self.local_id} is still uploading in the background; what does not go "
                    f"up stays in {self.spool.path} for `autotune sync`"
                )
                return
            if rc != 0 and not self._told:  # it ended with part of the run not uploaded
                self._tell("its last upload did not finish")
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(self._end_timeout_s)
        # An upload still under way after the timeout (a server that stopped answering
        # mid-call) is left to finish or fail on its own: the run does not wait for it.
        idle = self._upload_lock.acquire(timeout=0.1)
        try:
            done = idle and fully_uploaded(self.spool, self.tracking_uri)
            self.spool.close()
            if done and self._run_id:
                self.spool.remove(self._run_id)
        finally:
            if idle:
                self._upload_lock.release()
        if not done and not self._told:
            self._tell("its last upload did not finish in time")

    # -- the uploader --------------------------------------------------------------------------

    def _tell(self, why: str) -> None:
        self._told = True
        # Once per store and listener in this process: an evaluation's dozens of child runs
        # all failing for one reason is still one line.
        key = (self.tracking_uri, self._notify)
        with _TOLD_LOCK:
            if key in _TOLD:
                return
            _TOLD.add(key)
        self._notify(
            f"tracking store {self.tracking_uri}: {why}; runs are kept in "
            f"{self.spool.path.parent} and upload when the store answers again, or later with "
            f"`autotune sync --tracking-uri {self.tracking_uri}`"
        )

    def _try_upload(self, *, final: bool) -> None:
        if self._offline and not final and time.monotonic() < self._next_try:
            return
        if self._parent is not None and self._parent._run_id is None:
            # A child goes up after its parent (it names the parent's MLflow id).
            self._parent._try_upload(final=True)
        with self._upload_lock:
            if not self.spool.path.is_dir():
                return
            try:
                if self._client is None:
                    self._client = store.client(self.tracking_uri)
                result = upload(self.spool, self._client, self.tracking_uri)
            except Exception as e:
                # Never let logging break the run it records: the spool keeps everything.
                self._offline = True
                self._next_try = time.monotonic() + self._retry_interval_s
                if not self._told:
                    self._tell(str(e) if isinstance(e, Unreachable) else describe(e))
                return
            self._offline = False
            if result.run_id:
                self._run_id = result.run_id

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            stopping = self._stopping.is_set()
            self._try_upload(final=stopping)
            if stopping:
                return


@contextmanager
def tracked_run(
    kind: str,
    *,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = DEFAULT_EXPERIMENT,
    parent: TrackedRun | str | None = None,
    runs_dir: Path = Path("runs"),
    **options: Any,
) -> Iterator[TrackedRun]:
    """A run of ``kind`` (train, eval, eval_result, tune, record) for the ``with`` block.

    It ends FINISHED, or FAILED when the block raises (KILLED on Ctrl-C). ``options`` go to
    :class:`TrackedRun` (``notify``, ``retry_interval_s``, ``end_timeout_s``, ``uploader``:
    ``"thread"`` or ``"process"`` (autotune.tracking.follow), and ``load_first``: that process
    loads the MLflow client before anything else, see :meth:`TrackedRun.wait_uploader`;
    ``live_upload_s``: how often that process uploads while the run goes on, 0 only once it has
    ended, None its own default).
    """
    run = TrackedRun(
        kind,
        name=name,
        tags={k: str(v) for k, v in (tags or {}).items()},
        params=params,
        tracking_uri=tracking_uri,
        experiment=experiment,
        parent=parent,
        runs_dir=runs_dir,
        **options,
    )
    status = "FINISHED"
    try:
        yield run
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        run.end(status)
