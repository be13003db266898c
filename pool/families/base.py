"""The coin-family interface: everything between the coin daemon and the share check that differs by coin.

A coin family is a set of coins that share a daemon dialect, a block template, a proof of work,
a Stratum dialect and an address format (the Bitcoin family: Bitcoin, Litecoin and their forks).
The Stratum server, the chain parts (work, block submission, block tracking), the ledger, the
payouts and the API speak to a family only through this interface; they never import one by name.
A family is found by the name of a coin (`pool.families.find_coin`), and `pool.app` hands it to
the parts it wires.

A family's code lives in two places, split by purity (house style: pure code apart from I/O):
``share_validator/<family>/`` holds its pure core (coins as data, addresses, template -> jobs,
the share check) and ``pool/families/<family>.py`` holds the object below, which adds the I/O (the
daemon's RPC dialect).  `docs/adding-a-coin-family.md` walks through writing one.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


class FamilyError(ValueError):
    """A family cannot do what was asked with the given input (an address, a template)."""


class Coin(Protocol):
    """What code outside a family reads of a coin definition (one network of one coin)."""

    name: str  # "litecoin", "litecoin-regtest", ...
    symbol: str
    coinbase_maturity: int  # blocks until a coinbase output may be spent
    block_time_s: int
    decimals: int  # base units per coin = 10**decimals (satoshis: 8)

    @property
    def diff1_target(self) -> int:
        """The target at Stratum difficulty 1."""

    def block_subsidy(self, height: int) -> int:
        """New coins in the block at ``height``, in base units."""


class Work(Protocol):
    """A block template as the chain parts need it; the rest is the family's own."""

    height: int
    prevhash_hex: str  # the tip the template builds on, in the daemon's hex spelling
    coinbase_value: int  # base units the block pays its finder (subsidy + fees)


class Job(Protocol):
    """Work handed to miners: built once per template, shared by every connection."""

    job_id: str
    height: int
    coinbase_value: int
    network_difficulty: float
    #: False until the tip moves past it (`ShareChecker.retire_jobs`): a share judged later is stale.
    retired: bool


class ShareResult(Protocol):
    """The verdict on one share, as the Stratum server, the ledger and block submission read it."""

    reject: Any  # None when accepted, else a `share_validator.errors.Reject` (code, reason)
    worker: Any
    job: Any
    credited_difficulty: float
    actual_difficulty: float
    block: bytes | None  # the serialized block whenever the share solves one
    block_hash: bytes | None

    @property
    def block_hash_hex(self) -> str | None: ...


class ShareChecker(Protocol):
    """The share check of one coin: holds the live jobs, judges shares, finds blocks.

    ``validate`` judges one share in one native call.  When ``batched`` is true (scrypt), the
    server judges queued shares in batches instead: ``prepare_batch`` does the cheap checks,
    ``batch_inputs`` names what to hash, ``hash_batch`` hashes them (on a worker thread: it
    releases the GIL), ``finish_batch`` compares and builds the results.
    """

    batched: bool
    jobs: Mapping[str, Any]

    def add_job(self, job: Any, clean: bool) -> None: ...
    def retire_jobs(self) -> int:
        """The tip moved past every live job, or no template can be had: they become stale (shares on
        them are refused as ``Reject.STALE``, block solutions still found), each marked ``retired``;
        how many there were."""
    def new_miner_state(self, extranonce1: bytes, extranonce2_size: int) -> Any: ...
    def validate(self, state: Any, params: Any) -> Any: ...
    def prepare_batch(self, submissions: Sequence[tuple[Any, Any]]) -> Any: ...
    def batch_inputs(self, prepared: Any) -> list[bytes]: ...
    def hash_batch(self, inputs: Sequence[bytes]) -> list[bytes]: ...
    def hash_each(self, inputs: Sequence[bytes]) -> list[bytes]: ...
    def finish_batch(self, prepared: Any, pow_hashes: Sequence[bytes]) -> list[Any]: ...


@runtime_checkable
class CoinFamily(Protocol):
    """One coin family.  Each part is small; together they are everything coin-specific."""

    name: str  # "bitcoin"
    #: The Stratum dialect its miners speak: "stratum-v1" (mining.subscribe/authorize/notify/submit).
    stratum_dialect: str
    #: The extranonce2 sizes its miners may be given, inclusive.
    extranonce2_sizes: tuple[int, int]
    #: The version bits miners may roll (BIP310), 0 when the family has none.
    version_mask: int

    # -- coins and units ----------------------------------------------------------------
    def coins(self) -> Mapping[str, Coin]:
        """Every network of every coin of the family, by name (coins are data: coins.json)."""

    # -- addresses ----------------------------------------------------------------------
    def payout_script(self, coin: Coin, address: str) -> bytes:
        """What an output paying ``address`` holds; FamilyError saying what was expected otherwise."""

    async def daemon_accepts_address(self, daemon: Any, address: str) -> bool:
        """The daemon's own word on an address a miner logs in with (after ``payout_script`` passed)."""

    # -- the share check ----------------------------------------------------------------
    def share_checker(self, coin: Coin, *, ntime_future_s: int = 600) -> ShareChecker:
        """A fresh share check for ``coin`` (one per Stratum server)."""

    def job_notification(self, job: Any, clean: bool) -> bytes:
        """The line that hands ``job`` to every miner of the family's Stratum dialect."""

    # -- the daemon dialect: templates in, jobs out, blocks back -------------------------
    async def fetch_work(self, daemon: Any, *, longpollid: str | None = None) -> Work:
        """A block template from the daemon (long polling when ``longpollid`` is given)."""

    def longpoll_id(self, work: Work) -> str | None:
        """The id to long-poll the next template with, None when the daemon offers none."""

    def same_work(self, old: Work, new: Work) -> bool:
        """Whether ``new`` would give miners nothing ``old`` did not (no new job needed)."""

    def new_job(self, work: Work, job_id: str, *, payout_script: bytes, pool_tag: bytes,
                extranonce2_size: int, coin: Coin) -> Job:
        """The job miners get for ``work``."""

    def describe_work(self, work: Work) -> str:
        """A few words on a template for the operator's log ("250 transactions, mweb")."""

    async def best_block_hash(self, daemon: Any) -> str:
        """The daemon's chain tip (the polling fallback for new blocks)."""

    #: Submission answers that are not rejections: whether the block made it must be asked of the chain.
    inconclusive_verdicts: frozenset[str]

    async def submit_block(self, daemon: Any, block_hex: str) -> list[str]:
        """Hand a solved block to every daemon at once; each one's verdict: "accepted", "error: ..."
        when it gave no usable answer, or its reason."""

    async def block_hash_at(self, daemon: Any, height: int) -> str | None:
        """The hash of the main chain's block at ``height``; None when the height is above the tip."""

    async def synced_tip_height(self, daemon: Any) -> int | None:
        """The daemon's tip height; None while it is still syncing (no verdicts then)."""

    async def confirmations(self, daemon: Any, hashes: list[str]) -> list[Any]:
        """Per block hash: confirmations (-1 off the main chain), None when the daemon does not know
        the block, or the daemon's error when it could not tell."""
