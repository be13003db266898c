"""From a ``mining.notify`` to the headers the demo miner hashes, and the ``mining.submit`` that reports one.

``mining.notify`` (cpuminer ``stratum_notify``)
    ``[job_id, prevhash, coinb1, coinb2, merkle_branch, version, nbits, ntime, clean_jobs]``.
    ``prevhash`` is the 32 header bytes with each 4-byte word byte-reversed; cpuminer takes
    ``le32dec`` of each word and hashes the words big-endian, i.e. it reverses every word back.
    ``version``, ``nbits``, ``ntime`` are 8 hex digits, the big-endian spelling of the integer; the
    header holds the little-endian bytes (``le32dec`` of the hex bytes, hashed as big-endian words).
    ``coinb1``, ``coinb2`` and the branch entries are raw bytes in hex.

Work (cpuminer ``stratum_gen_work``)
    coinbase = coinb1 + extranonce1 + extranonce2 + coinb2; merkle root = sha256d(coinbase), then
    ``root = sha256d(root + entry)`` for each branch entry, put into the header as is. Header =
    version LE | prevhash (words reversed back) | merkle root | ntime LE | nbits LE | nonce LE.
    extranonce2 starts at zero for a new job id and is incremented after each work unit as a
    little-endian byte counter (``for (i = 0; i < size && !++xnonce2[i]; i++);``).

Version rolling (BIP310)
    The miner deposits a counter into the bits of the negotiated mask (`spread_bits`) and sends it as
    the ``version_bits`` of its submits.

``mining.submit`` (cpuminer ``submit_upstream_work``)
    ``[user, job_id, extranonce2_hex, ntime_hex, nonce_hex]``: extranonce2 as raw bytes in hex,
    ntime and nonce as 8 hex digits, big-endian spelling (cpuminer ``le32enc`` of the big-endian
    header word, then ``bin2hex``). With version rolling negotiated (BIP310) a 6th parameter,
    ``version_bits`` (8 hex, big-endian), and the header version is
    ``(job_version & ~mask) | (version_bits & mask)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pool.devtools.miner.hashing import bits_to_target, check_algorithm, difficulty_to_target, sha256d
from pool.devtools.miner.wire import MAX_LINE_BYTES, StratumProtocolError, hex_bytes, hex_u32

MAX_MERKLE_BRANCH = 64
MAX_JOB_ID_CHARS = 256


def prevhash_from_notify(prevhash_hex: str) -> bytes:
    """The 32 header bytes of the previous block hash from the notify spelling.

    The notify hex holds the header bytes with every 4-byte word byte-reversed (cpuminer
    ``stratum_gen_work``: ``le32dec`` of each word, hashed as big-endian words).
    """
    raw = hex_bytes(prevhash_hex, "prevhash", length=32)
    return b"".join(raw[i : i + 4][::-1] for i in range(0, 32, 4))


def build_coinbase(coinb1: bytes, extranonce1: bytes, extranonce2: bytes, coinb2: bytes) -> bytes:
    return coinb1 + extranonce1 + extranonce2 + coinb2


def merkle_root_from_branch(coinbase: bytes, branch: Sequence[bytes]) -> bytes:
    """Merkle root in header byte order: sha256d(coinbase) folded with each branch entry."""
    root = sha256d(coinbase)
    for entry in branch:
        root = sha256d(root + entry)
    return root


def rolled_version(job_version: int, version_bits: int, mask: int) -> int:
    """BIP310: nVersion = (job_version & ~mask) | (version_bits & mask)."""
    return (job_version & ~mask & 0xFFFFFFFF) | (version_bits & mask)


def spread_bits(counter: int, mask: int) -> int:
    """Deposit the low bits of ``counter`` into the set bits of ``mask``, lowest bit first."""
    result = 0
    bit = 1
    remaining = mask & 0xFFFFFFFF
    while remaining:
        lowest = remaining & -remaining
        if counter & bit:
            result |= lowest
        bit <<= 1
        remaining ^= lowest
    return result


@dataclass(frozen=True, slots=True)
class Job:
    """One ``mining.notify``, decoded. ``prevhash_header`` is in header byte order."""

    job_id: str
    prevhash_header: bytes
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool

    @classmethod
    def from_notify(cls, params: Any) -> Job:
        """Decode notify params, checking them as cpuminer ``stratum_notify`` does (and types)."""
        if not isinstance(params, list) or len(params) < 8:
            raise StratumProtocolError("mining.notify params must be a list of at least 8 items")
        job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime = params[:8]
        if not isinstance(job_id, str) or len(job_id) > MAX_JOB_ID_CHARS:
            raise StratumProtocolError(f"job_id must be a string of at most {MAX_JOB_ID_CHARS} chars")
        if not isinstance(branch, list) or len(branch) > MAX_MERKLE_BRANCH:
            raise StratumProtocolError("merkle branch must be a list of at most 64 hashes")
        clean_jobs = len(params) > 8 and params[8] is True  # cpuminer: json_is_true(params[8])
        return cls(
            job_id=job_id,
            prevhash_header=prevhash_from_notify(prevhash),
            coinb1=hex_bytes(coinb1, "coinb1", max_length=MAX_LINE_BYTES // 2),
            coinb2=hex_bytes(coinb2, "coinb2", max_length=MAX_LINE_BYTES // 2),
            merkle_branch=tuple(hex_bytes(entry, "merkle branch entry", length=32) for entry in branch),
            version=hex_u32(version, "version"),
            nbits=hex_u32(nbits, "nbits"),
            ntime=hex_u32(ntime, "ntime"),
            clean_jobs=clean_jobs,
        )


def header_prefix(job: Job, extranonce1: bytes, extranonce2: bytes, *, version: int | None = None) -> bytes:
    """The first 76 header bytes (everything but the nonce) for one extranonce2 and version."""
    coinbase = build_coinbase(job.coinb1, extranonce1, extranonce2, job.coinb2)
    root = merkle_root_from_branch(coinbase, job.merkle_branch)
    header_version = job.version if version is None else version
    return (
        header_version.to_bytes(4, "little")
        + job.prevhash_header
        + root
        + job.ntime.to_bytes(4, "little")
        + job.nbits.to_bytes(4, "little")
    )


def build_header(
    job: Job, extranonce1: bytes, extranonce2: bytes, nonce: int, *, version: int | None = None
) -> bytes:
    """The 80-byte block header a miner hashes for this job, extranonce2, nonce and version."""
    return header_prefix(job, extranonce1, extranonce2, version=version) + nonce.to_bytes(4, "little")


@dataclass(frozen=True, slots=True)
class WorkUnit:
    """One job with a fixed extranonce2 and version: 2**32 nonces to scan."""

    job: Job
    extranonce1: bytes
    extranonce2: bytes
    version: int
    version_bits: int | None  # None: version rolling not negotiated, no 6th submit parameter
    version_mask: int
    difficulty: float
    algorithm: str
    share_target: int
    network_target: int
    header_prefix: bytes
    generation: int = 0

    def header(self, nonce: int) -> bytes:
        return self.header_prefix + nonce.to_bytes(4, "little")

    def submit_params(self, username: str, nonce: int) -> list[str]:
        """``mining.submit`` params, spelled as cpuminer ``submit_upstream_work`` does (+ BIP310)."""
        params = [
            username,
            self.job.job_id,
            self.extranonce2.hex(),
            f"{self.job.ntime:08x}",
            f"{nonce:08x}",
        ]
        if self.version_bits is not None:
            params.append(f"{self.version_bits:08x}")
        return params


def make_work_unit(
    job: Job,
    extranonce1: bytes,
    extranonce2: bytes,
    *,
    difficulty: float,
    algorithm: str,
    version_bits: int | None = None,
    version_mask: int = 0,
    generation: int = 0,
) -> WorkUnit:
    if version_bits is not None and version_bits & ~version_mask:
        raise ValueError(f"version bits {version_bits:08x} outside the mask {version_mask:08x}")
    version = job.version if version_bits is None else rolled_version(job.version, version_bits, version_mask)
    return WorkUnit(
        job=job,
        extranonce1=extranonce1,
        extranonce2=extranonce2,
        version=version,
        version_bits=version_bits,
        version_mask=version_mask,
        difficulty=difficulty,
        algorithm=check_algorithm(algorithm),
        share_target=difficulty_to_target(difficulty, algorithm),
        network_target=bits_to_target(job.nbits),
        header_prefix=header_prefix(job, extranonce1, extranonce2, version=version),
        generation=generation,
    )
