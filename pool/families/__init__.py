"""Coin families as plug-ins: a family is found by name, or by the name of one of its coins.

The families the pool ships are listed in `FAMILY_MODULES`; another package can add one through
the ``quarry.families`` entry-point group (``name = "package.module"``, a module with a ``FAMILY``
object).  Modules are imported by name when first asked for, so nothing here (and nothing that
imports this) depends on any one family.  The interface is `pool.families.base.CoinFamily`.
"""
from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from pool.families.base import Coin, CoinFamily, FamilyError

__all__ = ["Coin", "CoinFamily", "FamilyError", "UnknownCoin", "family_names", "find_coin", "load_family"]

#: The families the pool ships: name -> module holding ``FAMILY``.
FAMILY_MODULES: dict[str, str] = {
    "bitcoin": "pool.families.bitcoin",
}
ENTRY_POINT_GROUP = "quarry.families"


class UnknownCoin(LookupError):
    """No family knows a coin of that name."""


@cache
def _modules() -> dict[str, str]:
    modules = dict(FAMILY_MODULES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        modules.setdefault(entry.name, entry.value)
    return modules


def family_names() -> list[str]:
    return sorted(_modules())


@cache
def load_family(name: str) -> CoinFamily:
    """The family called ``name``; UnknownCoin names the known ones otherwise."""
    module_name = _modules().get(name)
    if module_name is None:
        raise UnknownCoin(f"unknown coin family {name!r}; known families: {', '.join(family_names())}")
    family = importlib.import_module(module_name).FAMILY
    if not isinstance(family, CoinFamily):
        raise TypeError(f"{module_name}.FAMILY does not implement the coin-family interface")
    return family


def find_coin(name: object) -> tuple[CoinFamily, Coin]:
    """The family that has a coin called ``name``, and that coin's definition."""
    known: list[str] = []
    for family_name in family_names():
        family = load_family(family_name)
        coins = family.coins()
        if isinstance(name, str) and name in coins:
            return family, coins[name]
        known.extend(coins)
    raise UnknownCoin(f"unknown coin {name!r}; known coins: {', '.join(sorted(known))}")
