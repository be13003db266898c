"""Reading a configuration file's tables key by key: each value's type and range checked, a bad key
named with its file and line and what is allowed, a key left over reported as unknown (a typo must
not fall back to a default silently).  `pool.config` reads the pool's sections with it."""
from __future__ import annotations

import math
import re
from typing import Any


class ConfigError(ValueError):
    """A configuration problem; the message names the key, the file and the line."""


class TableReader:
    """Takes keys out of one TOML table, checking each; what is left over is an unknown key."""

    def __init__(self, table: Any, section: str, source: str, text: str) -> None:
        self.section = section
        self.source = source
        self.text = text
        if not isinstance(table, dict):
            raise self.error(section, f"must be a table, not {type(table).__name__}")
        self.table = dict(table)

    def line_of(self, key: str) -> int | None:
        last = key.rsplit(".", 1)[-1].split("[", 1)[0]
        for number, line in enumerate(self.text.splitlines(), start=1):
            if re.match(rf"\s*{re.escape(last)}\s*=", line):
                return number
        return None

    def error(self, key: str, message: str) -> ConfigError:
        line = self.line_of(key) if key else None
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{where}: {key}: {message}")

    def _name(self, key: str) -> str:
        return f"{self.section}.{key}" if self.section else key

    def get(self, key: str, kind: type | tuple, default: Any = ..., *, allowed: str = "") -> Any:
        name = self._name(key)
        if key not in self.table:
            if default is ...:
                raise self.error(name, f"is required ({allowed or kind_name(kind)})")
            return default
        value = self.table.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.error(name, f"must be {allowed or kind_name(kind)}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(name, f"must be a finite number, not {value!r}")
        return value

    def number(self, key: str, default: Any, low: float, high: float, *, integer: bool = False) -> Any:
        kind = int if integer else float
        value = self.get(key, kind, default, allowed=f"a number in [{low}, {high}]")
        if not low <= value <= high:
            raise self.error(self._name(key), f"must be in [{low}, {high}], not {value!r}")
        return value

    def finish(self) -> None:
        if self.table:
            key = sorted(self.table)[0]
            raise self.error(self._name(key), "unknown key")


def kind_name(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)
