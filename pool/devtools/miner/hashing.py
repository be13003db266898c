"""Proof of work for the demo miner: the hashes, difficulty and targets, and the nonce scan.

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

`scan_nonces` runs in a worker thread (the miner calls it through ``asyncio.to_thread``) and does no I/O.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

ALGORITHMS = ("scrypt", "sha256d")
MAX_NONCE = 0xFFFFFFFF
MAX_TARGET = (1 << 256) - 1
# Difficulty-1 targets in Stratum units (see the module docstring: cpuminer diff_to_target).
DIFF1_TARGET = {"sha256d": 0xFFFF << 208, "scrypt": 0xFFFF << 224}


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


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    return algorithm


MAX_DIFFICULTY = 2**128


def check_difficulty(difficulty: Any) -> float | int:
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
    diff1 = DIFF1_TARGET[check_algorithm(algorithm)]
    value = Fraction(diff1) / Fraction(check_difficulty(difficulty))
    return min(math.floor(value), MAX_TARGET)


def hash_difficulty(hash_int: int, algorithm: str) -> float:
    """The difficulty a hash achieves, in the same Stratum unit as ``difficulty_to_target``."""
    return DIFF1_TARGET[check_algorithm(algorithm)] / max(hash_int, 1)


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
