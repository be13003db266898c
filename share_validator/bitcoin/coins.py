"""Coin definitions: data (``coins.json``) plus one small class per hash algorithm.

Each network of a coin is one entry (``litecoin``, ``litecoin-testnet4``,
``litecoin-regtest``, ...).  The proof-of-work hash is separate from the block-id
hash: Litecoin proves work with scrypt and names blocks by sha256d.

Difficulty is kept in Stratum units inside the pool.  Difficulty 1 is the target
``0xffff * 2**208`` for sha256d coins (bitcoind's ``getdifficulty`` unit) and
``0xffff * 2**224`` for scrypt coins (the "multiplier 65536" scrypt miners and
pools use: cpuminer divides the difficulty it receives by 65536).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from share_validator import hashing


class UnknownCoin(LookupError):
    """No coin definition of that name."""


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    pow_code: int  # the native POW_* constant
    diff1_target: int  # target at Stratum difficulty 1

    def pow_hash(self, header: bytes) -> bytes:
        return hashing.scrypt(header) if self.pow_code == hashing.POW_SCRYPT else hashing.sha256d(header)


SHA256D = Algorithm("sha256d", hashing.POW_SHA256D, 0xFFFF << 208)
SCRYPT = Algorithm("scrypt", hashing.POW_SCRYPT, 0xFFFF << 224)
ALGORITHMS = {algorithm.name: algorithm for algorithm in (SHA256D, SCRYPT)}
BLOCK_HASHES = {"sha256d": hashing.sha256d}


@dataclass(frozen=True, slots=True)
class Coin:
    name: str
    symbol: str
    algorithm: Algorithm
    p2pkh_prefix: int
    p2sh_prefixes: tuple[int, ...]
    bech32_hrp: str | None
    coinbase_maturity: int
    p2p_port: int
    rpc_port: int
    segwit: bool
    mweb: bool
    block_time_s: int
    genesis_hash: str
    initial_subsidy: int  # satoshis
    halving_interval: int  # blocks

    def block_subsidy(self, height: int) -> int:
        """The new coins of the block at ``height`` in satoshis (Core's GetBlockSubsidy)."""
        halvings = height // self.halving_interval
        return 0 if halvings >= 64 else self.initial_subsidy >> halvings

    @property
    def decimals(self) -> int:
        """Base units per coin are 10**decimals: satoshis for the whole family."""
        return 8

    @property
    def diff1_target(self) -> int:
        return self.algorithm.diff1_target

    def block_hash(self, header: bytes) -> bytes:
        """Block id in internal byte order (reverse it for the usual hex spelling)."""
        return hashing.sha256d(header)


_FIELDS = {
    "symbol", "pow_algorithm", "block_hash", "p2pkh_prefix", "p2sh_prefixes", "bech32_hrp",
    "coinbase_maturity", "p2p_port", "rpc_port", "segwit", "mweb", "block_time_s", "genesis_hash",
    "initial_subsidy", "halving_interval",
}


def _build(name: str, entry: dict) -> Coin:
    missing = _FIELDS - entry.keys()
    unknown = entry.keys() - _FIELDS
    if missing or unknown:
        raise ValueError(f"coin {name!r}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if entry["pow_algorithm"] not in ALGORITHMS:
        raise ValueError(f"coin {name!r}: pow_algorithm must be one of {sorted(ALGORITHMS)}")
    if entry["block_hash"] not in BLOCK_HASHES:
        raise ValueError(f"coin {name!r}: block_hash must be one of {sorted(BLOCK_HASHES)}")
    return Coin(
        name=name,
        symbol=entry["symbol"],
        algorithm=ALGORITHMS[entry["pow_algorithm"]],
        p2pkh_prefix=int(entry["p2pkh_prefix"]),
        p2sh_prefixes=tuple(int(p) for p in entry["p2sh_prefixes"]),
        bech32_hrp=entry["bech32_hrp"],
        coinbase_maturity=int(entry["coinbase_maturity"]),
        p2p_port=int(entry["p2p_port"]),
        rpc_port=int(entry["rpc_port"]),
        segwit=bool(entry["segwit"]),
        mweb=bool(entry["mweb"]),
        block_time_s=int(entry["block_time_s"]),
        genesis_hash=entry["genesis_hash"],
        initial_subsidy=int(entry["initial_subsidy"]),
        halving_interval=int(entry["halving_interval"]),
    )


@cache
def all_coins() -> dict[str, Coin]:
    raw = json.loads(resources.files("share_validator.bitcoin").joinpath("coins.json").read_text())
    return {name: _build(name, entry) for name, entry in raw.items() if not name.startswith("_")}


def get_coin(name: str) -> Coin:
    """The coin definition called ``name``; UnknownCoin names the known ones otherwise."""
    coins = all_coins()
    try:
        return coins[name]
    except (KeyError, TypeError):
        raise UnknownCoin(f"unknown coin {name!r}; known coins: {', '.join(sorted(coins))}") from None
