"""Hashrate windows and the buckets behind them; workers online.

Hashrate
    Every share adds its *credited* difficulty (the difficulty its job was sent at). Over a window,
    ``hashrate = sum(credited difficulty) * hashes_per_difficulty / window_s``, where
    ``hashes_per_difficulty`` is the number of hashes one share of difficulty 1 takes on average:
    ``2**32`` for sha256d coins (diff-1 target ``0xffff * 2**208``) and ``2**16`` for scrypt coins (diff-1
    target ``0xffff * 2**224``, the "multiplier 65536" of scrypt miners); `hashes_per_difficulty`
    derives it from a coin's diff-1 target. Buckets hold difficulty, as ``worker_minutes.difficulty_sum``
    does, so hashes are a read-time factor and a rebuild is a plain load.

    A window of ``window_s`` seconds is the last ``window_s / 60`` *complete* minutes before the current
    one (windows up to 1 h) or the last ``window_s / 600`` complete 10-minute buckets (longer windows, up
    to 24 h): figures trail by less than one bucket but never count a bucket that is still filling. The
    10-minute buckets keep 24 h at 150 fields per worker instead of 1500 per-minute ones.

Workers online
    Workers with a share in the last ``ONLINE_S`` (10 minutes).
"""

from __future__ import annotations

import math

WINDOWS_S = (300, 3600, 86400)
WINDOW_NAMES = {300: "5m", 3600: "1h", 86400: "24h"}
ONLINE_S = 600
MINUTE_RETENTION_S = 2 * 3600  # the 1 h window, the minute being filled, and slack
TEN_MINUTE_RETENTION_S = 25 * 3600  # the 24 h window and slack
SEEN_RETENTION_S = 25 * 3600
SHA256D_HASHES_PER_DIFFICULTY = 2**32
SCRYPT_HASHES_PER_DIFFICULTY = 2**16

#: (kind, width in seconds, retention in seconds) of the per-minute and the 10-minute buckets.
BUCKETS = (("m1", 60, MINUTE_RETENTION_S), ("m10", 600, TEN_MINUTE_RETENTION_S))


def hashes_per_difficulty(diff1_target: int) -> int:
    """Hashes per share of difficulty 1 for a coin's diff-1 target: the power of two nearest
    ``2**256 / diff1_target`` (``2**32`` for ``0xffff * 2**208``, ``2**16`` for ``0xffff * 2**224``),
    which is the convention miners and pools report hashrate in."""
    if diff1_target <= 0:
        raise ValueError("diff1_target must be positive")
    return 1 << round(math.log2((1 << 256) / diff1_target))


def window_buckets(window_s: int, now: float) -> tuple[str, int, range]:
    """(bucket kind, bucket width, bucket indices) of a window ending before the bucket being filled."""
    if isinstance(window_s, bool) or not isinstance(window_s, int):
        raise TypeError(f"window_s must be an int number of seconds, not {window_s!r}")
    if 60 <= window_s <= 3600 and window_s % 60 == 0:
        kind, width = "m1", 60
    elif 3600 < window_s <= 86400 and window_s % 600 == 0:
        kind, width = "m10", 600
    else:
        raise ValueError(
            f"window_s {window_s}: allowed are whole minutes up to 3600 and whole 10 minutes up to 86400 "
            f"(the standard windows are {WINDOWS_S})"
        )
    current = int(now // width)
    return kind, width, range(current - window_s // width, current)
