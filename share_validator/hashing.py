"""The hashing backend in force: native (default) or the pure-Python twin.

``POOL_HASH_BACKEND=python`` selects the hashlib twin for the whole process (for
machines where the extension cannot be built, and for the tests that compare the
two).  Code elsewhere imports the functions from here.
"""
from __future__ import annotations

import os
from types import ModuleType

from share_validator import _pyhash

BACKEND_ENV = "POOL_HASH_BACKEND"


def load_backend(name: str) -> ModuleType:
    if name == "python":
        return _pyhash
    if name == "native":
        try:
            from share_validator import _nativehash
        except ImportError as exc:  # the extension was not built
            raise ImportError(
                "the native hashing extension share_validator._native is not built: run "
                f"`pip install -e .` (or set {BACKEND_ENV}=python for the slow hashlib twin)"
            ) from exc
        return _nativehash
    raise ValueError(f"{BACKEND_ENV} must be 'native' or 'python', not {name!r}")


def available_backends() -> dict[str, ModuleType]:
    """Every backend that loads here, by name (the tests compare them)."""
    backends = {"python": _pyhash}
    try:
        backends["native"] = load_backend("native")
    except ImportError:
        pass
    return backends


backend = load_backend(os.environ.get(BACKEND_ENV, "native"))

POW_SHA256D = backend.POW_SHA256D
POW_SCRYPT = backend.POW_SCRYPT
POW_DEFERRED = backend.POW_DEFERRED
sha256 = backend.sha256
sha256d = backend.sha256d
scrypt = backend.scrypt
scrypt_batch = backend.scrypt_batch
share_hash = backend.share_hash
JobHasher = backend.JobHasher
describe = backend.describe
