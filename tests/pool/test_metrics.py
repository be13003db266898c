"""The pool process's /metrics: a real Stratum server recording into PostgreSQL, shares submitted over
TCP, the counters read at scrape time; and the plain-int histogram."""
from __future__ import annotations

import aiohttp
import pytest
from ledger_pool import USER, start_pool, stop_pool
from prometheus_client.parser import text_string_to_metric_families
from stratum_client import Client

from pool.app import RunningPool
from pool.chain.blocks import BlockSubmitter
from pool.families import load_family
from pool.localnet import free_loopback_port
from pool.metrics import LatencyHistogram, start_metrics_server
from pool.rpc.client import DaemonClient

BITCOIN = load_family("bitcoin")


def test_latency_histogram_counts_into_buckets():
    histogram = LatencyHistogram((0.001, 0.01, 0.1))
    for seconds in (0.0005, 0.001, 0.005, 0.05, 5.0):
        histogram.observe(seconds)
    histogram.observe(0.02, 3)
    assert histogram.counts == [2, 1, 4, 1] and histogram.count == 8
    family = histogram.family("x_seconds", "test")
    buckets = {sample.labels["le"]: sample.value for sample in family.samples if sample.name == "x_seconds_bucket"}
    assert buckets == {"0.001": 2, "0.01": 3, "0.1": 7, "+Inf": 8}
    with pytest.raises(ValueError):
        LatencyHistogram((1.0, 0.5))


async def test_pool_metrics_count_shares_rejects_latency_and_the_recorder(dsn, tmp_path):
    server, recorder, db = await start_pool(dsn, str(tmp_path / "spill"))
    daemon = DaemonClient("http://127.0.0.1:1/")
    port = free_loopback_port()
    running = RunningPool(server.pool_config, daemon, server, None, BlockSubmitter(daemon, recorder, family=BITCOIN), recorder,
                          db, recorder)
    runner = await start_metrics_server(running, f"127.0.0.1:{port}", payout_counters={
        "runs": 3, "block_failures": 2, "blocks_not_credited": 1})
    client = await Client.connect(server.ports[0])
    try:
        job = (await client.handshake(USER))["job"]
        for n in range(5):
            answer = await client.request("mining.submit", [USER, job[0], f"{n:08x}", job[7], f"{n:08x}"])
            assert answer["result"] is True, answer
        duplicate = await client.request("mining.submit", [USER, job[0], f"{0:08x}", job[7], f"{0:08x}"])
        assert duplicate["result"] is not True
        stale = await client.request("mining.submit", [USER, "nope", f"{9:08x}", job[7], f"{9:08x}"])
        assert stale["result"] is not True
        await recorder.flush()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                text = await response.text()
    finally:
        await client.close()
        await runner.cleanup()
        await stop_pool(server, recorder, db)
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    assert samples[("quarry_shares_accepted_total", ())] == 5
    assert samples[("quarry_shares_rejected_total", (("reason", "duplicate"),))] == 1
    assert samples[("quarry_shares_rejected_total", (("reason", "job_not_found"),))] == 1
    assert samples[("quarry_connections", ())] == 1
    assert samples[("quarry_share_submit_seconds_count", ())] == 7
    assert samples[("quarry_recorder_shares_written_total", ())] == 5
    assert samples[("quarry_recorder_queue_shares", ())] == 0
    assert samples[("quarry_recorder_spill_bytes", ())] == 0
    assert samples[("quarry_payout_runs_total", ())] == 3
    assert samples[("quarry_payout_block_failures_total", ())] == 2
    assert samples[("quarry_payout_blocks_not_credited", ())] == 1
    assert ("quarry_daemon_rpc_seconds_count", ()) in samples
    assert samples[("quarry_work_available", ())] == 1 and samples[("quarry_jobs_retired_total", ())] == 0
    assert samples[("quarry_work_paused_total", ())] == 0
    assert samples[("quarry_stale_candidates_submitted_total", (("status", "submitted"),))] == 0
