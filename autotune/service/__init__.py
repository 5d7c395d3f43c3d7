"""The node service: every job under one cgroup or slice tuned by one long-running process.

``autotune tune --model M --cgroup SLICE --follow`` runs :class:`~autotune.service.run.Service`:
each job (process tree) that appears under the slice gets its own
:class:`~autotune.job.JobSession`, guard and :class:`~autotune.daemon.loop.TuneLoop`
(:mod:`autotune.service.worker`); the service writes what it does to a state file that
``autotune status`` reads (:mod:`autotune.service.state`) and, with ``--metrics-port``, serves it
to Prometheus (:mod:`autotune.service.metrics`).
"""
