"""Targets, compact ``bits`` and Stratum difficulty, in exact integer arithmetic.

A share meets a target when its proof-of-work hash, read as a little-endian 256-bit
integer, is less than or equal to the target (Bitcoin Core's ``CheckProofOfWork``).
Difficulty D means target = floor(diff1 / D); diff1 depends on the algorithm (see
``share_validator.bitcoin.coins``).  Difficulties arrive as floats from miners and from the
config: they are converted to the exact rational value of the float, never rounded
through float division, so the target a miner was sent is the one a share is held to.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Protocol

MAX_TARGET = (1 << 256) - 1


class BadDifficulty(ValueError):
    """Difficulty is not a finite positive number."""


def bits_to_target(bits: int) -> int:
    """Expand compact ``nBits`` (as in the header) into the 256-bit target."""
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if bits & 0x00800000:
        raise ValueError(f"bits {bits:08x} encode a negative target")
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    target = mantissa << (8 * (exponent - 3))
    if target > MAX_TARGET:
        raise ValueError(f"bits {bits:08x} overflow 256 bits")
    return target


def check_difficulty(difficulty: float) -> Fraction:
    """The exact value of a Stratum difficulty; BadDifficulty for NaN, inf, <= 0, non-numbers."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float, Fraction)):
        raise BadDifficulty("difficulty must be a number")
    if isinstance(difficulty, float) and not math.isfinite(difficulty):
        raise BadDifficulty("difficulty must be finite")
    if difficulty <= 0:
        raise BadDifficulty("difficulty must be positive")
    return Fraction(difficulty)


def difficulty_to_target(diff1_target: int, difficulty: float) -> int:
    exact = check_difficulty(difficulty)
    target = (diff1_target * exact.denominator) // exact.numerator
    return max(1, min(target, MAX_TARGET))


def target_to_difficulty(diff1_target: int, target: int) -> float:
    """Difficulty of a target (or the actual difficulty of a hash), for display and stats."""
    return diff1_target / max(target, 1)


def bits_to_difficulty(diff1_target: int, bits: int) -> float:
    return target_to_difficulty(diff1_target, bits_to_target(bits))


class HasDiff1(Protocol):
    """A coin: its target at Stratum difficulty 1."""

    @property
    def diff1_target(self) -> int: ...


class Difficulty:
    """A Stratum difficulty with its exact target, computed once when it is set."""

    __slots__ = ("target", "value")

    def __init__(self, coin: HasDiff1, value: float) -> None:
        self.target = difficulty_to_target(coin.diff1_target, value)
        self.value = float(value)

    def __repr__(self) -> str:
        return f"Difficulty({self.value!r})"
