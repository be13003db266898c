"""The pool side of the demo miner's tests, written from the Stratum wire conventions (not from
pool/devtools/miner/ and not from share_validator): a pool and a miner written together can agree on a
wrong byte order and still "find" shares, so the miner is checked against this and against real data.

- Real mainnet blocks, tests/data/blocks/litecoin_mainnet_2265985.json and bitcoin_mainnet_951658.json
  (sources in tests/data/blocks/README.md): their coinbase split around the extranonce, the merkle
  branch of their txids, and the ``mining.notify`` a pool would send for them (`RealBlock`).
- The header a pool rebuilds from a notify and a submit, its share target and hash (`share_header`,
  `share_target`, `share_hash`).
- cpuminer's ``diff_to_target``, transcribed (`cpuminer_share_target`).
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

DATA = pathlib.Path(__file__).resolve().parent / "data"


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
