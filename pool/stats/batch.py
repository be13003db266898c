"""A buffer of shares reduced to what the stores add: per-minute sums per worker, and the round's work.

Pure: no I/O, no clock of its own. Both stores apply the same reduction, so they give bit-identical
answers for the same input.

Round work
    ``sum(credited difficulty / network difficulty)`` over the shares since the pool's last accepted
    block: 1.0 is one expected block's worth of work (the effort of the round is this, at the block).
    An ``accepted`` `BlockRecord` starts a new round; the shares buffered before it still count for the
    old one, and the old round is kept as the "last round".

Hostile input
    Shares with a non-finite, negative or absurd (> 2**64) difficulty or timestamp are ignored and
    counted; names are cut to ``MAX_NAME_CHARS`` characters and made valid UTF-8.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import orjson

from pool.ledger.recorder import BlockRecord, ShareRecord
from pool.stats.hashrate import TEN_MINUTE_RETENTION_S

MAX_NAME_CHARS = 128
MAX_CREDITED_DIFFICULTY = 2.0**64
MAX_SHARE_AGE_S = TEN_MINUTE_RETENTION_S
FUTURE_TOLERANCE_S = 300


def clean_name(value: object) -> str:
    """A miner or worker name as stored: at most MAX_NAME_CHARS characters of valid UTF-8."""
    if type(value) is str:
        if len(value) <= MAX_NAME_CHARS and value.isascii():
            return value
        text = value[:MAX_NAME_CHARS]
    elif value is None:
        return ""
    else:
        text = str(value)[:MAX_NAME_CHARS]
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"


def worker_member(address: str, worker: str) -> str:
    """The unambiguous name of a worker in hashes and sorted sets: a JSON array [address, worker]."""
    return orjson.dumps([address, worker]).decode()


class StatsBatch:
    """Shares reduced to what the stores add, and the round's work with block resets in order.

    ``workers`` maps (minute, address, worker) to [shares, difficulty sum, last share time]; its
    insertion order is (nearly) time order, which `trim` relies on. ``round_ops`` is a list of
    ``["work", work, shares]`` and ``["block", height, hash, created]`` in the order they happened.
    """

    __slots__ = ("round_ops", "shares", "workers")

    def __init__(self) -> None:
        self.workers: dict[tuple[int, str, str], list] = {}
        self.round_ops: list[list] = []
        self.shares = 0

    def __bool__(self) -> bool:
        return bool(self.workers or self.round_ops)

    def add_share(self, share: ShareRecord, now: float) -> bool:
        """Count one share; False (nothing counted) for a record that is not a sane share."""
        return self.add_shares((share,), now) == 0

    def add_shares(self, shares: Iterable[ShareRecord], now: float) -> int:
        """Count shares in order; the number ignored (records that are not sane shares: not counted).

        One loop for the whole buffer (the flusher's work, once a second): the sums are those of
        adding the shares one by one, in the same order, so they are bit-identical."""
        lowest = now - MAX_SHARE_AGE_S
        highest = now + FUTURE_TOLERANCE_S
        workers = self.workers
        ops = self.round_ops
        tail = ops[-1] if ops and ops[-1][0] == "work" else None
        work_sum, work_shares = (tail[1], tail[2]) if tail is not None else (0.0, 0)
        counted = ignored = 0
        inf = math.inf
        for share in shares:
            try:  # everything that may fail comes before the first change (zero cost when nothing fails)
                created = share.created
                if type(created) is not float:
                    created = float(created)
                difficulty = share.credited_difficulty
                if type(difficulty) is not float:
                    difficulty = float(difficulty)
                # NaN fails every comparison, so it is ignored here too.
                if not (lowest <= created <= highest and 0.0 <= difficulty <= MAX_CREDITED_DIFFICULTY):
                    ignored += 1
                    continue
                address = share.address
                if type(address) is not str or len(address) > MAX_NAME_CHARS or not address.isascii():
                    address = clean_name(address)
                worker = share.worker
                if type(worker) is not str or len(worker) > MAX_NAME_CHARS or not worker.isascii():
                    worker = clean_name(worker)
                try:
                    network = share.network_difficulty
                    if type(network) is not float:
                        network = float(network)
                except (TypeError, ValueError, AttributeError, OverflowError):
                    network = 0.0
                work = difficulty / network if 0.0 < network < inf else 0.0
                if not work <= MAX_CREDITED_DIFFICULTY:
                    work = 0.0
                key = (int(created // 60), address, worker)
            except Exception:  # a hostile record must not stop the others
                ignored += 1
                continue
            entry = workers.get(key)
            if entry is None:
                workers[key] = [1, difficulty, created]
            else:
                entry[0] += 1
                entry[1] += difficulty
                if created > entry[2]:  # noqa: PLR1730 (a comparison costs less than a call, per share)
                    entry[2] = created
            work_sum += work
            work_shares += 1
            counted += 1
        if counted:
            if tail is None:
                ops.append(["work", work_sum, work_shares])
            else:
                tail[1] = work_sum
                tail[2] = work_shares
            self.shares += counted
        return ignored

    def add_block(self, block: BlockRecord) -> bool:
        """An accepted block ends the round; other statuses change nothing."""
        if getattr(block, "status", None) != "accepted":
            return False
        try:
            height = int(block.height)
            created = float(block.created)
        except (TypeError, ValueError, AttributeError, OverflowError):
            return False
        if not math.isfinite(created):
            return False
        self.round_ops.append(["block", height, clean_name(block.hash), created])
        return True

    def trim(self, max_entries: int) -> int:
        """Drop the oldest worker entries beyond `max_entries`; the number of shares dropped."""
        excess = len(self.workers) - max_entries
        if excess <= 0:
            return 0
        dropped = 0
        for key in list(itertools.islice(self.workers, excess)):
            dropped += self.workers.pop(key)[0]
        self.shares -= dropped
        return dropped

    def absorb_older(self, older: StatsBatch) -> None:
        """Put `older` (a batch that was not applied) in front of this one."""
        workers = {key: list(entry) for key, entry in older.workers.items()}
        for key, (shares, difficulty, last) in self.workers.items():
            entry = workers.get(key)
            if entry is None:
                workers[key] = [shares, difficulty, last]
            else:
                entry[0] += shares
                entry[1] += difficulty
                entry[2] = max(entry[2], last)
        self.workers = workers
        ops = [list(op) for op in older.round_ops]
        for op in self.round_ops:
            if op[0] == "work" and ops and ops[-1][0] == "work":
                ops[-1][1] += op[1]
                ops[-1][2] += op[2]
            else:
                ops.append(list(op))
        self.round_ops = ops
        self.shares += older.shares
