"""A Stratum server recording into PostgreSQL, for the ledger's load and crash tests.

Run as ``python tests/ledger_pool.py DSN SPILL_DIR [in-process|process]`` (it prints ``PORT <n>`` when ready, and shuts
down as ``pool run`` does on SIGTERM: Stratum server first, then the recorder's final flush), or
use ``start_pool`` in-process.  Its work is a real regtest template (tests/data) with mainnet bits,
so every random nonce is a valid share and none is a block.
"""
from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import sys

from pool.config import parse_config
from pool.ledger.database import connect_pool
from pool.ledger.recorder import FanoutRecorder
from pool.ledger.store import PostgresRecorder
from pool.ledger.writer import LedgerProcess
from pool.stratum.server import StratumServer
from share_validator.bitcoin.address import bech32_encode_segwit
from share_validator.bitcoin.job import Job, Template
from share_validator.bitcoin.validator import ShareValidator

DATA = pathlib.Path(__file__).resolve().parent / "data"
ADDRESS = bech32_encode_segwit("rltc", 0, bytes(range(20)))
USER = f"{ADDRESS}.load"


def config():
    return parse_config({
        "pool": {"coin": "litecoin-regtest", "address": ADDRESS, "node_id": 3},
        "daemons": [{"url": "http://127.0.0.1:1/"}],
        "stratum": {"ports": [{"port": 0, "host": "127.0.0.1", "difficulty": 1e-9, "min_difficulty": 1e-10,
                               "max_difficulty": 1, "vardiff": False}],
                    "idle_timeout_s": 3600, "handshake_timeout_s": 600},
    })


def job(job_id: str = "1") -> Job:
    gbt = json.loads((DATA / "ltc_regtest_gbt_mweb.json").read_text())["template"]
    conf = config()
    return Job(job_id, conf.coin, Template.from_gbt({**gbt, "bits": "1a010ccd"}), payout_script=conf.payout_script)


async def start_pool(dsn: str, spill_dir: str, *, flush_interval_s: float = 0.5, write_timeout_s: float = 2.0,
                     stats=None, writer: str = "in-process"):
    """``writer``: "in-process" (PostgresRecorder on the pool's loop) or "process" (LedgerProcess, as pool run)."""
    conf = config()
    db = await connect_pool(dsn, command_timeout=10)
    if writer == "process":
        recorder = LedgerProcess(dsn, "litecoin-regtest", spill_dir, flush_interval_s=flush_interval_s,
                                 write_timeout_s=write_timeout_s, replay_interval_s=0.5)
    else:
        recorder = PostgresRecorder(db, "litecoin-regtest", spill_dir, flush_interval_s=flush_interval_s,
                                    write_timeout_s=write_timeout_s, replay_interval_s=0.5)
    if stats is not None:
        recorder = FanoutRecorder(recorder, stats)
    server = StratumServer(conf, ShareValidator(conf.coin), recorder)
    await recorder.start()
    await server.start()
    server.new_job(job(), True)
    return server, (recorder.recorders[0] if stats is not None else recorder), db


async def stop_pool(server, recorder, db) -> None:
    await server.stop()
    await server.recorder.stop()
    await db.close()


async def main(dsn: str, spill_dir: str, writer: str) -> None:
    server, recorder, db = await start_pool(dsn, spill_dir, writer=writer)
    shutdown = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, shutdown.set)
    print(f"PORT {server.ports[0]}", flush=True)
    await shutdown.wait()
    await stop_pool(server, recorder, db)
    print(f"STOPPED {json.dumps(recorder.stats)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "in-process"))
