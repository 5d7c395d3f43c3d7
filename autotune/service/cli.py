"""`autotune tune --follow`: the command line's way into the service."""

from __future__ import annotations

from autotune import config
from autotune.errors import UserError


def follow_slice(
    model: str,
    *,
    follow: bool,
    cgroup: str | None,
    pid: int | None,
    command: tuple[str, ...],
    interval_ms: int | None,
    tracking_uri: str | None,
    dry_run: bool,
    devices: tuple[str, ...],
    metrics_port: int | None,
    config_file: str | None,
) -> int:
    """Check the options of service mode, then run the service until it is stopped."""
    from autotune.service.run import ServiceRequest, run_service

    if not follow:
        raise UserError("--metrics-port serves the service's metrics: add --follow")
    if cgroup is None or pid is not None or command:
        raise UserError("--follow and --metrics-port tune a slice: give --cgroup PATH|SLICE only")
    settings = config.load(
        {"tracking_uri": tracking_uri, "tune_interval_ms": interval_ms}, config_file
    )
    req = ServiceRequest(
        model=model,
        cgroup=cgroup,
        dry_run=dry_run,
        devices=list(devices),
        metrics_port=metrics_port,
    )
    return run_service(req, settings)
