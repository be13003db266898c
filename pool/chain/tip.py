"""What the pool knows of the chain tip, and whether a block template may still be handed out.

The tip is learnt from every source the pool has: ``getbestblockhash`` polling, long polling, the
``-blocknotify`` hook, the templates themselves, and the pool's own blocks. Jobs on a previous
block the tip has moved past are stale at once, whether a template for the new tip can be had or
not (the work source retires them); this class decides which templates may become jobs:

* a template asked for while nothing new was learnt is the daemon's own word: it is used (and its
  previous block becomes the tip known);
* a template asked for before news came in is used only when it is built on the newest tip known
  (a long poll or a slow ``getblocktemplate`` can answer with the tip before);
* while the pool's own block on a previous block is being submitted, no template on that previous
  block is used: a solution there could only compete with the pool's own block. When the daemons
  have answered, the claim is settled: accepted, the block is the tip; rejected, its previous block
  still is; anything else, the tip is whatever the daemon says next. A claim the submission never
  settles lapses after ``claim_timeout_s``.

Pure state, no I/O; the work source (``pool.chain.work``) drives it.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class ChainTip:
    def __init__(self, *, claim_timeout_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.best: str | None = None  # the newest tip heard of (hex); None: the daemon's next answer decides
        self.news = 0  # bumped whenever something is learnt about the tip
        self.claim_timeout_s = claim_timeout_s
        self.clock = clock
        self._claims: dict[str, tuple[str, float]] = {}  # own block -> (its previous block, when found)

    def learn(self, block_hash: str) -> bool:
        """A source says ``block_hash`` is the tip; True when that is news."""
        if block_hash == self.best:
            return False
        self.best = block_hash
        self.news += 1
        return True

    def claim(self, block_hash: str, prevhash: str) -> None:
        """The pool found ``block_hash`` on ``prevhash``: until the daemons answer, ``prevhash`` is passed."""
        self._claims[block_hash] = (prevhash, self.clock())
        self.news += 1

    def settle(self, block_hash: str, outcome: str) -> bool:
        """The daemons answered for ``block_hash`` (``accepted``, ``rejected`` or ``unknown``); True
        when this changes what the pool knows (a new template must be asked for)."""
        claimed = self._claims.pop(block_hash, None)
        if outcome == "accepted":  # submitblock answers null only when the block became the tip
            return self.learn(block_hash) or claimed is not None
        if claimed is None:
            return False
        if outcome != "rejected":  # the tip moved past its previous block, to a block we do not know
            self.best = None
        self.news += 1
        return True

    def claimed(self, prevhash: str) -> bool:
        """True while the pool's own block on ``prevhash`` is being submitted."""
        if not self._claims:
            return False
        now = self.clock()
        for block_hash, (claimed_prevhash, found_at) in list(self._claims.items()):
            if now - found_at > self.claim_timeout_s:
                del self._claims[block_hash]
            elif claimed_prevhash == prevhash:
                return True
        return False

    def usable(self, prevhash: str, asked_at: int) -> bool:
        """May a template on ``prevhash``, asked for when ``news`` was ``asked_at``, become a job?"""
        if self.claimed(prevhash):
            return False
        return asked_at == self.news or prevhash == self.best
