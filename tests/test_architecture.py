"""The house rules that keep the code readable, checked on every run.

- Import contracts (`[tool.importlinter]` in pyproject.toml): no cycles, layers from the command line
  down to the pure cores, no I/O in the pure cores, no development tools in the production server, no
  coin family named outside its own code (docs/architecture.md).
- No module over 600 lines: a module that grows past it is split along its concepts.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600
PACKAGES = ("pool", "payouts", "share_validator", "native", "bench", "tests")


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_no_module_over_600_lines():
    too_long = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if ".venv" in path.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                too_long[str(path.relative_to(ROOT))] = lines
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them along their concepts): {too_long}"


def test_every_package_is_installed():
    """pyproject.toml lists the packages by hand (pool.sql maps to sql/): a new folder must be in the list."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("pool", "payouts", "share_validator") for init in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set(), f"packages missing from [tool.setuptools] packages: {sorted(found - listed)}"
