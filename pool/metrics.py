"""Prometheus metrics of the pool process, served on ``api.metrics_listen`` (``GET /metrics``).

The share path only increments plain integers: the Stratum server's ``stats`` counter, its
``rejected`` counter (one per `Reject` reason) and one bucket of a `LatencyHistogram`. Nothing is
registered per share; `PoolCollector` reads those numbers when Prometheus scrapes, so a scrape costs
the share path nothing. The same holds for the recorder, the live statistics, the daemon client and
the payout runs: each keeps its own integers and the collector turns them into metric families.

The exposition format comes from ``prometheus_client`` (the reference client: its text format,
escaping and histogram conventions are what Prometheus parses, so they are not written by hand here).

The API process (``pool api``) serves its own ``/metrics`` with the request counters and the
ledger's figures (blocks by status, payments); see `pool.api.middleware`.
"""
from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector


class RunningPool(Protocol):
    """What the exporter reads of a running pool (`pool.app.RunningPool` has these)."""
    config: Any
    server: Any
    blocks: Any
    ledger: Any
    stats: Any
    daemon: Any
    work: Any  # the work source (None in some tests)

logger = logging.getLogger(__name__)

#: Share submit latency buckets, seconds: from a sha256d share answered inline to a scrypt batch queued.
SUBMIT_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Daemon RPC latency buckets, seconds.
RPC_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LatencyHistogram:
    """A fixed-bucket histogram made of plain ints: ``observe`` is one bisect and two additions.

    ``counts[i]`` counts observations <= ``bounds[i]`` and > ``bounds[i - 1]``; the last slot counts
    those above every bound. `family` turns it into Prometheus' cumulative form at scrape time.
    """

    __slots__ = ("bounds", "counts", "total_s")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(bounds) or not bounds:
            raise ValueError("histogram bounds must be a non-empty ascending sequence")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total_s = 0.0

    def observe(self, seconds: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += times
        self.total_s += seconds * times

    @property
    def count(self) -> int:
        return sum(self.counts)

    def family(self, name: str, documentation: str, labels: dict[str, str] | None = None,
               into: HistogramMetricFamily | None = None) -> HistogramMetricFamily:
        labels = labels or {}
        family = into or HistogramMetricFamily(name, documentation, labels=list(labels))
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, self.counts):
            cumulative += count
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", cumulative + self.counts[-1]))
        family.add_metric(list(labels.values()), buckets, self.total_s)
        return family


def _counter(name: str, documentation: str, value: float, labels: dict[str, str] | None = None
             ) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class PoolCollector(Collector):
    """Reads the running pool's counters at scrape time (see the module docstring)."""

    def __init__(self, running: RunningPool, *, payout_counters: dict[str, int] | None = None) -> None:
        self.running = running
        self.payout_counters = payout_counters if payout_counters is not None else {}
        self.started = time.time()

    def collect(self) -> Iterable[Any]:
        running = self.running
        server = running.server
        stats = server.stats
        pool = running.config.pool_name
        yield _gauge("quarry_connections", "Stratum connections open now", len(server.sessions))
        yield _counter("quarry_connections_opened", "Stratum connections accepted", stats["connections"])
        refused = CounterMetricFamily("quarry_connections_refused", "Stratum connections refused",
                                      labels=["reason"])
        for reason in ("banned", "capacity", "per_ip"):
            refused.add_metric([reason], stats[f"refused_{reason}"])
        yield refused
        yield _counter("quarry_bans", "IP addresses banned for invalid shares", stats["bans"])
        yield _counter("quarry_requests_dropped", "Stratum requests of banned or closed connections dropped unjudged",
                       stats["dropped_requests"])
        yield _counter("quarry_reading_paused", "Times a connection reached stratum.max_requests_in_flight and "
                       "was not read until half of them were answered", stats["reading_paused"])
        yield _counter("quarry_shares_accepted", "Shares accepted", stats["shares_accepted"])
        rejected = CounterMetricFamily("quarry_shares_rejected", "Shares rejected, by reason", labels=["reason"])
        for reject, count in sorted(getattr(server, "rejected", {}).items(), key=lambda item: item[0].name):
            rejected.add_metric([reject.name.lower()], count)
        yield rejected
        latency = getattr(server, "submit_latency", None)
        if latency is not None:
            yield latency.family("quarry_share_submit_seconds",
                                 "Time from a share's arrival to its answer (scrypt: per batch, from the "
                                 "first queued share)")
        yield _counter("quarry_block_candidates", "Shares that met the network target", stats["block_candidates"])
        submitted = CounterMetricFamily("quarry_blocks_submitted", "Block submissions by outcome (stale "
                                        "candidates apart)", labels=["status"])
        stale = CounterMetricFamily("quarry_stale_candidates_submitted", "Block solutions on a stale tip "
                                    "(found after the pool knew the tip had moved), submitted anyway, by "
                                    "outcome", labels=["status"])
        outcomes: dict[str, int] = {"accepted": 0, "submitted": 0, "rejected": 0, "unsent": 0}
        stale_outcomes = dict.fromkeys(outcomes, 0)
        for record in running.blocks.results:
            counts = stale_outcomes if getattr(record, "stale", False) else outcomes
            counts[record.status] = counts.get(record.status, 0) + 1
        for family, counts in ((submitted, outcomes), (stale, stale_outcomes)):
            for status, count in sorted(counts.items()):
                family.add_metric([status], count)
            yield family
        yield _counter("quarry_internal_errors", "Errors answering shares (bugs)", stats["internal_error"])
        yield _counter("quarry_jobs", "Jobs sent to miners", stats["jobs"])
        yield _gauge("quarry_work_available", "1 while jobs on the current tip are handed out",
                     1 if server.work_available else 0)
        yield _counter("quarry_jobs_retired", "Jobs made stale before their replacement came (the tip moved, "
                       "or no template could be had)", stats["jobs_retired"])
        yield _counter("quarry_work_paused", "Times the miners were told that the pool waits for its daemon",
                       stats["work_paused"])
        work = running.work
        if work is not None:
            unavailable = CounterMetricFamily("quarry_work_unavailable", "Failures to get a block template, "
                                              "by kind (the details are in the log)", labels=["kind"])
            for kind, count in sorted(work.unavailable.items()):
                unavailable.add_metric([kind], count)
            yield unavailable

        ledger = running.ledger
        if ledger is not None:
            yield _gauge("quarry_recorder_queue_shares", "Accepted shares waiting for the next ledger write",
                         len(getattr(ledger, "_buffer", ())))
            try:
                spill_bytes = ledger.spill.size()
            except OSError:
                spill_bytes = 0
            yield _gauge("quarry_recorder_spill_bytes", "Bytes in the ledger's spill files (PostgreSQL away)",
                         spill_bytes)
            yield _gauge("quarry_recorder_healthy", "1 when the last ledger write reached PostgreSQL",
                         1 if ledger.healthy else 0)
            for key, value in sorted(ledger.stats.items()):
                yield _counter(f"quarry_recorder_{key}", f"Ledger recorder: {key.replace('_', ' ')}", value)
        live = running.stats
        if live is not None:
            for key, value in sorted(getattr(live, "counters", {}).items()):
                yield _counter(f"quarry_live_stats_{key}", f"Live statistics: {key.replace('_', ' ')}", value)
            yield _gauge("quarry_live_stats_buffered_shares", "Shares waiting for the live statistics flush",
                         getattr(live, "buffered", 0))

        daemon = running.daemon
        yield _counter("quarry_daemon_requests", "Daemon RPC requests sent", daemon.requests_sent)
        yield _counter("quarry_daemon_failovers", "Switches to another daemon", daemon.failover_count)
        yield _gauge("quarry_daemon_in_flight", "Daemon RPC requests under way", daemon.in_flight)
        errors = CounterMetricFamily("quarry_daemon_errors", "Daemon RPC failures, by kind", labels=["kind"])
        for kind, count in sorted(getattr(daemon, "errors", {}).items()):
            errors.add_metric([kind], count)
        yield errors
        rpc_latency = getattr(daemon, "latency", None)
        if rpc_latency is not None:
            yield rpc_latency.family("quarry_daemon_rpc_seconds", "Daemon RPC round trip time")

        for key in ("runs", "failures", "blocks_credited", "block_failures"):
            yield _counter(f"quarry_payout_{key}", f"Payout processor: {key.replace('_', ' ')}",
                           self.payout_counters.get(key, 0))
        yield _gauge("quarry_payout_blocks_not_credited",
                     "Mature blocks the last payout run could not credit (each one alerted in the log)",
                     self.payout_counters.get("blocks_not_credited", 0))
        info = GaugeMetricFamily("quarry_pool_info", "The pool this process serves", labels=["pool", "coin"])
        info.add_metric([pool, running.config.coin.name], 1)
        yield info
        yield _gauge("quarry_start_time_seconds", "Unix time the pool process started", self.started)


def metrics_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def start_metrics_server(running: RunningPool, listen: str, *,
                               payout_counters: dict[str, int] | None = None) -> web.AppRunner:
    """Serve the pool process's ``/metrics`` on ``listen`` (HOST:PORT); the caller cleans the runner up."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(running, payout_counters=payout_counters))
    runner = web.AppRunner(metrics_app(registry), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    await site.start()
    logger.info("pool metrics on http://%s/metrics", listen)
    return runner
