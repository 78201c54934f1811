"""Showcase workers for jobdeck and the bundled demo config (`demo.toml`).

`jobdeck` with no `--config` runs these workers: they simulate fetching, processing,
reporting and maintenance, and are tuned so that every orchestrator feature (retries,
timeouts, the circuit breaker, the dead-letter queue, dependencies, mutual exclusion,
continuous workers and queueing for slots) can be seen within a minute of starting.
"""
