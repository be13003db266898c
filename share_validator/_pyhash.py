"""Pure-Python twin of the native hashing module (hashlib only).

Every function here has the same signature and result as its counterpart in
``share_validator._nativehash``; the tests run both and compare.  Select it for the
whole process with ``POOL_HASH_BACKEND=python``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

NAME = "python"

POW_SHA256D = 0
POW_SCRYPT = 1
POW_DEFERRED = 2

_sha256 = hashlib.sha256


def sha256(data: bytes) -> bytes:
    return _sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    return _sha256(_sha256(data).digest()).digest()


def scrypt(header: bytes) -> bytes:
    if len(header) != 80:
        raise ValueError("scrypt takes an 80-byte header")
    return hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32)


def scrypt_batch(headers: Sequence[bytes]) -> list[bytes]:
    return [scrypt(header) for header in headers]


def share_hash(
    pow_algo: int,
    coinb1: bytes,
    extranonce1: bytes,
    extranonce2: bytes,
    coinb2: bytes,
    merkle_branch: bytes,
    prevhash: bytes,
    version: int,
    ntime: int,
    nbits: int,
    nonce: int,
) -> bytes:
    """header (80) | pow hash (32) | block hash (32), as ``pool_share_hash`` in native/share.h."""
    if pow_algo not in (POW_SHA256D, POW_SCRYPT, POW_DEFERRED):
        raise ValueError(f"unknown proof-of-work algorithm {pow_algo}")
    if len(prevhash) != 32 or len(merkle_branch) % 32:
        raise ValueError("prevhash must be 32 bytes and the merkle branch a multiple of 32")
    root = sha256d(coinb1 + extranonce1 + extranonce2 + coinb2)
    for offset in range(0, len(merkle_branch), 32):
        root = sha256d(root + merkle_branch[offset : offset + 32])
    header = (
        version.to_bytes(4, "little")
        + prevhash
        + root
        + ntime.to_bytes(4, "little")
        + nbits.to_bytes(4, "little")
        + nonce.to_bytes(4, "little")
    )
    block_hash = sha256d(header)
    if pow_algo == POW_SHA256D:
        pow_hash = block_hash
    elif pow_algo == POW_SCRYPT:
        pow_hash = scrypt(header)
    else:
        pow_hash = bytes(32)
    return header + pow_hash + block_hash


class JobHasher:
    """The per-job parts of ``share_hash``; ``share_hash`` takes the miner's parts."""

    __slots__ = ("_parts",)

    def __init__(self, coinb1: bytes, coinb2: bytes, merkle_branch: bytes, prevhash: bytes, nbits: int) -> None:
        if len(prevhash) != 32 or len(merkle_branch) % 32:
            raise ValueError("prevhash must be 32 bytes and the merkle branch a multiple of 32")
        self._parts = (coinb1, coinb2, merkle_branch, prevhash, nbits)

    def share_hash(self, pow_algo: int, extranonce1: bytes, extranonce2: bytes, version: int, ntime: int,
                   nonce: int) -> bytes:
        coinb1, coinb2, merkle_branch, prevhash, nbits = self._parts
        return share_hash(pow_algo, coinb1, extranonce1, extranonce2, coinb2, merkle_branch, prevhash,
                          version, ntime, nbits, nonce)


def describe() -> dict[str, str]:
    return {"backend": NAME, "sha256": "hashlib", "scrypt": "hashlib"}
