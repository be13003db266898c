"""Variable difficulty: aim every miner at one share per ``target_share_s`` seconds.

Pure code: the caller passes the time.  A retarget happens when ``retarget_s`` has passed
since the last one, or early when shares come in at more than twice the wanted rate (so a
fast miner that connects at the minimum difficulty is raised within seconds).  The new
difficulty is the old one scaled by target/actual share interval, limited to a factor of
4 per step and to the port's [min, max] (and the miner's own minimum, if it set one);
nothing changes while the interval is within ``variance_pct`` of the target.
"""
from __future__ import annotations

import math

MAX_STEP = 4.0


def tidy(difficulty: float) -> float:
    """Round to 4 significant digits so the wire carries short numbers."""
    if difficulty <= 0 or not math.isfinite(difficulty):
        return difficulty
    digits = 3 - math.floor(math.log10(difficulty))
    return round(difficulty, digits) if digits > 0 else float(round(difficulty, digits))


class VarDiff:
    __slots__ = (
        "enabled",
        "max_difficulty",
        "min_difficulty",
        "retarget_s",
        "shares",
        "target_s",
        "variance",
        "window_start",
    )

    def __init__(self, *, target_share_s: float, retarget_s: float, variance_pct: float,
                 min_difficulty: float, max_difficulty: float, enabled: bool, now: float) -> None:
        self.target_s = target_share_s
        self.retarget_s = retarget_s
        self.variance = variance_pct / 100.0
        self.min_difficulty = min_difficulty
        self.max_difficulty = max_difficulty
        self.enabled = enabled
        self.window_start = now
        self.shares = 0

    def clamp(self, difficulty: float) -> float:
        return min(max(difficulty, self.min_difficulty), self.max_difficulty)

    def restart(self, now: float) -> None:
        self.window_start = now
        self.shares = 0

    def on_share(self, difficulty: float, now: float) -> float | None:
        """Count an accepted share; a new difficulty when it is time to change, else None."""
        if not self.enabled:
            return None
        self.shares += 1
        elapsed = now - self.window_start
        too_fast = self.shares >= max(4, 2 * self.retarget_s / self.target_s) and elapsed < self.retarget_s
        if elapsed < self.retarget_s and not too_fast:
            return None
        return self._retarget(difficulty, elapsed, now)

    def on_timer(self, difficulty: float, now: float) -> float | None:
        """Called now and then: lowers the difficulty of a miner that stopped finding shares."""
        if not self.enabled:
            return None
        elapsed = now - self.window_start
        if elapsed < max(self.retarget_s, 2 * self.target_s) or self.shares:
            return None
        return self._retarget(difficulty, elapsed, now)

    def _retarget(self, difficulty: float, elapsed: float, now: float) -> float | None:
        shares = self.shares
        self.restart(now)
        interval = elapsed / shares if shares else elapsed * 2  # no share at all: at least halve
        if shares and abs(interval - self.target_s) <= self.variance * self.target_s:
            return None
        factor = min(max(self.target_s / max(interval, 1e-9), 1 / MAX_STEP), MAX_STEP)
        new = tidy(self.clamp(difficulty * factor))
        return None if new == difficulty else new
