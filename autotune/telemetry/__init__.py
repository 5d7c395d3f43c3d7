"""Telemetry: eBPF collectors (bcc) and the /proc fallback, producing one Sample per interval."""
