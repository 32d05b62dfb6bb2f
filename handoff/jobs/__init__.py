"""Shared: running work side by side -- worker processes that die with their parent
(:mod:`~handoff.jobs.processes`) and the cores and threads this process may use
(:mod:`~handoff.jobs.parallel`)."""
