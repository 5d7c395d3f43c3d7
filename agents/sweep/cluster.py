"""Ray for a sweep: an embedded local one started and stopped here, or an existing cluster.

The embedded Ray is kept small for a shared 2-core node: as many CPUs as asked (default all),
an object store of :data:`OBJECT_STORE_MB` (Ray's minimum is 75 MB; trials pass only a few
numbers through it), no dashboard, no usage reporting, its own temporary folder. It is stopped
when the block ends, however it ends, and any of its processes still alive then (found by that
folder in their command line) are killed, so none outlives the command. Ray's token
authentication stays on, with a token of its own in the environment of this process and
Ray's: Ray's default would write one to
``~/.ray/auth_token``, which outlives the command and which a later `ray start --head` on
the node would pick up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psutil

from autotune.errors import UserError

OBJECT_STORE_MB = 80
AUTH_MODE, AUTH_TOKEN = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"
CONNECT_PROBE_S = 3.0
START_ATTEMPTS = 3  # tries at starting the embedded Ray
# Tries at opening a Ray Client session. The head's client server starts a process per driver
# and gives it 30 s to answer; on a loaded node it may not, and a later try usually gets one.
JOIN_ATTEMPTS, JOIN_PAUSE_S = 3, 2.0
# Ray's chatter we do not want on a person's terminal, and its start-up patience; a
# person's own settings win.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no TensorBoard/CSV/JSON writers per trial
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "100000",
    # Ray waits 30 s for its GCS to publish its port; on a 2-core node at load 15 it took
    # longer and the embedded Ray failed to start ("Failed to start GCS").
    "RAY_gcs_server_port_wait_time_s": "120",
}


@dataclass
class RayInfo:
    """The Ray a sweep runs on.

    Attributes:
        address: what the person gave (None: embedded).
        temp_dir: the embedded Ray's folder (None for a cluster).
        cpus: CPUs the cluster offers.
        nodes: how many live nodes it has.
    """

    address: str | None
    temp_dir: Path | None
    cpus: float
    nodes: int


def quiet() -> None:
    """Set Ray's and Tune's noise-reducing environment variables (a person's own win)."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)


def probe(address: str) -> None:
    """Refuse an address nothing answers on, quickly (Ray itself retries for minutes)."""
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise UserError(f"--address {address!r}: give HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_PROBE_S):
            pass
    except OSError as e:
        raise UserError(
            f"no Ray cluster answers at {address} ({e.strerror or type(e).__name__}); start one "
            "with `ray start --head` or leave out --address for an embedded Ray"
        ) from None


def _ours(temp_dir: Path) -> list[psutil.Process]:
    mark = str(temp_dir)
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if p.pid != os.getpid() and mark in " ".join(p.info["cmdline"] or []):
                found.append(p)
    return found


def processes(temp_dir: Path) -> list[psutil.Process]:
    """The processes of the embedded Ray in ``temp_dir``: the driver's children that are Ray's."""
    me = psutil.Process()
    kids = []
    with contextlib.suppress(psutil.Error):
        kids = me.children(recursive=True)
    seen = {p.pid for p in kids}
    return kids + [p for p in _ours(temp_dir) if p.pid not in seen]


def _kill_leftovers(temp_dir: Path, timeout: float = 10.0) -> None:
    left = _ours(temp_dir)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(left, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=timeout)


@contextlib.contextmanager
def ray_session(address: str | None, *, num_cpus: int | None = None) -> Iterator[RayInfo]:
    """Ray for the ``with`` block: embedded (``address`` None) or the cluster at ``address``.

    Raises:
        UserError: ``address`` does not answer or is not a Ray cluster.
    """
    quiet()
    saved = {k: os.environ.get(k) for k in (AUTH_MODE, AUTH_TOKEN)}
    own_token = address is None and all(v is None for v in saved.values())
    if own_token and "ray" not in sys.modules:
        # Before Ray is imported: it reads its authentication settings once, at import, and a
        # driver that missed them is refused by its own GCS (InvalidAuthToken). Ray's
        # processes inherit the token from this environment, and nothing else sees it.
        os.environ.update({AUTH_MODE: "token", AUTH_TOKEN: secrets.token_hex(32)})
    import logging

    import ray

    if address is not None:
        probe(address)
        for attempt in range(1, JOIN_ATTEMPTS + 1):
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
                break
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
                # Only a session the client server failed to open is worth another try; a
                # wrong address, token or version fails the same way every time.
                again = isinstance(e, ConnectionAbortedError) and attempt < JOIN_ATTEMPTS
                with contextlib.suppress(Exception):
                    ray.shutdown()
                if not again:
                    raise UserError(
                        f"cannot join the Ray cluster at {address}: {join_failure(e)}"
                    ) from None
                time.sleep(JOIN_PAUSE_S * attempt)
        try:
            yield _info(address, None)
        finally:
            ray.shutdown()
        return
    # Unix socket paths must stay short (108 bytes): a short folder directly in /tmp.
    temp_dir = Path(tempfile.mkdtemp(prefix="atray-", dir="/tmp"))
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                ray.init(
                    num_cpus=num_cpus or os.cpu_count() or 1,
                    object_store_memory=OBJECT_STORE_MB * 1024 * 1024,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    _temp_dir=str(temp_dir),
                )
                break
            except Exception as e:
                # Ray gives its raylet a fixed 30 s to register; on a busy node it may not.
                with contextlib.suppress(Exception):
                    ray.shutdown()
                _kill_leftovers(temp_dir)
                if attempt == START_ATTEMPTS:
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    raise UserError(
                        f"the embedded Ray did not start ({START_ATTEMPTS} tries): {first[:200]}"
                    ) from None
        yield _info(None, temp_dir)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        _kill_leftovers(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def join_failure(e: BaseException) -> str:
    """One line on why ``ray.init`` could not join: the reason, not Ray's headline.

    Ray Client reports a session its server could not open as a headline ("Initialization
    failure from server:") followed by the server's whole traceback; the reason is the
    traceback's last line.
    """
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    reason = lines[-1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    return reason[:300]


def _info(address: str | None, temp_dir: Path | None) -> RayInfo:
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    return RayInfo(address=address, temp_dir=temp_dir, cpus=cpus, nodes=len(nodes))


def wait_nodes(count: int, timeout: float = 60.0) -> int:
    """Wait until the cluster has ``count`` live nodes; returns how many it has."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        alive = sum(1 for n in ray.nodes() if n.get("Alive"))
        if alive >= count or time.monotonic() >= deadline:
            return alive
        time.sleep(0.5)
