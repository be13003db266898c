"""Demo CPU miner: a real Stratum v1 TCP client, written from the public wire conventions.

This module is deliberately independent of the pool's own share code (``share_validator``): a pool and
a miner written together can agree on a wrong byte order and still "find" shares. Everything here
follows the reference client, pooler/cpuminer 2.5 (``cpu-miner.c`` and ``util.c``), BIP310 for version
rolling, and the conventions summarised in the project's ``stratum-v1-wire`` notes. Pure Python and
``hashlib`` only.

Wire conventions and where they come from
-----------------------------------------
Framing
    One JSON object per line, ``\\n`` terminated (cpuminer ``stratum_send_line`` appends ``\\n``;
    ``stratum_recv_line`` splits on ``\\n``). Lines longer than ``MAX_LINE_BYTES`` are dropped.

Handshake
    ``mining.configure`` first when version rolling is wanted (BIP310: "SHOULD be the first message"),
    with ``[["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]``;
    then ``mining.subscribe [USER_AGENT]`` and, only once its answer is in, ``mining.authorize
    [user, password]`` (cpuminer ``stratum_subscribe`` / ``stratum_authorize``). The subscribe result
    is ``[subscriptions, extranonce1_hex, extranonce2_size]``; cpuminer refuses an extranonce2_size
    outside 1..100 and retries the subscribe once with empty params when the first one is refused.
    Requests carry unique ids and answers are matched by id, so their order does not matter (cpuminer
    itself sends every submit with id 4).

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

Proof of work and targets
    scrypt(N=1024, r=1, p=1) with the header as password and salt, or sha256d; the 32-byte result is
    read as a little-endian 256-bit integer (cpuminer ``fulltest`` compares ``hash[7]`` first) and a
    share is valid when ``hash <= target``. cpuminer ``stratum_gen_work`` calls
    ``diff_to_target(target, diff / 65536.0)`` for scrypt and ``diff_to_target(target, diff)`` for
    sha256d, where ``diff_to_target`` computes ``0xffff0000 * 2**192 / diff``. So a Stratum
    difficulty D means target ``0xffff * 2**208 / D`` for sha256d and ``0xffff * 2**224 / D`` for
    scrypt (the "multiplier 65536" of scrypt pools). This module computes the exact floor of that
    quotient; cpuminer computes it in double precision and keeps 64 bits at a 32-bit word boundary,
    so the two agree exactly for powers of two and otherwise differ only in the low-order bits.
    A ``mining.set_difficulty`` applies to the jobs that arrive after it, as in cpuminer
    (``stratum_notify`` copies ``next_diff`` into the job); before any, the difficulty is 1.

``mining.submit`` (cpuminer ``submit_upstream_work``)
    ``[user, job_id, extranonce2_hex, ntime_hex, nonce_hex]``: extranonce2 as raw bytes in hex,
    ntime and nonce as 8 hex digits, big-endian spelling (cpuminer ``le32enc`` of the big-endian
    header word, then ``bin2hex``). With version rolling negotiated (BIP310) a 6th parameter,
    ``version_bits`` (8 hex, big-endian), and the header version is
    ``(job_version & ~mask) | (version_bits & mask)``. An answer is accepted when ``result`` is
    true and ``error`` is null; otherwise it is counted as rejected under the error code
    (``[code, message, ...]`` or ``{"code": ..., "message": ...}``).

Other server messages
    ``mining.set_difficulty [diff]``; ``client.reconnect [host, port, wait]`` (cpuminer
    ``stratum_reconnect``; empty host/port mean the current ones); ``client.show_message [text]``
    and ``client.get_version`` answered as cpuminer does (``true`` / the user agent);
    ``mining.set_extranonce [extranonce1, extranonce2_size]`` (NiceHash extension: used from the next
    job on); ``mining.set_version_mask [mask]`` (BIP310: valid immediately); ``mining.ping`` answered
    ``"pong"``. A request with an id and an unknown method is answered
    ``{"id": id, "result": false, "error": {"code": 38, "message": "unknown method"}}`` as in the
    cpuminer family's ``stratum_unknown_method`` (tpruvot/cpuminer-multi; pooler's 2.5 ignores it).

The hashing runs in a worker thread (``asyncio.to_thread``) in chunks of about ``chunk_seconds``, so
the event loop keeps reading; a ``clean_jobs`` notify aborts the running chunk and shares found for the
abandoned job are not submitted (cpuminer discards stale work the same way). A newer job without
``clean_jobs`` is picked up at the next chunk boundary.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import logging
import math
import string
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ALGORITHMS",
    "AuthorizationFailed",
    "Job",
    "LineFramer",
    "MinerStats",
    "ScanResult",
    "Share",
    "StratumMiner",
    "StratumProtocolError",
    "WorkUnit",
    "bits_to_target",
    "build_coinbase",
    "build_header",
    "build_parser",
    "difficulty_to_target",
    "hash_to_int",
    "header_prefix",
    "main",
    "make_work_unit",
    "merkle_root_from_branch",
    "parse_stratum_url",
    "pow_hash",
    "prevhash_from_notify",
    "rolled_version",
    "run_miner",
    "scan_nonces",
    "scrypt_1024_1_1",
    "sha256d",
    "spread_bits",
]

log = logging.getLogger(__name__)

USER_AGENT = "demo-miner/1.0"
ALGORITHMS = ("scrypt", "sha256d")
MAX_NONCE = 0xFFFFFFFF
MAX_TARGET = (1 << 256) - 1
# Difficulty-1 targets in Stratum units (see the module docstring: cpuminer diff_to_target).
DIFF1_TARGET = {"sha256d": 0xFFFF << 208, "scrypt": 0xFFFF << 224}
REQUESTED_VERSION_MASK = 0x1FFFE000  # BIP310 example mask, the BIP320 general-purpose bits 13..28
VERSION_ROLLING_MIN_BIT_COUNT = 2
MAX_LINE_BYTES = 1 << 20
MAX_EXTRANONCE_BYTES = 100  # cpuminer stratum_subscribe: "Invalid value of extranonce2_size" above 100
MAX_MERKLE_BRANCH = 64
MAX_JOB_ID_CHARS = 256
MAX_RECONNECT_WAIT = 300.0
MAX_CONSECUTIVE_REDIRECTS = 10
MAX_UNSENT_BYTES = 4 << 20
UNKNOWN_METHOD_ERROR = {"code": 38, "message": "unknown method"}  # cpuminer-multi, ENOSYS

_HEX_DIGITS = frozenset(string.hexdigits)


class StratumProtocolError(ValueError):
    """The server sent something that does not follow Stratum v1."""


class AuthorizationFailed(Exception):
    """``mining.authorize`` was refused."""


# --------------------------------------------------------------------------------------------------
# Pure work building: hashing, coinbase, merkle root, header, targets.
# --------------------------------------------------------------------------------------------------


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def scrypt_1024_1_1(header: bytes) -> bytes:
    """Litecoin's proof-of-work hash: scrypt with the header as password and salt."""
    return hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32)


def pow_hash(algorithm: str, header: bytes) -> bytes:
    if algorithm == "scrypt":
        return scrypt_1024_1_1(header)
    if algorithm == "sha256d":
        return sha256d(header)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")


def hash_to_int(digest: bytes) -> int:
    """A proof-of-work hash as the 256-bit integer compared with targets (little-endian)."""
    return int.from_bytes(digest, "little")


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    return algorithm


MAX_DIFFICULTY = 2**128


def _check_difficulty(difficulty: Any) -> float | int:
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)):
        raise TypeError(f"difficulty must be a number, not {difficulty!r:.50}")
    if isinstance(difficulty, float) and not math.isfinite(difficulty):
        raise ValueError(f"difficulty must be finite, not {difficulty!r}")
    if not 0 < difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"difficulty must be in (0, 2**128], not {difficulty!r:.50}")
    return difficulty


def difficulty_to_target(difficulty: float, algorithm: str) -> int:
    """Share target for a Stratum difficulty: floor(diff1_target / difficulty), capped at 2**256-1.

    sha256d: diff1 = 0xffff * 2**208; scrypt: diff1 = 0xffff * 2**224 (cpuminer divides the scrypt
    difficulty by 65536 before ``diff_to_target``).
    """
    diff1 = DIFF1_TARGET[_check_algorithm(algorithm)]
    value = Fraction(diff1) / Fraction(_check_difficulty(difficulty))
    return min(math.floor(value), MAX_TARGET)


def hash_difficulty(hash_int: int, algorithm: str) -> float:
    """The difficulty a hash achieves, in the same Stratum unit as ``difficulty_to_target``."""
    return DIFF1_TARGET[_check_algorithm(algorithm)] / max(hash_int, 1)


def bits_to_target(nbits: int) -> int:
    """The network target encoded in the compact ``nBits`` field."""
    exponent = nbits >> 24
    mantissa = nbits & 0x007FFFFF
    if nbits & 0x00800000:  # negative in the compact encoding: no hash can meet it
        return 0
    if exponent <= 3:
        target = mantissa >> (8 * (3 - exponent))
    else:
        target = mantissa << (8 * (exponent - 3))
    return min(target, MAX_TARGET)


def prevhash_from_notify(prevhash_hex: str) -> bytes:
    """The 32 header bytes of the previous block hash from the notify spelling.

    The notify hex holds the header bytes with every 4-byte word byte-reversed (cpuminer
    ``stratum_gen_work``: ``le32dec`` of each word, hashed as big-endian words).
    """
    raw = _hex_bytes(prevhash_hex, "prevhash", length=32)
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


def _hex_bytes(value: Any, name: str, *, length: int | None = None, max_length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise StratumProtocolError(f"{name} must be a hex string, not {type(value).__name__}")
    if len(value) % 2 or not _HEX_DIGITS.issuperset(value):
        raise StratumProtocolError(f"{name} is not an even-length hex string: {value[:80]!r}")
    if length is not None and len(value) != 2 * length:
        raise StratumProtocolError(
            f"{name} must be {length} bytes ({2 * length} hex digits), got {len(value)}"
        )
    if max_length is not None and len(value) > 2 * max_length:
        raise StratumProtocolError(f"{name} longer than {max_length} bytes")
    return bytes.fromhex(value)


def _hex_u32(value: Any, name: str) -> int:
    """An 8-hex-digit big-endian spelling of a 32-bit integer (version, nbits, ntime, masks)."""
    return int.from_bytes(_hex_bytes(value, name, length=4), "big")


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
            coinb1=_hex_bytes(coinb1, "coinb1", max_length=MAX_LINE_BYTES // 2),
            coinb2=_hex_bytes(coinb2, "coinb2", max_length=MAX_LINE_BYTES // 2),
            merkle_branch=tuple(_hex_bytes(entry, "merkle branch entry", length=32) for entry in branch),
            version=_hex_u32(version, "version"),
            nbits=_hex_u32(nbits, "nbits"),
            ntime=_hex_u32(ntime, "ntime"),
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
        algorithm=_check_algorithm(algorithm),
        share_target=difficulty_to_target(difficulty, algorithm),
        network_target=bits_to_target(job.nbits),
        header_prefix=header_prefix(job, extranonce1, extranonce2, version=version),
        generation=generation,
    )


@dataclass(frozen=True, slots=True)
class Share:
    nonce: int
    hash_int: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    shares: tuple[Share, ...]
    next_nonce: int  # first nonce not hashed
    hashes: int


def scan_nonces(
    prefix: bytes,
    first_nonce: int,
    last_nonce: int,
    target: int,
    algorithm: str,
    *,
    abort: threading.Event | None = None,
    time_budget: float | None = None,
) -> ScanResult:
    """Hash nonces ``first_nonce..last_nonce`` after the 76-byte ``prefix``; keep ``hash <= target``.

    Stops early when ``abort`` is set or after ``time_budget`` seconds (checked every hash for
    scrypt, every 256 hashes for sha256d). Runs in a worker thread; no I/O.
    """
    if len(prefix) != 76:
        raise ValueError(f"header prefix must be 76 bytes, got {len(prefix)}")
    if algorithm == "sha256d":
        midstate = hashlib.sha256(prefix[:64])  # the first SHA-256 block is the same for every nonce
        tail = prefix[64:]
        sha256 = hashlib.sha256

        def digest(nonce_bytes: bytes) -> bytes:
            inner = midstate.copy()
            inner.update(tail + nonce_bytes)
            return sha256(inner.digest()).digest()

        check_every = 0xFF
    elif algorithm == "scrypt":
        scrypt = hashlib.scrypt

        def digest(nonce_bytes: bytes) -> bytes:
            header = prefix + nonce_bytes
            return scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32)

        check_every = 0
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")

    deadline = None if time_budget is None else time.monotonic() + time_budget
    shares: list[Share] = []
    nonce = first_nonce
    last = min(last_nonce, MAX_NONCE)
    from_bytes = int.from_bytes
    while nonce <= last:
        value = from_bytes(digest(nonce.to_bytes(4, "little")), "little")
        if value <= target:
            shares.append(Share(nonce, value))
        nonce += 1
        if nonce & check_every == 0:
            if abort is not None and abort.is_set():
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
    return ScanResult(tuple(shares), nonce, nonce - first_nonce)


# --------------------------------------------------------------------------------------------------
# Framing: bytes -> lines, with a hard line limit.
# --------------------------------------------------------------------------------------------------


class LineFramer:
    """Newline framing. A line longer than ``max_line_bytes`` is dropped whole and counted."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.overlong_lines = 0
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            start = end + 1
            if self._discarding:  # the end of a line already counted as overlong
                self._discarding = False
                continue
            if len(self._buffer) + len(piece) > self.max_line_bytes:
                self.overlong_lines += 1
                self._buffer.clear()
                continue
            self._buffer += piece
            line = bytes(self._buffer).strip()
            self._buffer.clear()
            if line:
                lines.append(line)
        rest = data[start:]
        if rest and not self._discarding:
            if len(self._buffer) + len(rest) > self.max_line_bytes:
                self.overlong_lines += 1
                self._buffer.clear()
                self._discarding = True
            else:
                self._buffer += rest
        return lines


# --------------------------------------------------------------------------------------------------
# The client.
# --------------------------------------------------------------------------------------------------


@dataclass
class MinerStats:
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_code: dict[int | None, int] = field(default_factory=dict)
    stale_discarded: int = 0
    blocks: int = 0
    hashes: int = 0
    jobs: int = 0
    connections: int = 0
    protocol_errors: int = 0
    last_error: str | None = None
    gave_up: bool = False
    stop_reason: str | None = None
    elapsed: float = 0.0

    @property
    def hashrate(self) -> float:
        return self.hashes / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_code": {str(code): count for code, count in self.rejected_by_code.items()},
            "stale_discarded": self.stale_discarded,
            "blocks": self.blocks,
            "hashes": self.hashes,
            "hashrate": round(self.hashrate, 2),
            "jobs": self.jobs,
            "connections": self.connections,
            "protocol_errors": self.protocol_errors,
            "last_error": self.last_error,
            "gave_up": self.gave_up,
            "stop_reason": self.stop_reason,
            "elapsed": round(self.elapsed, 3),
        }


@dataclass
class _ActiveJob:
    """A job as received on this connection, with what it was received under."""

    job: Job
    difficulty: float
    extranonce1: bytes
    extranonce2_size: int
    generation: int
    next_extranonce2: int = 0


@dataclass
class _Pending:
    method: str
    future: asyncio.Future[dict[str, Any]] | None = None
    on_response: Callable[[dict[str, Any]], None] | None = None


def _response_error(message: dict[str, Any]) -> tuple[int | None, str] | None:
    """``(code, text)`` of a JSON-RPC error, in any of the shapes pools use, or None."""
    error = message.get("error")
    if error is None:
        return None
    code: Any = None
    text: Any = None
    if isinstance(error, list):
        code = error[0] if error else None
        text = error[1] if len(error) > 1 else None
    elif isinstance(error, dict):
        code = error.get("code")
        text = error.get("message")
    else:
        text = error
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    return code, str(text) if text is not None else ""


class _ReconnectRequested(Exception):
    pass


class StratumMiner:
    """A Stratum v1 CPU miner. ``await StratumMiner(...).run()`` returns the final ``MinerStats``."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str = "x",
        *,
        algorithm: str = "scrypt",
        max_shares: int | None = None,
        max_seconds: float | None = None,
        version_rolling: bool = True,
        suggest_difficulty: float | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        max_reconnects: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
        response_timeout: float = 30.0,
        chunk_seconds: float = 0.25,
        max_line_bytes: int = MAX_LINE_BYTES,
        duty_cycle: float = 1.0,
    ) -> None:
        if not 0.0001 <= duty_cycle <= 1.0:
            raise ValueError("duty_cycle must be in [0.0001, 1]")
        self.duty_cycle = duty_cycle  # the fraction of the time spent hashing: a slower miner
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.algorithm = _check_algorithm(algorithm)
        if max_shares is not None and max_shares < 1:
            raise ValueError("max_shares must be >= 1 or None")
        self.max_shares = max_shares
        self.max_seconds = max_seconds
        self.version_rolling = version_rolling
        self.suggest_difficulty = suggest_difficulty
        self.on_event = on_event
        self.max_reconnects = max_reconnects
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.chunk_seconds = chunk_seconds
        self.max_line_bytes = max_line_bytes
        self.stats = MinerStats()
        self._method_handlers: dict[str, Callable[[Any, list[Any]], None]] = {
            "mining.notify": self._on_notify,
            "mining.set_difficulty": self._on_set_difficulty,
            "mining.set_extranonce": self._on_set_extranonce,
            "mining.set_version_mask": self._on_set_version_mask,
            "client.reconnect": self._on_reconnect,
            "client.show_message": self._on_show_message,
            "client.get_version": self._on_get_version,
            "mining.ping": self._on_ping,
        }
        self._configure_unsupported = False  # set when a server dropped us after mining.configure
        self._connection_number = 0
        self._session_host = host
        self._session_port = self.port
        self._reset_session(None)

    # ---------------------------------------------------------------- session state

    def _reset_session(self, writer: asyncio.StreamWriter | None) -> None:
        self._writer = writer
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._extranonce1: bytes | None = None
        self._extranonce2_size = 0
        self._pending_extranonce: tuple[bytes, int] | None = None
        self._next_difficulty: float = 1.0  # cpuminer stratum_subscribe: next_diff = 1.0
        self._version_mask = 0  # non-zero once version rolling is negotiated
        self._version_counter = 1
        self._current: _ActiveJob | None = None
        self._job_event = asyncio.Event()
        self._generation = 0
        self._stale_generation = 0  # jobs older than this were cancelled by clean_jobs
        self._scan_abort: threading.Event | None = None
        self._reconnect_to: tuple[str, int, float] | None = None
        self._authorized = False
        self._configure_pending = False
        self._pending_submits = 0
        self._submits_settled = asyncio.Event()
        self._submits_settled.set()

    def _prefix(self) -> str:
        return f"[{self._session_host}:{self._session_port}#{self._connection_number}]"

    def _emit(self, event_type: str, **fields: Any) -> None:
        if self.on_event is None:
            return
        event = {"type": event_type, **fields}
        try:
            self.on_event(event)
        except Exception:  # a broken callback must not stop the miner
            log.exception("%s on_event callback failed for %s", self._prefix(), event_type)

    def _protocol_error(self, what: str, detail: Any = None) -> None:
        self.stats.protocol_errors += 1
        if detail is None:
            log.warning("%s protocol error: %s", self._prefix(), what)
        else:
            shown = detail[:200] if isinstance(detail, (bytes, str)) else detail
            log.warning("%s protocol error: %s: %.300r", self._prefix(), what, shown)
        self._emit("protocol_error", message=what)

    # ---------------------------------------------------------------- sending

    def _write(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("not connected")
        if self._writer.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            # The server keeps asking (pings, get_version, ...) but does not read the answers.
            self._protocol_error("server does not read what we send; closing the connection")
            self._writer.close()
            raise ConnectionError("server does not read")
        line = json.dumps(message, separators=(",", ":")) + "\n"
        log.debug("%s > %s", self._prefix(), line.rstrip())
        self._writer.write(line.encode())

    def _request(
        self,
        method: str,
        params: list[Any],
        *,
        on_response: Callable[[dict[str, Any]], None] | None = None,
        want_future: bool = False,
    ) -> tuple[int, asyncio.Future[dict[str, Any]] | None]:
        msg_id = self._next_id
        self._next_id += 1
        future = asyncio.get_running_loop().create_future() if want_future else None
        self._pending[msg_id] = _Pending(method, future, on_response)
        self._write({"id": msg_id, "method": method, "params": params})
        return msg_id, future

    async def _call(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Send a request and wait for its answer (matched by id, in whatever order it comes)."""
        msg_id, future = self._request(method, params, want_future=True)
        assert future is not None
        await self._drain()
        try:
            return await asyncio.wait_for(future, self.response_timeout)
        except TimeoutError:
            self._pending.pop(msg_id, None)
            raise TimeoutError(f"no answer to {method} within {self.response_timeout} s") from None

    async def _drain(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    def _reply(self, msg_id: Any, result: Any, error: Any = None) -> None:
        try:
            self._write({"id": msg_id, "result": result, "error": error})
        except ConnectionError:
            pass

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(exc)
        if self._pending_submits:
            self._pending_submits = 0
            self._submits_settled.set()

    # ---------------------------------------------------------------- receiving

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        framer = LineFramer(self.max_line_bytes)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    log.info("%s connection closed by the server", self._prefix())
                    return
                overlong_before = framer.overlong_lines
                lines = framer.feed(data)
                if framer.overlong_lines != overlong_before:
                    self._protocol_error(f"line longer than {self.max_line_bytes} bytes dropped")
                for line in lines:
                    try:
                        self._dispatch_line(line)
                    except _ReconnectRequested:
                        return
                    except Exception as exc:  # a hostile line must never kill the connection loop
                        log.exception("%s failed to handle a server line", self._prefix())
                        self._protocol_error(f"unhandled {type(exc).__name__}", line)
        finally:
            self._fail_pending(ConnectionError("connection closed"))

    def _dispatch_line(self, line: bytes) -> None:
        log.debug("%s < %s", self._prefix(), line[:500])
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            self._protocol_error(f"undecodable line ({type(exc).__name__})", line)
            return
        if not isinstance(message, dict):
            self._protocol_error("line is not a JSON object", line)
            return
        method = message.get("method")
        if method is not None:
            if not isinstance(method, str):
                self._protocol_error("method is not a string", line)
                return
            self._handle_server_method(method, message.get("id"), message.get("params"))
        elif "id" in message:
            self._handle_response(message)
        else:
            self._protocol_error("neither a request nor a response", line)

    def _handle_response(self, message: dict[str, Any]) -> None:
        msg_id = message.get("id")
        if isinstance(msg_id, bool) or not isinstance(msg_id, int):
            if msg_id is None and message.get("error") is not None:
                log.warning("%s server error without id: %r", self._prefix(), message.get("error"))
                return
            self._protocol_error("response with an unusable id", msg_id)
            return
        entry = self._pending.pop(msg_id, None)
        if entry is None:
            self._protocol_error("response to an unknown request id", msg_id)
            return
        if entry.future is not None and not entry.future.done():
            entry.future.set_result(message)
        if entry.on_response is not None:
            entry.on_response(message)

    def _handle_server_method(self, method: str, msg_id: Any, params: Any) -> None:
        handler = self._method_handlers.get(method.lower())  # cpuminer matches with strcasecmp
        if handler is None:
            log.info("%s unknown server method %r", self._prefix(), method[:100])
            self._emit("unknown_method", method=method[:100])
            if msg_id is not None:
                self._reply(msg_id, False, UNKNOWN_METHOD_ERROR)
            return
        if params is None:
            params = []
        if not isinstance(params, list):
            self._protocol_error(f"{method} params are not a list", params)
            return
        try:
            handler(msg_id, params)
        except StratumProtocolError as exc:
            self._protocol_error(f"{method}: {exc}")

    # ---------------------------------------------------------------- server methods

    def _on_notify(self, msg_id: Any, params: list[Any]) -> None:
        job = Job.from_notify(params)
        if self._extranonce1 is None:
            raise StratumProtocolError("mining.notify before the subscribe answer")
        if self._pending_extranonce is not None:
            self._extranonce1, self._extranonce2_size = self._pending_extranonce
            self._pending_extranonce = None
        self._generation += 1
        previous = self._current
        active = _ActiveJob(
            job=job,
            difficulty=self._next_difficulty,
            extranonce1=self._extranonce1,
            extranonce2_size=self._extranonce2_size,
            generation=self._generation,
        )
        if (
            previous is not None
            and previous.job.job_id == job.job_id
            and previous.extranonce1 == active.extranonce1
            and previous.extranonce2_size == active.extranonce2_size
        ):
            # cpuminer stratum_notify only zeroes extranonce2 for a new job id.
            active.next_extranonce2 = previous.next_extranonce2
        if job.clean_jobs:
            self._stale_generation = active.generation
            self._abort_scan()
        self._current = active
        self._job_event.set()
        self.stats.jobs += 1
        log.info(
            "%s job %s (clean=%s, difficulty %g, ntime %08x)",
            self._prefix(),
            job.job_id,
            job.clean_jobs,
            active.difficulty,
            job.ntime,
        )
        self._emit(
            "job",
            job_id=job.job_id,
            clean_jobs=job.clean_jobs,
            difficulty=active.difficulty,
            ntime=f"{job.ntime:08x}",
            nbits=f"{job.nbits:08x}",
            version=f"{job.version:08x}",
        )

    def _on_set_difficulty(self, msg_id: Any, params: list[Any]) -> None:
        try:
            difficulty = _check_difficulty(params[0] if params else None)
        except (TypeError, ValueError) as exc:
            raise StratumProtocolError(str(exc)) from None
        self._next_difficulty = difficulty
        log.info("%s difficulty %g (from the next job on)", self._prefix(), difficulty)
        self._emit("difficulty", difficulty=difficulty)

    def _on_set_extranonce(self, msg_id: Any, params: list[Any]) -> None:
        if len(params) < 2:
            raise StratumProtocolError("mining.set_extranonce needs [extranonce1, extranonce2_size]")
        extranonce1 = _hex_bytes(params[0], "extranonce1", max_length=MAX_EXTRANONCE_BYTES)
        size = _checked_extranonce2_size(params[1])
        self._pending_extranonce = (extranonce1, size)
        log.info(
            "%s extranonce1 %s, extranonce2_size %d from the next job",
            self._prefix(),
            extranonce1.hex(),
            size,
        )
        self._emit("extranonce", extranonce1=extranonce1.hex(), extranonce2_size=size)

    def _on_set_version_mask(self, msg_id: Any, params: list[Any]) -> None:
        mask = _hex_u32(params[0] if params else None, "version mask")
        if not self._version_mask:
            log.info("%s ignoring mining.set_version_mask: version rolling not negotiated", self._prefix())
            return
        self._version_mask = mask & REQUESTED_VERSION_MASK
        self._abort_scan()  # BIP310: the new mask is valid immediately
        log.info("%s version mask %08x", self._prefix(), self._version_mask)
        self._emit("version_mask", mask=f"{self._version_mask:08x}")

    def _on_reconnect(self, msg_id: Any, params: list[Any]) -> None:
        def given(index: int) -> Any:
            value = params[index] if len(params) > index else None
            return None if value == "" else value

        host = given(0) if given(0) is not None else self._session_host
        if not isinstance(host, str) or len(host) > 255:
            raise StratumProtocolError("client.reconnect host must be a string")
        # cpuminer stratum_reconnect accepts the port as a string or a number
        port_number = (
            _number(given(1), "client.reconnect port") if given(1) is not None else self._session_port
        )
        if port_number != int(port_number) or not 0 < port_number < 65536:
            raise StratumProtocolError(f"client.reconnect port out of range: {port_number!r}")
        port = int(port_number)
        wait = _number(given(2), "client.reconnect wait") if given(2) is not None else 0.0
        wait = min(max(wait, 0.0), MAX_RECONNECT_WAIT)
        log.info("%s server asks to reconnect to %s:%d after %g s", self._prefix(), host, port, wait)
        self._reconnect_to = (host, port, wait)
        raise _ReconnectRequested

    def _on_show_message(self, msg_id: Any, params: list[Any]) -> None:
        text = params[0] if params else ""
        log.warning("%s MESSAGE FROM SERVER: %s", self._prefix(), str(text)[:1000])
        self._emit("message", text=str(text)[:1000])
        if msg_id is not None:
            self._reply(msg_id, True)

    def _on_get_version(self, msg_id: Any, params: list[Any]) -> None:
        if msg_id is not None:
            self._reply(msg_id, USER_AGENT)

    def _on_ping(self, msg_id: Any, params: list[Any]) -> None:
        if msg_id is not None:
            self._reply(msg_id, "pong")

    # ---------------------------------------------------------------- responses to our requests

    def _on_configure_result(self, message: dict[str, Any]) -> None:
        self._configure_pending = False
        result = message.get("result")
        error = _response_error(message)
        mask = 0
        if error is None and isinstance(result, dict) and result.get("version-rolling") is True:
            try:
                mask = _hex_u32(result.get("version-rolling.mask"), "version-rolling.mask")
            except StratumProtocolError as exc:
                self._protocol_error(f"mining.configure: {exc}")
                mask = 0
        self._version_mask = mask & REQUESTED_VERSION_MASK
        if self._version_mask:
            log.info("%s version rolling on, mask %08x", self._prefix(), self._version_mask)
        else:
            log.info("%s version rolling not available (%r)", self._prefix(), error or result)
        self._emit("configured", version_rolling=bool(self._version_mask), mask=f"{self._version_mask:08x}")

    def _apply_subscribe_result(self, result: Any) -> None:
        if not isinstance(result, list) or len(result) < 3:
            raise StratumProtocolError(
                f"subscribe result must be [subscriptions, extranonce1, size]: {result!r:.200}"
            )
        extranonce1 = _hex_bytes(result[1], "extranonce1", max_length=MAX_EXTRANONCE_BYTES)
        size = _checked_extranonce2_size(result[2])
        self._extranonce1 = extranonce1
        self._extranonce2_size = size
        self._next_difficulty = 1.0

    def _on_submit_result(self, work: WorkUnit, share: Share, message: dict[str, Any]) -> None:
        self._pending_submits = max(0, self._pending_submits - 1)
        if not self._pending_submits:
            self._submits_settled.set()
        error = _response_error(message)
        fields = {
            "job_id": work.job.job_id,
            "nonce": f"{share.nonce:08x}",
            "extranonce2": work.extranonce2.hex(),
        }
        if error is None and message.get("result") is True:
            self.stats.accepted += 1
            log.info(
                "%s accepted: %d/%d",
                self._prefix(),
                self.stats.accepted,
                self.stats.accepted + self.stats.rejected,
            )
            self._emit("accepted", **fields)
            return
        code, text = error if error is not None else (None, f"result {message.get('result')!r}")
        self.stats.rejected += 1
        self.stats.rejected_by_code[code] = self.stats.rejected_by_code.get(code, 0) + 1
        log.warning("%s rejected (%s): %s", self._prefix(), code, text[:200])
        self._emit("rejected", code=code, reason=text[:200], **fields)

    # ---------------------------------------------------------------- handshake and mining

    async def _handshake(self) -> None:
        if self.version_rolling and not self._configure_unsupported:
            self._configure_pending = True
            self._request(
                "mining.configure",
                [
                    ["version-rolling"],
                    {
                        "version-rolling.mask": f"{REQUESTED_VERSION_MASK:08x}",
                        "version-rolling.min-bit-count": VERSION_ROLLING_MIN_BIT_COUNT,
                    },
                ],
                on_response=self._on_configure_result,
            )
        answer = await self._call("mining.subscribe", [USER_AGENT])
        if _response_error(answer) is not None or answer.get("result") is None:
            # cpuminer stratum_subscribe: retry once with empty params
            log.info(
                "%s subscribe refused (%r), retrying without params", self._prefix(), answer.get("error")
            )
            answer = await self._call("mining.subscribe", [])
            if _response_error(answer) is not None:
                raise StratumProtocolError(f"mining.subscribe refused: {answer.get('error')!r:.200}")
        self._apply_subscribe_result(answer.get("result"))
        self._emit(
            "subscribed",
            extranonce1=self._extranonce1.hex() if self._extranonce1 else "",
            extranonce2_size=self._extranonce2_size,
        )
        if self.suggest_difficulty is not None:
            self._request("mining.suggest_difficulty", [self.suggest_difficulty])
        answer = await self._call("mining.authorize", [self.username, self.password])
        error = _response_error(answer)
        # cpuminer stratum_authorize: refused if result is missing or false, or error is set
        if error is not None or "result" not in answer or answer.get("result") is False:
            raise AuthorizationFailed(
                f"mining.authorize refused for {self.username!r}: {error or answer.get('result')!r}"
            )
        self._authorized = True
        log.info("%s authorized as %s", self._prefix(), self.username)
        self._emit("authorized", username=self.username)

    def _abort_scan(self) -> None:
        if self._scan_abort is not None:
            self._scan_abort.set()

    async def _wait_for_job(self) -> _ActiveJob:
        while self._current is None:
            self._job_event.clear()
            await self._job_event.wait()
        return self._current

    def _next_work_unit(self, active: _ActiveJob) -> WorkUnit:
        space = 256**active.extranonce2_size
        counter = active.next_extranonce2
        if counter >= space:
            log.warning(
                "%s extranonce2 space of job %s exhausted, wrapping", self._prefix(), active.job.job_id
            )
            counter %= space
        active.next_extranonce2 = counter + 1
        # cpuminer stratum_gen_work increments the extranonce2 bytes as a little-endian counter
        extranonce2 = counter.to_bytes(active.extranonce2_size, "little")
        version_bits = None
        if self._version_mask:
            version_bits = spread_bits(self._version_counter, self._version_mask)
            self._version_counter += 1
        return make_work_unit(
            active.job,
            active.extranonce1,
            extranonce2,
            difficulty=active.difficulty,
            algorithm=self.algorithm,
            version_bits=version_bits,
            version_mask=self._version_mask if version_bits is not None else 0,
            generation=active.generation,
        )

    def _work_still_valid(self, work: WorkUnit) -> bool:
        if work.generation < self._stale_generation:
            return False
        if work.version_bits is not None:
            mask = self._version_mask
            if (
                work.version_bits & ~mask
                or rolled_version(work.job.version, work.version_bits, mask) != work.version
            ):
                return False
        return True

    async def _mine(self) -> None:
        while True:
            active = await self._wait_for_job()
            work = self._next_work_unit(active)
            log.debug(
                "%s work: job %s extranonce2 %s version %08x",
                self._prefix(),
                work.job.job_id,
                work.extranonce2.hex(),
                work.version,
            )
            nonce = 0
            while nonce <= MAX_NONCE:
                if self._current is not active or not self._work_still_valid(work):
                    break  # a newer job or a new version mask: switch at this chunk boundary
                abort = threading.Event()
                self._scan_abort = abort
                try:
                    result = await asyncio.to_thread(
                        scan_nonces,
                        work.header_prefix,
                        nonce,
                        MAX_NONCE,
                        work.share_target,
                        self.algorithm,
                        abort=abort,
                        time_budget=self.chunk_seconds,
                    )
                finally:
                    abort.set()  # if we were cancelled, stop the worker thread at its next hash
                    self._scan_abort = None
                self.stats.hashes += result.hashes
                nonce = result.next_nonce
                for share in result.shares:
                    if not self._work_still_valid(work):
                        self.stats.stale_discarded += 1
                        self._emit("stale", job_id=work.job.job_id, nonce=f"{share.nonce:08x}")
                        continue
                    await self._submit(work, share)
                    if self.max_shares is not None and self.stats.submitted >= self.max_shares:
                        return
                if self.duty_cycle < 1.0:
                    await asyncio.sleep(self.chunk_seconds * (1.0 / self.duty_cycle - 1.0))

    async def _submit(self, work: WorkUnit, share: Share) -> None:
        params = work.submit_params(self.username, share.nonce)
        self._pending_submits += 1
        self._submits_settled.clear()
        msg_id, _ = self._request(
            "mining.submit", params, on_response=functools.partial(self._on_submit_result, work, share)
        )
        self.stats.submitted += 1
        share_difficulty = hash_difficulty(share.hash_int, self.algorithm)
        log.info(
            "%s share job %s nonce %08x (difficulty %.6g of %g)",
            self._prefix(),
            work.job.job_id,
            share.nonce,
            share_difficulty,
            work.difficulty,
        )
        self._emit(
            "submitted",
            id=msg_id,
            params=params,
            hash=share.hash_int.to_bytes(32, "little")[::-1].hex(),
            share_difficulty=share_difficulty,
        )
        if share.hash_int <= work.network_target:
            self.stats.blocks += 1
            log.warning("%s share meets the network target: block candidate", self._prefix())
            self._emit("block", job_id=work.job.job_id, nonce=f"{share.nonce:08x}")
        await self._drain()

    # ---------------------------------------------------------------- connection lifecycle

    async def _session(self, host: str, port: int) -> str:
        """One connection. Returns "stopped", "reconnect" or "closed"; raises on failures."""
        self._connection_number += 1
        self._session_host, self._session_port = host, port
        self._authorized = False
        self._reconnect_to = None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
        self._reset_session(writer)
        self.stats.connections += 1
        log.info("%s connected to %s:%d", self._prefix(), host, port)
        self._emit("connected", host=host, port=port)
        read_task = asyncio.create_task(self._read_loop(reader))
        mine_task: asyncio.Task[None] | None = None
        try:
            try:
                await self._handshake()
            except ConnectionError:
                if self._reconnect_to is not None:
                    return "reconnect"
                if self._configure_pending:
                    # BIP310: some servers drop a client that sends an unknown method. Next time,
                    # connect without mining.configure.
                    log.info("%s connection lost after mining.configure; retrying without it", self._prefix())
                    self._configure_unsupported = True
                raise
            mine_task = asyncio.create_task(self._mine())
            done, _ = await asyncio.wait({read_task, mine_task}, return_when=asyncio.FIRST_COMPLETED)
            if mine_task in done:
                mine_task.result()
                await self._wait_for_submit_answers(read_task)
                return "stopped"
            read_task.result()
            return "reconnect" if self._reconnect_to is not None else "closed"
        finally:
            self._abort_scan()
            tasks = [task for task in (mine_task, read_task) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._fail_pending(ConnectionError("connection closed"))
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (OSError, TimeoutError):
                pass

    async def _wait_for_submit_answers(self, read_task: asyncio.Task[None]) -> None:
        if self._submits_settled.is_set():
            return
        settled = asyncio.ensure_future(self._submits_settled.wait())
        try:
            await asyncio.wait(
                {settled, read_task}, timeout=self.response_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            settled.cancel()
        if self._pending_submits:
            log.warning("%s %d submit(s) left unanswered", self._prefix(), self._pending_submits)

    async def _run_sessions(self) -> None:
        host, port = self.host, self.port
        failures = 0
        redirects = 0  # client.reconnect requests in a row without a job in between
        while True:
            outcome = "failed"
            jobs_before = self.stats.jobs
            try:
                outcome = await self._session(host, port)
            except (OSError, EOFError, TimeoutError, StratumProtocolError, AuthorizationFailed) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s session ended: %s", self._prefix(), self.stats.last_error)
            except Exception as exc:  # a bug must not turn a bad server into a crashed miner
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s session failed unexpectedly", self._prefix())
            self._emit(
                "disconnected", outcome=outcome, error=self.stats.last_error if outcome == "failed" else None
            )
            if outcome == "stopped":
                self.stats.stop_reason = "max_shares"
                return
            if outcome == "reconnect" and self._reconnect_to is not None:
                host, port, wait = self._reconnect_to
                failures = 0
                redirects = 1 if self.stats.jobs > jobs_before else redirects + 1
                if redirects > MAX_CONSECUTIVE_REDIRECTS:
                    self.stats.gave_up = True
                    self.stats.stop_reason = "gave_up"
                    self.stats.last_error = f"{redirects} client.reconnect requests without a job"
                    log.error("%s giving up: %s", self._prefix(), self.stats.last_error)
                    return
                self._emit("reconnect", host=host, port=port, wait=wait)
                await asyncio.sleep(wait)
                continue
            if self._authorized:
                failures = 0  # the connection worked for a while: start the backoff again
            failures += 1
            if failures > self.max_reconnects:
                self.stats.gave_up = True
                self.stats.stop_reason = "gave_up"
                log.error("%s giving up after %d failed connection(s)", self._prefix(), failures)
                return
            delay = min(self.backoff_initial * 2 ** (failures - 1), self.backoff_max)
            log.info(
                "%s reconnecting in %.1f s (attempt %d of %d)",
                self._prefix(),
                delay,
                failures,
                self.max_reconnects,
            )
            self._emit("reconnecting", delay=delay, attempt=failures)
            await asyncio.sleep(delay)

    async def run(self) -> MinerStats:
        started = time.monotonic()
        try:
            if self.max_seconds is None:
                await self._run_sessions()
            else:
                deadline = asyncio.timeout(self.max_seconds)
                try:
                    async with deadline:
                        await self._run_sessions()
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    self.stats.stop_reason = "duration"
        except asyncio.CancelledError:
            self.stats.stop_reason = "cancelled"
            raise
        finally:
            self.stats.elapsed = time.monotonic() - started
            self._emit("stopped", reason=self.stats.stop_reason, stats=self.stats.as_dict())
        return self.stats


def _number(value: Any, name: str) -> float:
    """A finite number given as a JSON number or a numeric string."""
    if isinstance(value, str) and len(value) <= 32:
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StratumProtocolError(f"{name} must be a number: {value!r:.50}")
    try:
        number = float(value)
    except OverflowError:
        raise StratumProtocolError(f"{name} out of range") from None
    if not math.isfinite(number):
        raise StratumProtocolError(f"{name} must be finite")
    return number


def _checked_extranonce2_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EXTRANONCE_BYTES:
        raise StratumProtocolError(
            f"extranonce2_size must be an integer in 1..{MAX_EXTRANONCE_BYTES}: {value!r:.50}"
        )
    return value


async def run_miner(
    host: str,
    port: int,
    username: str,
    password: str = "x",
    *,
    algorithm: str = "scrypt",
    max_shares: int | None = None,
    max_seconds: float | None = None,
    version_rolling: bool = True,
    suggest_difficulty: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> MinerStats:
    """Mine on ``host:port`` until ``max_shares`` shares are submitted (and answered), ``max_seconds``
    pass, reconnecting fails ``max_reconnects`` times in a row, or the task is cancelled.

    ``options`` are the tuning keywords of ``StratumMiner`` (max_reconnects, backoff_initial,
    backoff_max, connect_timeout, response_timeout, chunk_seconds, max_line_bytes, duty_cycle).
    """
    miner = StratumMiner(
        host,
        port,
        username,
        password,
        algorithm=algorithm,
        max_shares=max_shares,
        max_seconds=max_seconds,
        version_rolling=version_rolling,
        suggest_difficulty=suggest_difficulty,
        on_event=on_event,
        **options,
    )
    return await miner.run()


# --------------------------------------------------------------------------------------------------
# Command line: pool miner --url stratum+tcp://host:port --user ADDRESS.worker ...
# --------------------------------------------------------------------------------------------------


def parse_stratum_url(url: str) -> tuple[str, int]:
    """``stratum+tcp://host:port`` (or ``host:port``) -> (host, port). TLS is not supported."""
    if "://" not in url:
        url = "stratum+tcp://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("stratum+tcp", "stratum", "tcp"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use stratum+tcp://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in {url!r}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"URL must name a host and a port: {url!r}")
    return parts.hostname, port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pool miner", description="Demo Stratum v1 CPU miner (scrypt / sha256d)"
    )
    parser.add_argument("--url", required=True, help="stratum+tcp://host:port")
    parser.add_argument("--user", required=True, help="worker name, usually ADDRESS.worker")
    parser.add_argument("--pass", dest="password", default="x", help="worker password (default: x)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="scrypt")
    parser.add_argument("--max-shares", type=int, default=None, help="stop after N shares are submitted")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--suggest-difficulty", type=float, default=None)
    parser.add_argument("--no-version-rolling", action="store_true", help="do not send mining.configure")
    parser.add_argument(
        "--max-reconnects", type=int, default=5, help="consecutive failed connections before giving up"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the protocol lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_stratum_url(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.max_shares is not None and args.max_shares < 1:
        parser.error("--max-shares must be >= 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be > 0")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        stats = asyncio.run(
            run_miner(
                host,
                port,
                args.user,
                args.password,
                algorithm=args.algorithm,
                max_shares=args.max_shares,
                max_seconds=args.duration,
                version_rolling=not args.no_version_rolling,
                suggest_difficulty=args.suggest_difficulty,
                max_reconnects=args.max_reconnects,
            )
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(stats.as_dict(), sort_keys=True))
    return 1 if stats.gave_up else 0


if __name__ == "__main__":
    sys.exit(main())
