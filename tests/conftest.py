import os

import pytest

from share_validator import hashing, job


def pytest_report_header(config):
    return f"hashing backends: {sorted(hashing.available_backends())}; in force: {hashing.describe()}"


def _backends() -> list[str]:
    names = sorted(hashing.available_backends())
    if "native" not in names and os.environ.get(hashing.BACKEND_ENV) != "python":
        # The native module must be there unless the run asked for the hashlib twin only.
        hashing.load_backend("native")
    return names


@pytest.fixture(params=_backends())
def backend(request):
    """Each hashing backend module in turn (native, python)."""
    return hashing.available_backends()[request.param]


@pytest.fixture(params=_backends())
def use_backend(request, monkeypatch):
    """Run the test with the whole pure core switched to one hashing backend."""
    module = hashing.available_backends()[request.param]
    for name in ("sha256", "sha256d", "scrypt", "scrypt_batch", "share_hash", "JobHasher", "describe"):
        monkeypatch.setattr(hashing, name, getattr(module, name))
    monkeypatch.setattr(job, "sha256d", module.sha256d)
    return module
