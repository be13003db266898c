"""bench/stratum_load.py in parts: what every process shares (common), the pool under test (pool_process),
the load generator (load_generator), the idle connections (idle_client), the orchestrator's children
(harness), the measured phases and the report (report)."""
