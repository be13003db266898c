"""The Stratum server under test: a real server on 127.0.0.1 with a job from a recorded regtest template.

The template has mainnet-like bits, so that random nonces make valid shares but never blocks.
"""
from __future__ import annotations

import json
import pathlib

import pytest
from stratum_client import Client

from pool.config import parse_config
from pool.ledger.recorder import LogRecorder
from pool.stratum.server import StratumServer
from share_validator.bitcoin.address import bech32_encode_segwit
from share_validator.bitcoin.job import Job, Template
from share_validator.bitcoin.validator import ShareValidator

DATA = pathlib.Path(__file__).resolve().parent / "data"
ADDRESS = bech32_encode_segwit("rltc", 0, bytes(range(20)))
USER = f"{ADDRESS}.rig1"


def regtest_template(**overrides) -> Template:
    gbt = json.loads((DATA / "ltc_regtest_gbt_mweb.json").read_text())["template"]
    gbt = {**gbt, "bits": "1a010ccd", **overrides}
    return Template.from_gbt(gbt)


def make_config(port_overrides=None, ports=None, **stratum):
    port = {"port": 0, "host": "127.0.0.1", "difficulty": 1e-9, "min_difficulty": 1e-10,
            "max_difficulty": 1e12, "vardiff": False}
    port.update(port_overrides or {})
    return parse_config({
        "pool": {"coin": "litecoin-regtest", "address": ADDRESS, "node_id": 7},
        "daemons": [{"url": "http://127.0.0.1:1/"}],
        "stratum": {"ports": ports or [port], **stratum},
    })


class Harness:
    def __init__(self, server: StratumServer, recorder: LogRecorder) -> None:
        self.server = server
        self.recorder = recorder
        self.jobs = 0
        self.clients: list[Client] = []

    @property
    def port(self) -> int:
        return self.server.ports[0]

    def new_job(self, clean=True, **template_overrides) -> Job:
        self.jobs += 1
        job = Job(f"{self.jobs:x}", self.server.coin, regtest_template(**template_overrides),
                  payout_script=self.server.pool_config.payout_script)
        self.server.new_job(job, clean)
        return job

    async def client(self, port=None) -> Client:
        client = await Client.connect(port or self.port)
        self.clients.append(client)
        return client

    async def miner(self, user=USER, password="x") -> tuple[Client, dict]:
        client = await self.client()
        info = await client.handshake(user, password)
        return client, info


@pytest.fixture
async def make_pool():
    harnesses = []

    async def factory(config=None, **kwargs) -> Harness:
        config = config or make_config()
        recorder = LogRecorder()
        server = StratumServer(config, ShareValidator(config.coin), recorder, **kwargs)
        await recorder.start()
        await server.start()
        harness = Harness(server, recorder)
        harness.new_job()
        harnesses.append(harness)
        return harness

    yield factory
    for harness in harnesses:
        for client in harness.clients:
            await client.close()
        await harness.server.stop()
        await harness.recorder.stop()


def submit_params(job_params, nonce=0, extranonce2="00000000", user=USER, version=None, ntime=None):
    params = [user, job_params[0], extranonce2, ntime or job_params[7], f"{nonce:08x}"]
    if version is not None:
        params.append(version)
    return params
