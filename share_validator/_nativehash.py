"""cffi wrapper over the native hashing code (``native/*.c``).

Wrappers follow allocate -> call -> check the return code -> copy the bytes out.
cffi releases the GIL for the duration of every call, so these functions can run
on a thread pool.  The pure-Python twin is ``share_validator._pyhash``.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

from share_validator._native import ffi, lib

NAME = "native"

POW_SHA256D = lib.POOL_POW_SHA256D
POW_SCRYPT = lib.POOL_POW_SCRYPT
POW_DEFERRED = lib.POOL_POW_DEFERRED

SHA256_IMPLS = {"portable": lib.POOL_SHA256_PORTABLE, "shani": lib.POOL_SHA256_SHANI}
SCRYPT_IMPLS = {"portable": lib.POOL_SCRYPT_PORTABLE, "sse2": lib.POOL_SCRYPT_SSE2, "avx2": lib.POOL_SCRYPT_AVX2}

_new = ffi.new
_buffer = ffi.buffer
_sha256 = lib.pool_sha256
_sha256d = lib.pool_sha256d
_scrypt = lib.pool_scrypt_1024_1_1
_scrypt_batch = lib.pool_scrypt_1024_1_1_batch
_share_hash = lib.pool_share_hash
_job_share_hash = lib.pool_job_share_hash


class NativeError(RuntimeError):
    """The native code reported a failure (allocation or bad argument)."""


class _Buffers(threading.local):
    """Output buffers allocated once per thread (the GIL is released during native calls, so
    threads must not share them); reading them out copies into a new bytes object."""

    def __init__(self) -> None:
        self.out32 = _new("uint8_t[32]")
        self.out32_view = _buffer(self.out32)
        self.out144 = _new("uint8_t[144]")
        self.out144_view = _buffer(self.out144)


_buffers = _Buffers()


def sha256(data: bytes) -> bytes:
    buffers = _buffers
    _sha256(data, len(data), buffers.out32)
    return buffers.out32_view[:]


def sha256d(data: bytes) -> bytes:
    buffers = _buffers
    _sha256d(data, len(data), buffers.out32)
    return buffers.out32_view[:]


def scrypt(header: bytes) -> bytes:
    if len(header) != 80:
        raise ValueError("scrypt takes an 80-byte header")
    buffers = _buffers
    if _scrypt(header, buffers.out32) != 0:
        raise NativeError("scrypt: out of memory")
    return buffers.out32_view[:]


def scrypt_batch(headers: Sequence[bytes]) -> list[bytes]:
    count = len(headers)
    if count == 0:
        return []
    joined = b"".join(headers)
    if len(joined) != 80 * count:
        raise ValueError("scrypt_batch takes 80-byte headers")
    out = _new("uint8_t[]", 32 * count)
    if _scrypt_batch(joined, count, out) != 0:
        raise NativeError("scrypt batch: out of memory")
    raw = _buffer(out)[:]
    return [raw[i : i + 32] for i in range(0, 32 * count, 32)]


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
    """header (80) | pow hash (32) | block hash (32); see native/share.h."""
    if len(prevhash) != 32 or len(merkle_branch) % 32:
        raise ValueError("prevhash must be 32 bytes and the merkle branch a multiple of 32")
    buffers = _buffers
    out = buffers.out144
    rc = _share_hash(
        pow_algo,
        coinb1, len(coinb1),
        extranonce1, len(extranonce1),
        extranonce2, len(extranonce2),
        coinb2, len(coinb2),
        merkle_branch, len(merkle_branch) >> 5,
        prevhash,
        version, ntime, nbits, nonce,
        out,
    )
    if rc != 0:
        raise ValueError(f"unknown proof-of-work algorithm {pow_algo}")
    return buffers.out144_view[:]


class JobHasher:
    """The per-job parts of ``share_hash`` held natively; ``share_hash`` takes the miner's parts."""

    __slots__ = ("_job",)

    def __init__(self, coinb1: bytes, coinb2: bytes, merkle_branch: bytes, prevhash: bytes, nbits: int) -> None:
        if len(prevhash) != 32 or len(merkle_branch) % 32:
            raise ValueError("prevhash must be 32 bytes and the merkle branch a multiple of 32")
        job = lib.pool_job_new(coinb1, len(coinb1), coinb2, len(coinb2), merkle_branch, len(merkle_branch) >> 5,
                               prevhash, nbits)
        if job == ffi.NULL:
            raise NativeError("job context: out of memory or coinbase too large")
        self._job = ffi.gc(job, lib.pool_job_free)

    def share_hash(self, pow_algo: int, extranonce1: bytes, extranonce2: bytes, version: int, ntime: int,
                   nonce: int) -> bytes:
        buffers = _buffers
        if _job_share_hash(self._job, pow_algo, extranonce1, len(extranonce1), extranonce2, len(extranonce2),
                           version, ntime, nonce, buffers.out144) != 0:
            raise ValueError(f"unknown proof-of-work algorithm {pow_algo}")
        return buffers.out144_view[:]


def select_sha256(name: str) -> bool:
    """Use one SHA-256 implementation ('portable', 'shani' or 'auto'); False if unavailable."""
    impl = lib.POOL_IMPL_AUTO if name == "auto" else SHA256_IMPLS[name]
    return lib.pool_sha256_select(impl) >= 0


def select_scrypt(name: str) -> bool:
    """Use one scrypt implementation ('portable', 'sse2', 'avx2' or 'auto'); False if unavailable."""
    impl = lib.POOL_IMPL_AUTO if name == "auto" else SCRYPT_IMPLS[name]
    return lib.pool_scrypt_select(impl) >= 0


def _name_of(table: dict[str, int], value: int) -> str:
    return next((name for name, number in table.items() if number == value), str(value))


def describe() -> dict[str, str]:
    return {
        "backend": NAME,
        "sha256": _name_of(SHA256_IMPLS, lib.pool_sha256_impl()),
        "scrypt": _name_of(SCRYPT_IMPLS, lib.pool_scrypt_impl()),
    }
