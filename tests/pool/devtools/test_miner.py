"""The demo miner (pool/devtools/miner.py) checked against real data and the reference client, not against itself.

Data:
- tests/data/blocks/litecoin_mainnet_2265985.json and bitcoin_mainnet_951658.json: real mainnet blocks
  (sources in tests/data/blocks/README.md). The pool side of these tests (coinbase split, merkle branch,
  notify encoding, share verification) is written here from the Stratum wire conventions, independently
  of pool/devtools/miner.py and of share_validator.
- tests/data/cpuminer_exchange.jsonl: a Stratum session as pooler/cpuminer 2.5.0 would have it with a
  scrypt pool, one JSON object per line: ``dir`` ("c2s" client to server, "s2c" server to client),
  ``line`` (the raw JSON text) and an optional ``note``. Client lines are spelled as cpuminer prints
  them: ``util.c stratum_subscribe`` (id 1, params [USER_AGENT] = ["cpuminer/2.5.0"]),
  ``util.c stratum_authorize`` (id 2, [user, pass]), ``cpu-miner.c submit_upstream_work`` (id 4,
  [user, job_id, extranonce2, ntime, nonce], ntime/nonce = ``bin2hex(le32enc(header word))``, the
  big-endian hex). The job is Litecoin block 2265985: its non-witness coinbase split around the 8 bytes
  ``02000300 00000000`` at the end of its scriptSig (extranonce1 = 02000300; cpuminer's first
  extranonce2 is 00000000 because ``stratum_notify`` zeroes it for a new job id, so the miner rebuilds
  the real coinbase), the merkle branch of its txids, prevhash words byte-reversed, version/nbits/ntime
  as big-endian hex. The difficulty 0.002 is a scrypt Stratum difficulty (cpuminer ``stratum_gen_work``:
  ``diff_to_target(target, diff / 65536.0)``) and the submitted nonce 0x106 is the first nonce from 0
  (cpuminer's single thread starts at 0) whose scrypt hash meets that target, found when the file
  was generated and re-checked by ``test_recorded_submit_is_a_valid_share`` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import pathlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pool.devtools import miner
from pool.devtools.miner import (
    Job,
    LineFramer,
    StratumProtocolError,
    bits_to_target,
    build_header,
    difficulty_to_target,
    make_work_unit,
    parse_stratum_url,
    prevhash_from_notify,
    run_miner,
    scan_nonces,
)

DATA = pathlib.Path(__file__).resolve().parents[2] / "data"
EXCHANGE = DATA / "cpuminer_exchange.jsonl"

# --------------------------------------------------------------------------------------------------
# The pool side, written from the wire conventions (not from pool/devtools/miner.py).
# --------------------------------------------------------------------------------------------------


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def scrypt(header: bytes) -> bytes:
    return hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32)


def compact_to_target(bits: int) -> int:
    return (bits & 0xFFFFFF) << (8 * ((bits >> 24) - 3))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def stripped_coinbase(block_hex: str) -> bytes:
    """The first transaction of a serialized block, without witness data (what its txid hashes)."""
    raw = bytes.fromhex(block_hex)
    _, pos = _varint(raw, 80)
    version = raw[pos : pos + 4]
    pos += 4
    segwit = raw[pos] == 0 and raw[pos + 1] == 1
    if segwit:
        pos += 2
    body_start = pos
    inputs, pos = _varint(raw, pos)
    for _ in range(inputs):
        pos += 36
        length, pos = _varint(raw, pos)
        pos += length + 4
    outputs, pos = _varint(raw, pos)
    for _ in range(outputs):
        pos += 8
        length, pos = _varint(raw, pos)
        pos += length
    body_end = pos
    if segwit:
        for _ in range(inputs):
            items, pos = _varint(raw, pos)
            for _ in range(items):
                length, pos = _varint(raw, pos)
                pos += length
    return version + raw[body_start:body_end] + raw[pos : pos + 4]


def merkle_branch(txids_hex: list[str]) -> list[bytes]:
    """The branch of the coinbase (index 0): at each level, the sibling of the running hash."""
    level = [bytes.fromhex(txid)[::-1] for txid in txids_hex]
    branch = []
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return branch


def word_swap(data: bytes) -> bytes:
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


@dataclass(frozen=True)
class RealBlock:
    name: str
    algorithm: str
    fixture: dict[str, Any]
    extranonce_bytes: str  # where the coinbase is cut: extranonce1 + extranonce2, hex
    extranonce1_size: int

    @property
    def header(self) -> bytes:
        return bytes.fromhex(self.fixture["block"])[:80]

    @property
    def coinbase(self) -> bytes:
        return stripped_coinbase(self.fixture["block"])

    def split(self) -> tuple[bytes, bytes, bytes, bytes]:
        coinbase = self.coinbase
        cut = bytes.fromhex(self.extranonce_bytes)
        start = coinbase.index(cut)
        end1 = start + self.extranonce1_size
        end2 = start + len(cut)
        return coinbase[:start], coinbase[start:end1], coinbase[end1:end2], coinbase[end2:]

    def notify_params(self, job_id: str, *, version: int | None = None, clean: bool = True) -> list[Any]:
        """mining.notify params as the conventions say: prevhash with each 4-byte word byte-reversed,
        version/nbits/ntime as the big-endian hex of the integers, coinbase halves and branch raw hex."""
        header = self.header
        coinb1, _, _, coinb2 = self.split()
        header_version = int.from_bytes(header[0:4], "little")
        return [
            job_id,
            word_swap(header[4:36]).hex(),
            coinb1.hex(),
            coinb2.hex(),
            [entry.hex() for entry in merkle_branch(self.fixture["tx"])],
            f"{header_version if version is None else version:08x}",
            f"{int.from_bytes(header[72:76], 'little'):08x}",
            f"{int.from_bytes(header[68:72], 'little'):08x}",
            clean,
        ]


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / "blocks" / f"{name}.json").read_text())


LITECOIN = RealBlock(
    "litecoin_mainnet_2265985",
    "scrypt",
    load_fixture("litecoin_mainnet_2265985"),
    extranonce_bytes="0200030000000000",
    extranonce1_size=4,
)
BITCOIN = RealBlock(
    "bitcoin_mainnet_951658",
    "sha256d",
    load_fixture("bitcoin_mainnet_951658"),
    extranonce_bytes="657529387c9be15e106af10b",
    extranonce1_size=4,
)
REAL_BLOCKS = [LITECOIN, BITCOIN]


def share_header(notify: list[Any], extranonce1_hex: str, submit: list[str], version_mask: int = 0) -> bytes:
    """The header a pool rebuilds from a notify and a submit (conventions doc, BIP310)."""
    job_id, prevhash, coinb1, coinb2, branch, version, nbits, _ntime = notify[:8]
    assert submit[1] == job_id
    coinbase = bytes.fromhex(coinb1 + extranonce1_hex + submit[2] + coinb2)
    root = sha256d(coinbase)
    for entry in branch:
        root = sha256d(root + bytes.fromhex(entry))
    header_version = int(version, 16)
    if len(submit) > 5:
        bits = int(submit[5], 16)
        assert bits & ~version_mask == 0, "version bits outside the negotiated mask"
        header_version = (header_version & ~version_mask) | (bits & version_mask)
    return (
        header_version.to_bytes(4, "little")
        + word_swap(bytes.fromhex(prevhash))
        + root
        + int(submit[3], 16).to_bytes(4, "little")
        + int(nbits, 16).to_bytes(4, "little")
        + int(submit[4], 16).to_bytes(4, "little")
    )


def share_target(difficulty: float, algorithm: str) -> int:
    diff1 = 0xFFFF << (224 if algorithm == "scrypt" else 208)
    return math.floor(Fraction(diff1) / Fraction(difficulty))


def share_hash(header: bytes, algorithm: str) -> int:
    return int.from_bytes(scrypt(header) if algorithm == "scrypt" else sha256d(header), "little")


def cpuminer_diff_to_target(diff: float) -> int:
    """util.c diff_to_target, transcribed: the target as one integer (target[7] most significant)."""
    k = 6
    while k > 0 and diff > 1.0:
        diff /= 4294967296.0
        k -= 1
    m = int(4294901760.0 / diff)  # C: uint64_t m = 4294901760.0 / diff (truncation)
    assert m < 2**64, "outside the range where cpuminer's conversion is defined"
    if m == 0 and k == 6:
        return (1 << 256) - 1
    return m << (32 * k)


def cpuminer_share_target(difficulty: float, algorithm: str) -> int:
    """cpu-miner.c stratum_gen_work: scrypt divides the Stratum difficulty by 65536 first."""
    return cpuminer_diff_to_target(difficulty / 65536.0 if algorithm == "scrypt" else difficulty)


# --------------------------------------------------------------------------------------------------
# 1. Work building against real blocks.
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", REAL_BLOCKS, ids=lambda b: b.name)
def test_fixture_split_is_faithful(block: RealBlock) -> None:
    """The test's own pool side reproduces the real coinbase txid, merkle root and block hash."""
    coinb1, extranonce1, extranonce2, coinb2 = block.split()
    coinbase = coinb1 + extranonce1 + extranonce2 + coinb2
    assert sha256d(coinbase)[::-1].hex() == block.fixture["tx"][0]
    root = sha256d(coinbase)
    for entry in merkle_branch(block.fixture["tx"]):
        root = sha256d(root + entry)
    assert root[::-1].hex() == block.fixture["merkleroot"]
    assert sha256d(block.header)[::-1].hex() == block.fixture["hash"]


@pytest.mark.parametrize("block", REAL_BLOCKS, ids=lambda b: b.name)
def test_header_from_notify_is_the_real_header(block: RealBlock) -> None:
    _, extranonce1, extranonce2, _ = block.split()
    job = Job.from_notify(block.notify_params("job1"))
    nonce = block.fixture["nonce"]

    header = build_header(job, extranonce1, extranonce2, nonce)

    assert header == block.header
    assert sha256d(header)[::-1].hex() == block.fixture["hash"]
    network_target = compact_to_target(int(block.fixture["bits"], 16))
    assert share_hash(header, block.algorithm) <= network_target
    work = make_work_unit(job, extranonce1, extranonce2, difficulty=1, algorithm=block.algorithm)
    assert work.header(nonce) == block.header
    assert work.network_target == network_target
    assert work.submit_params("w", nonce) == [
        "w",
        "job1",
        extranonce2.hex(),
        f"{block.fixture['time']:08x}",
        f"{nonce:08x}",
    ]


def test_prevhash_word_order_against_the_real_previous_block() -> None:
    for block in REAL_BLOCKS:
        notify_prevhash = block.notify_params("j")[1]
        assert (
            prevhash_from_notify(notify_prevhash) == bytes.fromhex(block.fixture["previousblockhash"])[::-1]
        )


def test_bits_to_target_matches_bitcoin_core_target_field() -> None:
    # bitcoind getblock reports the target; the fixture keeps it.
    assert bits_to_target(int(BITCOIN.fixture["bits"], 16)) == int(BITCOIN.fixture["target"], 16)
    assert bits_to_target(0x1A010CCD) == 0x010CCD << (8 * (0x1A - 3))


def test_version_rolling_rebuilds_the_real_bitcoin_header() -> None:
    """Block 951658 was mined with version rolling: 0x253ac004 = 0x20000004 | 0x053ac000 (BIP310)."""
    mask = 0x1FFFE000
    real_version = int.from_bytes(BITCOIN.header[0:4], "little")
    assert real_version == 0x253AC004
    job_version = 0x20000004
    bits = real_version & mask
    _, extranonce1, extranonce2, _ = BITCOIN.split()
    job = Job.from_notify(BITCOIN.notify_params("rolled", version=job_version))

    work = make_work_unit(
        job, extranonce1, extranonce2, difficulty=1, algorithm="sha256d", version_bits=bits, version_mask=mask
    )

    nonce = BITCOIN.fixture["nonce"]
    assert work.header(nonce) == BITCOIN.header
    params = work.submit_params("w", nonce)
    assert params[5] == "053ac000"
    notify = BITCOIN.notify_params("rolled", version=job_version)
    assert share_header(notify, extranonce1.hex(), params, mask) == BITCOIN.header


def test_rolled_version_follows_bip310_not_xor() -> None:
    """BIP310: nVersion = (job_version & ~last_mask) | (version_bits & last_mask). It differs from
    XOR-ing the bits in only when the job version has bits inside the mask."""
    mask = 0x1FFFE000
    assert miner.rolled_version(0x20006004, 0x00002000, mask) == 0x20002004
    assert miner.rolled_version(0x20000004, 0x053AC000, mask) == 0x253AC004
    assert miner.spread_bits(0b101, mask) == (1 << 13) | (1 << 15)
    assert miner.spread_bits(2**16, mask) == 0  # 16 bits in the mask: the counter wraps
    with pytest.raises(ValueError):
        make_work_unit(
            Job.from_notify(BITCOIN.notify_params("j")),
            b"",
            b"",
            difficulty=1,
            algorithm="sha256d",
            version_bits=0x1,
            version_mask=mask,
        )


@pytest.mark.parametrize("block", REAL_BLOCKS, ids=lambda b: b.name)
def test_scan_finds_the_real_nonce_at_the_network_target(block: RealBlock) -> None:
    _, extranonce1, extranonce2, _ = block.split()
    work = make_work_unit(
        Job.from_notify(block.notify_params("j")),
        extranonce1,
        extranonce2,
        difficulty=1,
        algorithm=block.algorithm,
    )
    nonce = block.fixture["nonce"]
    result = scan_nonces(work.header_prefix, nonce - 20, nonce + 20, work.network_target, block.algorithm)
    assert [share.nonce for share in result.shares] == [nonce]
    assert result.hashes == 41
    assert result.next_nonce == nonce + 21


# --------------------------------------------------------------------------------------------------
# 3. Difficulty to target, as cpuminer's diff_to_target.
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["scrypt", "sha256d"])
@pytest.mark.parametrize("difficulty", [1, 65536, 0.5, 2**-10])
def test_difficulty_to_target_equals_cpuminer(algorithm: str, difficulty: float) -> None:
    assert difficulty_to_target(difficulty, algorithm) == cpuminer_share_target(difficulty, algorithm)


def test_difficulty_one_targets() -> None:
    assert (
        difficulty_to_target(1, "sha256d")
        == 0x00000000FFFF0000000000000000000000000000000000000000000000000000
    )
    assert (
        difficulty_to_target(1, "scrypt")
        == 0x0000FFFF00000000000000000000000000000000000000000000000000000000
    )
    assert difficulty_to_target(65536, "scrypt") == difficulty_to_target(1, "sha256d")


@settings(max_examples=300, deadline=None, database=None)
@given(
    algorithm=st.sampled_from(["scrypt", "sha256d"]),
    difficulty=st.floats(min_value=1e-4, max_value=1e15, allow_nan=False, allow_infinity=False),
)
def test_difficulty_to_target_within_cpuminer_rounding(algorithm: str, difficulty: float) -> None:
    """cpuminer computes in double precision and keeps 64 bits at a 32-bit word boundary: the exact
    floor differs from it by less than one unit of the lowest kept word, plus the double rounding."""
    ours = difficulty_to_target(difficulty, algorithm)
    theirs = cpuminer_share_target(difficulty, algorithm)
    assert abs(ours - theirs) <= (theirs >> 50) + (1 << 192)
    assert ours == share_target(difficulty, algorithm)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", None, True])
def test_difficulty_to_target_rejects_nonsense(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        difficulty_to_target(bad, "scrypt")


# --------------------------------------------------------------------------------------------------
# Pure pieces: notify decoding, framing.
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.__setitem__(0, 17),  # job id not a string
        lambda p: p.__setitem__(1, p[1][:-2]),  # prevhash 31 bytes
        lambda p: p.__setitem__(1, "zz" * 32),  # prevhash not hex
        lambda p: p.__setitem__(2, 1234),  # coinb1 not a string
        lambda p: p.__setitem__(3, "abc"),  # odd hex length
        lambda p: p.__setitem__(4, "notalist"),
        lambda p: p.__setitem__(4, [123]),
        lambda p: p.__setitem__(4, ["00" * 31]),
        lambda p: p.__setitem__(5, 0x20000000),  # version as a number
        lambda p: p.__setitem__(6, "1a010ccd00"),
        lambda p: p.__setitem__(7, " 6287218"),
        lambda p: p.__setitem__(7, "0x628721"),
        lambda p: p.__delitem__(slice(5, None)),
    ],
)
def test_notify_decoding_rejects_wrong_types(mutate: Callable[[list[Any]], None]) -> None:
    params = LITECOIN.notify_params("j")
    mutate(params)
    with pytest.raises(StratumProtocolError):
        Job.from_notify(params)


def test_notify_without_clean_flag_is_not_clean() -> None:
    assert Job.from_notify(LITECOIN.notify_params("j")[:8]).clean_jobs is False
    assert Job.from_notify(LITECOIN.notify_params("j", clean=True)).clean_jobs is True


def test_line_framer_splits_and_drops_overlong_lines() -> None:
    framer = LineFramer(max_line_bytes=10)
    assert framer.feed(b'{"a":1}\r\n{"b"') == [b'{"a":1}']
    assert framer.feed(b":2}\n\n") == [b'{"b":2}']
    assert framer.feed(b"x" * 11) == []
    assert framer.feed(b"yyyy\nok\n") == [b"ok"]
    assert framer.feed(b"z" * 30 + b"\nfine\n") == [b"fine"]
    assert framer.overlong_lines == 2


def test_parse_stratum_url() -> None:
    assert parse_stratum_url("stratum+tcp://pool.example:3333") == ("pool.example", 3333)
    assert parse_stratum_url("127.0.0.1:3334") == ("127.0.0.1", 3334)
    assert parse_stratum_url("stratum+tcp://[::1]:3335") == ("::1", 3335)
    for bad in [
        "stratum+ssl://pool.example:3333",
        "http://pool.example:3333",
        "pool.example",
        "stratum+tcp://h:99999",
    ]:
        with pytest.raises(ValueError):
            parse_stratum_url(bad)


# --------------------------------------------------------------------------------------------------
# A fake pool on a real local TCP socket.
# --------------------------------------------------------------------------------------------------


class Peer:
    """The server end of one miner connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received: list[dict[str, Any]] = []

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise EOFError("miner closed the connection")
        message = json.loads(line)
        self.received.append(message)
        return message

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = json.dumps(message)
        if isinstance(message, str):
            message = message.encode()
        self.writer.write(message if message.endswith(b"\n") else message + b"\n")
        await self.writer.drain()

    async def expect_eof(self, timeout: float = 20.0) -> None:
        """The miner closes the connection (after anything else it still had to say)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            line = await asyncio.wait_for(
                self.reader.readline(), deadline - asyncio.get_running_loop().time()
            )
            if not line:
                return
            self.received.append(json.loads(line))

    async def handshake(
        self, *, extranonce1: str = "02000300", extranonce2_size: int = 4, version_mask: str | None = None
    ) -> None:
        message = await self.recv()
        if message["method"] == "mining.configure":
            result: dict[str, Any] = {"version-rolling": version_mask is not None}
            if version_mask is not None:
                result["version-rolling.mask"] = version_mask
            await self.send({"id": message["id"], "result": result, "error": None})
            message = await self.recv()
        assert message["method"] == "mining.subscribe"
        await self.send(
            {
                "id": message["id"],
                "result": [
                    [["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]],
                    extranonce1,
                    extranonce2_size,
                ],
                "error": None,
            }
        )
        message = await self.recv()
        assert message["method"] == "mining.authorize"
        await self.send({"id": message["id"], "result": True, "error": None})


Handler = Callable[[Peer], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_pool(handler: Handler) -> AsyncIterator[tuple[int, list[BaseException]]]:
    errors: list[BaseException] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(Peer(reader, writer))
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the server
            errors.append(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, errors
    finally:
        server.close()
        await server.wait_closed()


def fast_options(**extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_reconnects": 0,
        "backoff_initial": 0.01,
        "response_timeout": 10.0,
        "connect_timeout": 5.0,
        "chunk_seconds": 0.05,
    }
    options.update(extra)
    return options


# --------------------------------------------------------------------------------------------------
# 2. The recorded cpuminer exchange, replayed to the miner.
# --------------------------------------------------------------------------------------------------


def load_exchange() -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in EXCHANGE.read_text().splitlines() if line.strip()]
    assert {entry["dir"] for entry in entries} == {"c2s", "s2c"}
    return entries


def test_recorded_submit_is_a_valid_share() -> None:
    """The recording is consistent: its submit, rebuilt by the pool side of this file, meets the
    difficulty the recording set, and rebuilds the real Litecoin block apart from the nonce."""
    messages = [(entry["dir"], json.loads(entry["line"])) for entry in load_exchange()]
    server = [m for d, m in messages if d == "s2c"]
    client = [m for d, m in messages if d == "c2s"]
    extranonce1 = next(m for m in server if m.get("id") == 1)["result"][1]
    difficulty = next(m for m in server if m.get("method") == "mining.set_difficulty")["params"][0]
    notify = next(m for m in server if m.get("method") == "mining.notify")["params"]
    submit = next(m for m in client if m["method"] == "mining.submit")["params"]

    header = share_header(notify, extranonce1, submit)

    assert header[:76] == LITECOIN.header[:76]
    assert share_hash(header, "scrypt") <= cpuminer_share_target(difficulty, "scrypt")
    # and no smaller nonce would do: cpuminer, scanning from 0, submits the first one
    nonce = int(submit[4], 16)
    for earlier in range(nonce):
        candidate = header[:76] + earlier.to_bytes(4, "little")
        assert share_hash(candidate, "scrypt") > cpuminer_share_target(difficulty, "scrypt")


async def replay(
    entries: list[dict[str, Any]], seen: list[tuple[dict[str, Any], dict[str, Any]]], peer: Peer
) -> None:
    """Play the server side of a recording; answers go to the ids the miner actually used."""
    ids: dict[Any, Any] = {}
    for entry in entries:
        recorded = json.loads(entry["line"])
        if entry["dir"] == "c2s":
            actual = await peer.recv()
            seen.append((recorded, actual))
            ids[recorded["id"]] = actual["id"]
        elif recorded.get("method") is None and recorded.get("id") is not None:
            recorded["id"] = ids[recorded["id"]]
            await peer.send(recorded)
        else:
            await peer.send(entry["line"])  # notifications byte for byte
    await peer.expect_eof()


async def test_miner_speaks_like_cpuminer_on_the_recorded_exchange() -> None:
    entries = load_exchange()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    user = json.loads(entries[2]["line"])["params"][0]

    async with fake_pool(lambda peer: replay(entries, seen, peer)) as (port, errors):
        stats = await run_miner(
            "127.0.0.1",
            port,
            user,
            "x",
            algorithm="scrypt",
            max_shares=1,
            version_rolling=False,
            on_event=events.append,
            **fast_options(),
        )

    assert not errors, errors
    assert [recorded["method"] for recorded, _ in seen] == [actual["method"] for _, actual in seen]
    for recorded, actual in seen:
        assert isinstance(actual["id"], int)
        if recorded["method"] == "mining.subscribe":
            # same shape: one user-agent string
            assert [type(p) for p in actual["params"]] == [type(p) for p in recorded["params"]] == [str]
        else:
            # authorize and submit: the same values, spelled the same way
            assert actual["params"] == recorded["params"]
    assert stats.submitted == stats.accepted == 1
    assert stats.rejected == 0 and stats.protocol_errors == 0
    assert stats.stop_reason == "max_shares"
    types = [event["type"] for event in events]
    assert types.index("difficulty") < types.index("job") < types.index("submitted") < types.index("accepted")


def test_cli_main_runs_the_recorded_exchange(capsys: pytest.CaptureFixture[str]) -> None:
    """``pool miner`` entry point end to end, with the fake pool in another thread and event loop."""
    entries = load_exchange()
    user = json.loads(entries[2]["line"])["params"][0]
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    ready: list[int] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def serve() -> None:
        async def body() -> None:
            async with fake_pool(lambda peer: replay(entries, seen, peer)) as (port, errors):
                ready.append(port)
                while not stop.is_set():
                    await asyncio.sleep(0.02)
                failures.extend(errors)

        asyncio.run(body())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        code = miner.main(
            [
                "--url",
                f"stratum+tcp://127.0.0.1:{ready[0]}",
                "--user",
                user,
                "--pass",
                "x",
                "--algorithm",
                "scrypt",
                "--max-shares",
                "1",
                "--no-version-rolling",
                "--duration",
                "60",
            ]
        )
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["accepted"] == 1 and summary["submitted"] == 1
    assert seen[-1][1]["params"] == seen[-1][0]["params"]


def test_cli_main_gives_up_on_a_dead_port(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = miner.main(["--url", f"stratum+tcp://127.0.0.1:{port}", "--user", "u", "--max-reconnects", "0"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["gave_up"] is True


def test_cli_rejects_tls_urls() -> None:
    with pytest.raises(SystemExit) as exc:
        miner.main(["--url", "stratum+ssl://pool.example:3333", "--user", "u"])
    assert exc.value.code == 2


# --------------------------------------------------------------------------------------------------
# Protocol behaviour over a socket: version rolling, out-of-order answers, rejections, server methods.
# --------------------------------------------------------------------------------------------------


async def test_version_rolling_out_of_order_answers_and_rejection_codes() -> None:
    mask = 0x1FFFE000
    job_version = 0x20000004
    notify = BITCOIN.notify_params("vr1", version=job_version)
    _, extranonce1, _, _ = BITCOIN.split()
    difficulty = 2**-20
    submits: list[dict[str, Any]] = []

    async def handler(peer: Peer) -> None:
        configure = await peer.recv()
        subscribe = await peer.recv()  # sent right after configure, before its answer
        assert configure["method"] == "mining.configure"
        assert configure["params"] == [
            ["version-rolling"],
            {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2},
        ]
        assert subscribe["method"] == "mining.subscribe"
        # answer the later request first
        await peer.send({"id": subscribe["id"], "result": [[], extranonce1.hex(), 8], "error": None})
        await peer.send(
            {
                "id": configure["id"],
                "result": {"version-rolling": True, "version-rolling.mask": "1fffe000"},
                "error": None,
            }
        )
        authorize = await peer.recv()
        assert authorize["method"] == "mining.authorize" and authorize["params"] == ["btc.worker", "pw"]
        await peer.send({"id": authorize["id"], "result": True, "error": None})
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [difficulty]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        first = await peer.recv()
        second = await peer.recv()
        submits.extend([first, second])
        await peer.send({"id": second["id"], "result": True, "error": None})
        await peer.send({"id": first["id"], "result": None, "error": [23, "Low difficulty share", None]})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, "btc.worker", "pw", algorithm="sha256d", max_shares=2, **fast_options()
        )

    assert not errors, errors
    assert stats.submitted == 2 and stats.accepted == 1 and stats.rejected == 1
    assert stats.rejected_by_code == {23: 1}
    for submit in submits:
        params = submit["params"]
        assert len(params) == 6 and len(params[2]) == 16  # extranonce2_size 8
        bits = int(params[5], 16)
        assert bits and bits & ~mask == 0
        header = share_header(notify, extranonce1.hex(), params, mask)
        assert int.from_bytes(header[:4], "little") != job_version  # the version really rolled
        assert share_hash(header, "sha256d") <= share_target(difficulty, "sha256d")


async def test_server_methods_and_set_extranonce() -> None:
    replies: dict[str, dict[str, Any]] = {}
    notify = LITECOIN.notify_params("x1")
    submitted: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    async def handler(peer: Peer) -> None:
        await peer.handshake(extranonce1="deadbeef", version_mask=None)
        for request_id, method in [
            (900, "client.get_version"),
            (901, "client.show_message"),
            (902, "mining.ping"),
            (903, "mining.get_transactions_for_me"),
        ]:
            await peer.send({"id": request_id, "method": method, "params": ["hello from the pool"]})
            replies[method] = await peer.recv()
        await peer.send({"id": None, "method": "mining.set_extranonce", "params": ["02000300", 2]})
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        submitted.append(submit)
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, "u", algorithm="scrypt", max_shares=1, on_event=events.append, **fast_options()
        )

    assert not errors, errors
    assert replies["client.get_version"]["result"] == "demo-miner/1.0"
    assert replies["client.show_message"]["result"] is True
    assert replies["mining.ping"]["result"] == "pong"
    unknown = replies["mining.get_transactions_for_me"]
    assert unknown["id"] == 903 and unknown["result"] is False and unknown["error"]["code"] == 38
    params = submitted[0]["params"]
    assert len(params) == 5  # the server refused version rolling: no 6th parameter
    assert len(params[2]) == 4  # extranonce2_size 2 from mining.set_extranonce
    header = share_header(notify, "02000300", params)
    assert share_hash(header, "scrypt") <= share_target(0.002, "scrypt")
    assert stats.accepted == 1
    assert any(event["type"] == "message" and "hello" in event["text"] for event in events)


async def test_client_reconnect_moves_to_the_given_port() -> None:
    notify = LITECOIN.notify_params("r1")
    second_port: list[int] = []

    async def second(peer: Peer) -> None:
        await peer.handshake()
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async def first(peer: Peer) -> None:
        await peer.handshake()
        await peer.send(
            {"id": None, "method": "client.reconnect", "params": ["127.0.0.1", str(second_port[0]), 0]}
        )
        await peer.expect_eof()

    events: list[dict[str, Any]] = []
    async with fake_pool(second) as (port2, errors2), fake_pool(first) as (port1, errors1):
        second_port.append(port2)
        stats = await run_miner(
            "127.0.0.1",
            port1,
            "u",
            algorithm="scrypt",
            max_shares=1,
            on_event=events.append,
            **fast_options(),
        )

    assert not errors1 and not errors2, (errors1, errors2)
    assert stats.connections == 2 and stats.accepted == 1
    reconnect = next(event for event in events if event["type"] == "reconnect")
    assert reconnect["port"] == port2


async def test_clean_job_replaces_the_current_one() -> None:
    """Job A is too hard to finish; a clean job B must be mined instead, and only B's shares sent."""
    hard = LITECOIN.notify_params("A")
    easy = LITECOIN.notify_params("B", clean=True)
    easy[7] = f"{int(easy[7], 16) + 1:08x}"  # a different ntime: a different header

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [1e9]})
        await peer.send({"id": None, "method": "mining.notify", "params": hard})
        await asyncio.sleep(0.3)
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": easy})
        submit = await peer.recv()
        assert submit["params"][1] == "B"
        assert share_hash(share_header(easy, "02000300", submit["params"]), "scrypt") <= share_target(
            0.002, "scrypt"
        )
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "u", algorithm="scrypt", max_shares=1, **fast_options())
    assert not errors, errors
    assert stats.accepted == 1 and stats.jobs == 2


# --------------------------------------------------------------------------------------------------
# 4. Hostile servers.
# --------------------------------------------------------------------------------------------------


HOSTILE_LINES: list[bytes] = [
    b"this is not json",
    b"\xff\xfe\x00 binary garbage \x00",
    b"[1, 2, 3]",
    b'"a string"',
    b"12345",
    b"{}",
    b'{"method": 42, "params": []}',
    b'{"id": 7777, "result": true, "error": null}',  # answer to nothing
    b'{"id": [1, 2], "result": true, "error": null}',
    b"[" * 200_000 + b"]" * 200_000,  # nesting deep enough to exhaust the JSON decoder's recursion
    b'{"id": null, "method": "mining.set_difficulty", "params": [' + b"9" * 5000 + b"]}",
    b'{"id": null, "method": "mining.set_difficulty", "params": ["hard"]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": [-4]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": [NaN]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": [Infinity]}',
    b'{"id": null, "method": "mining.set_difficulty", "params": {"d": 1}}',
    b'{"id": null, "method": "mining.notify", "params": [1, 2, 3, 4, 5, 6, 7, 8, 9]}',
    b'{"id": null, "method": "mining.notify", "params": "notify"}',
    b'{"id": null, "method": "mining.notify", "params": [null, null, null, null, null, null, null, null]}',
    b'{"id": null, "method": "mining.notify", "params": ["j", "00", "", "", [], "20000000", "1a010ccd", "0", true]}',
    b'{"id": null, "method": "mining.set_extranonce", "params": ["xyz", 4]}',
    b'{"id": null, "method": "mining.set_extranonce", "params": ["00", 1000]}',
    b'{"id": null, "method": "mining.set_version_mask", "params": [12]}',
    b'{"id": null, "method": "client.reconnect", "params": ["127.0.0.1", "not a port", 0]}',
    b'{"id": null, "method": "client.reconnect", "params": [["h"], 3333, 0]}',
    b'{"id": null, "method": "client.reconnect", "params": ["127.0.0.1", 70000, 0]}',
]


async def test_hostile_lines_are_survived_and_mining_goes_on() -> None:
    notify = LITECOIN.notify_params("after-garbage")
    bad_notify = LITECOIN.notify_params("bad-types")
    bad_notify[4] = [{"not": "a hash"}]

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        for line in HOSTILE_LINES:
            await peer.send(line)
        await peer.send({"id": None, "method": "mining.notify", "params": bad_notify})
        # a line over the 1 MiB limit, sent in pieces, then a normal line right behind it
        peer.writer.write(b'{"id": null, "method": "mining.notify", "params": ["' + b"a" * (2 << 20))
        await peer.writer.drain()
        await peer.send(b'"]}')
        await peer.send({"id": 31337, "method": "mining.unknown_thing", "params": []})
        reply = await peer.recv()
        assert reply == {"id": 31337, "result": False, "error": {"code": 38, "message": "unknown method"}}
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        assert submit["params"][1] == "after-garbage"
        header = share_header(notify, "02000300", submit["params"])
        assert share_hash(header, "scrypt") <= share_target(0.002, "scrypt")
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "u", algorithm="scrypt", max_shares=1, **fast_options())

    assert not errors, errors
    assert stats.accepted == 1 and stats.connections == 1
    assert stats.jobs == 1  # none of the malformed notifies became a job
    # every hostile line, the notify with a bad branch and the overlong line: one protocol error each
    assert stats.protocol_errors == len(HOSTILE_LINES) + 2


@pytest.mark.parametrize(
    "subscribe_answer",
    [
        b'{"id": 1, "result": "nope", "error": null}',
        b'{"id": 1, "result": [[], "zz", 4], "error": null}',
        b'{"id": 1, "result": [[], "00", 0], "error": null}',
        b'{"id": 1, "result": [[], "00", 4.5], "error": null}',
        b'{"id": 1, "result": [[], "00", 101], "error": null}',
        b"\x00" * 100,
        b"",  # just close
    ],
    ids=[
        "result-not-a-list",
        "extranonce1-not-hex",
        "size-0",
        "size-float",
        "size-101",
        "nul-bytes",
        "close",
    ],
)
async def test_broken_handshakes_end_cleanly(subscribe_answer: bytes) -> None:
    attempts: list[int] = []

    async def handler(peer: Peer) -> None:
        attempts.append(1)
        subscribe = await peer.recv()
        assert subscribe["method"] == "mining.subscribe"
        if subscribe_answer:
            await peer.send(subscribe_answer.replace(b'"id": 1', b'"id": %d' % subscribe["id"]))
            await peer.send(b'{"id": 2, "result": [[], "00", 4], "error": null}')  # an answer to nothing
        with contextlib.suppress(EOFError, TimeoutError):
            await peer.recv(timeout=2)

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1",
            port,
            "u",
            version_rolling=False,
            max_seconds=20,
            **fast_options(max_reconnects=2, response_timeout=0.5),
        )
    assert not errors, errors
    assert stats.gave_up and stats.stop_reason == "gave_up"
    assert len(attempts) == 3  # the first try and max_reconnects=2 more, then a clean stop
    assert stats.accepted == 0 and stats.last_error


async def test_dropped_connection_is_reconnected_with_backoff() -> None:
    connections: list[int] = []
    notify = LITECOIN.notify_params("again")

    async def handler(peer: Peer) -> None:
        connections.append(1)
        await peer.handshake()
        if len(connections) == 1:
            await peer.send({"id": None, "method": "mining.set_difficulty", "params": [1e12]})
            await peer.send({"id": None, "method": "mining.notify", "params": LITECOIN.notify_params("lost")})
            await asyncio.sleep(0.2)
            return  # drop the miner in the middle of a job
        await peer.send({"id": None, "method": "mining.set_difficulty", "params": [0.002]})
        await peer.send({"id": None, "method": "mining.notify", "params": notify})
        submit = await peer.recv()
        assert submit["params"][1] == "again"
        await peer.send({"id": submit["id"], "result": True, "error": None})
        await peer.expect_eof()

    events: list[dict[str, Any]] = []
    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1",
            port,
            "u",
            max_shares=1,
            on_event=events.append,
            **fast_options(max_reconnects=2, backoff_initial=0.05),
        )
    assert not errors, errors
    assert stats.connections == 2 and stats.accepted == 1
    assert [event["delay"] for event in events if event["type"] == "reconnecting"] == [0.05]


async def test_endless_redirects_are_bounded() -> None:
    connections: list[int] = []

    async def handler(peer: Peer) -> None:
        connections.append(1)
        await peer.handshake()
        port = peer.writer.get_extra_info("sockname")[1]
        await peer.send({"id": None, "method": "client.reconnect", "params": ["", port, 0]})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, "u", version_rolling=False, max_seconds=20, **fast_options()
        )
    assert not errors, errors
    assert stats.gave_up and "client.reconnect" in (stats.last_error or "")
    assert len(connections) == miner.MAX_CONSECUTIVE_REDIRECTS + 1


async def test_refused_authorization_ends_cleanly() -> None:
    async def handler(peer: Peer) -> None:
        subscribe = await peer.recv()
        await peer.send({"id": subscribe["id"], "result": [[], "00000000", 4], "error": None})
        authorize = await peer.recv()
        await peer.send({"id": authorize["id"], "result": None, "error": [24, "Unauthorized worker", None]})
        with contextlib.suppress(EOFError, TimeoutError):
            await peer.recv(timeout=2)

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "nobody", version_rolling=False, **fast_options())
    assert not errors, errors
    assert stats.gave_up and "AuthorizationFailed" in (stats.last_error or "")


async def test_server_dropping_after_configure_gets_a_retry_without_it() -> None:
    """BIP310 warns that some servers close the connection on an unknown method."""
    seen: list[str] = []

    async def handler(peer: Peer) -> None:
        first = await peer.recv()
        seen.append(first["method"])
        if first["method"] == "mining.configure":
            return  # slam the door
        await peer.send({"id": first["id"], "result": [[], "00000000", 4], "error": None})
        authorize = await peer.recv()
        await peer.send({"id": authorize["id"], "result": True, "error": None})
        await peer.expect_eof()

    async with fake_pool(handler) as (port, errors):
        stats = await run_miner("127.0.0.1", port, "u", max_seconds=1.5, **fast_options(max_reconnects=3))
    assert not errors, errors
    assert seen[:2] == ["mining.configure", "mining.subscribe"]
    assert stats.connections == 2 and stats.stop_reason == "duration"


def _threads_in_scan() -> int:
    return sum(
        1
        for frame in sys._current_frames().values()
        if any(f.f_code is scan_nonces.__code__ for f in _stack(frame))
    )


def _stack(frame: Any) -> list[Any]:
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


async def _hard_job_server(peer: Peer) -> None:
    await peer.handshake()
    await peer.send({"id": None, "method": "mining.set_difficulty", "params": [1e12]})
    await peer.send({"id": None, "method": "mining.notify", "params": LITECOIN.notify_params("never")})
    await peer.expect_eof(timeout=60)


async def test_cancellation_closes_the_connection_and_stops_hashing() -> None:
    events: list[dict[str, Any]] = []
    async with fake_pool(_hard_job_server) as (port, errors):
        task = asyncio.create_task(
            run_miner("127.0.0.1", port, "u", on_event=events.append, **fast_options(chunk_seconds=5.0))
        )
        while not any(event["type"] == "job" for event in events):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert _threads_in_scan() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        assert _threads_in_scan() == 0  # the 5-second chunk was aborted, not left running
    assert not errors, errors
    assert events[-1]["type"] == "stopped" and events[-1]["reason"] == "cancelled"


async def test_max_seconds_stops_cleanly() -> None:
    async with fake_pool(_hard_job_server) as (port, errors):
        started = time.monotonic()
        stats = await run_miner("127.0.0.1", port, "u", max_seconds=0.8, **fast_options())
        elapsed = time.monotonic() - started
    assert not errors, errors
    assert stats.stop_reason == "duration" and not stats.gave_up
    assert 0.7 < elapsed < 5
    assert stats.hashes > 0 and stats.submitted == 0
    await asyncio.sleep(0.1)
    assert _threads_in_scan() == 0


async def test_callback_errors_do_not_stop_the_miner() -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    entries = load_exchange()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    user = json.loads(entries[2]["line"])["params"][0]
    async with fake_pool(lambda peer: replay(entries, seen, peer)) as (port, errors):
        stats = await run_miner(
            "127.0.0.1", port, user, version_rolling=False, max_shares=1, on_event=broken, **fast_options()
        )
    assert not errors, errors
    assert stats.accepted == 1
