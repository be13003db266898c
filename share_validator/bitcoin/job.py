"""From a ``getblocktemplate`` answer to Stratum jobs, and from a solved share to a block.

Everything a share needs is computed once per job: the coinbase halves around the
extranonce, the merkle branch, the header fields as integers, the network target,
the ``mining.notify`` parameters and the bytes that follow the coinbase in a block.

Byte orders (see docs and ../shared/facts/stratum-v1-wire.md):
- ``prevhash`` here is in header (internal) order, the reverse of the hex the daemon
  prints; Stratum sends it with each 4-byte word byte-reversed.
- version, nbits, ntime travel as 8 hex digits, the big-endian spelling of the integer.
- txids from the template are display hex; the merkle tree uses them reversed.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from share_validator import hashing
from share_validator.bitcoin.coins import Coin
from share_validator.bitcoin.serialize import push_data, push_int, swap_words, tx_output, varint
from share_validator.difficulty import bits_to_target, target_to_difficulty
from share_validator.hashing import sha256d

EXTRANONCE1_SIZE = 4
MIN_EXTRANONCE2_SIZE = 4
MAX_EXTRANONCE2_SIZE = 8
POOL_VERSION_MASK = 0x1FFFE000  # BIP320 general-purpose bits
MAX_COINBASE_SCRIPT = 100  # consensus: coinbase scriptSig is 2..100 bytes
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class TemplateError(ValueError):
    """The block template is not usable; the message names the field."""


def _hex_field(gbt: dict, key: str, length: int | None = None, optional: bool = False) -> bytes | None:
    value = gbt.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TemplateError(f"template field {key!r} is not hex")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise TemplateError(f"template field {key!r} is not hex") from None
    if 2 * len(data) != len(value):  # fromhex skips whitespace; a daemon never sends any
        raise TemplateError(f"template field {key!r} is not hex")
    if length is not None and len(data) != length:
        raise TemplateError(f"template field {key!r} must be {length} bytes")
    return data


def _int_field(gbt: dict, key: str, low: int, high: int) -> int:
    value = gbt.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TemplateError(f"template field {key!r} must be an integer in [{low}, {high}]")
    return value


@dataclass(frozen=True, slots=True)
class Template:
    """The parts of a getblocktemplate answer the pool uses, checked and decoded."""

    height: int
    version: int
    prevhash: bytes  # header order
    bits: int
    curtime: int
    mintime: int
    coinbase_value: int  # satoshis
    tx_data: tuple[bytes, ...]
    txids: tuple[bytes, ...]  # internal byte order
    witness_commitment: bytes | None  # output script
    mweb: bytes | None
    longpollid: str | None

    @property
    def prevhash_hex(self) -> str:
        return self.prevhash[::-1].hex()

    @classmethod
    def from_gbt(cls, gbt: dict) -> Template:
        if not isinstance(gbt, dict):
            raise TemplateError("template is not an object")
        transactions = gbt.get("transactions", [])
        if not isinstance(transactions, list):
            raise TemplateError("template field 'transactions' is not a list")
        tx_data, txids = [], []
        for index, tx in enumerate(transactions):
            if not isinstance(tx, dict):
                raise TemplateError(f"template transaction {index} is not an object")
            tx_data.append(_hex_field(tx, "data"))
            txids.append(_hex_field(tx, "txid", 32)[::-1])
        bits_hex = gbt.get("bits")
        if not isinstance(bits_hex, str) or len(bits_hex) != 8 or not set(bits_hex) <= _HEX_DIGITS:
            raise TemplateError("template field 'bits' must be 8 hex digits")
        curtime = _int_field(gbt, "curtime", 0, 0xFFFFFFFF)
        longpollid = gbt.get("longpollid")
        return cls(
            height=_int_field(gbt, "height", 0, 0x7FFFFFFF),
            version=_int_field(gbt, "version", 0, 0xFFFFFFFF),
            prevhash=_hex_field(gbt, "previousblockhash", 32)[::-1],
            bits=int(bits_hex, 16),
            curtime=curtime,
            mintime=_int_field(gbt, "mintime", 0, 0xFFFFFFFF) if "mintime" in gbt else curtime,
            coinbase_value=_int_field(gbt, "coinbasevalue", 0, 21_000_000 * 10**8 * 4),
            tx_data=tuple(tx_data),
            txids=tuple(txids),
            witness_commitment=_hex_field(gbt, "default_witness_commitment", optional=True),
            mweb=_hex_field(gbt, "mweb", optional=True),
            longpollid=longpollid if isinstance(longpollid, str) else None,
        )


def merkle_branch(txids: Sequence[bytes]) -> list[bytes]:
    """The hashes a miner folds into the coinbase txid to reach the merkle root.

    ``txids`` are the block's transactions after the coinbase, internal byte order.
    """
    branch = []
    level: list[bytes | None] = [None, *txids]
    while len(level) > 1:
        branch.append(level[1])
        if len(level) % 2:
            level.append(level[-1])
        level = [None] + [sha256d(level[i] + level[i + 1]) for i in range(2, len(level), 2)]
    return branch


def merkle_root(txids: Sequence[bytes]) -> bytes:
    """Merkle root over all txids (coinbase included), internal byte order."""
    if not txids:
        raise ValueError("no transactions")
    level = list(txids)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def coinbase_with_witness(coinbase: bytes) -> bytes:
    """The coinbase with segwit marker, flag and the 32-zero-byte witness reserved value.

    ``submitblock`` adds this itself; GBT proposal mode does not.
    """
    return coinbase[:4] + b"\x00\x01" + coinbase[4:-4] + b"\x01\x20" + bytes(32) + coinbase[-4:]


class Job:
    """One unit of work: a template, the pool's coinbase and everything precomputed."""

    __slots__ = (
        "_block_tail",
        "_tx_count",
        "bits",
        "branch",
        "branch_bytes",
        "coin",
        "coinb1",
        "coinb2",
        "coinbase_value",
        "extranonce2_size",
        "hasher",
        "height",
        "job_id",
        "mintime",
        "network_difficulty",
        "network_target",
        "notify_params",
        "ntime",
        "pow_code",
        "prevhash",
        "retired",
        "template",
        "version",
        "version_mask",
    )

    def __init__(
        self,
        job_id: str,
        coin: Coin,
        template: Template,
        *,
        payout_script: bytes,
        extra_outputs: Iterable[tuple[bytes, int]] = (),
        pool_tag: bytes = b"",
        extranonce2_size: int = 4,
        version_mask: int = POOL_VERSION_MASK,
    ) -> None:
        if not MIN_EXTRANONCE2_SIZE <= extranonce2_size <= MAX_EXTRANONCE2_SIZE:
            raise ValueError(f"extranonce2 size must be {MIN_EXTRANONCE2_SIZE}..{MAX_EXTRANONCE2_SIZE}")
        self.job_id = job_id
        self.coin = coin
        self.template = template
        self.height = template.height
        self.version = template.version
        self.prevhash = template.prevhash
        self.retired = False  # set once the chain tip has moved past it (see ShareValidator.retire_jobs)
        self.bits = template.bits
        self.ntime = template.curtime
        self.mintime = template.mintime
        self.coinbase_value = template.coinbase_value
        self.extranonce2_size = extranonce2_size
        self.version_mask = version_mask
        self.pow_code = coin.algorithm.pow_code
        self.network_target = bits_to_target(template.bits)
        self.network_difficulty = target_to_difficulty(coin.diff1_target, self.network_target)
        # The job id in the coinbase makes every job's headers its own: the same extranonce, ntime
        # and nonce on two jobs of one template are two different shares, so the validator keeps
        # a job's duplicate set only while the job is valid.
        self.coinb1, self.coinb2 = build_coinbase(
            template, payout_script, list(extra_outputs), pool_tag, EXTRANONCE1_SIZE + extranonce2_size,
            job_tag=job_id.encode(),
        )
        self.branch = merkle_branch(template.txids)
        self.branch_bytes = b"".join(self.branch)
        self.hasher = hashing.JobHasher(self.coinb1, self.coinb2, self.branch_bytes, self.prevhash, self.bits)
        self._tx_count = varint(1 + len(template.tx_data))
        tail = b"".join(template.tx_data)
        if template.mweb is not None:
            tail += b"\x01" + template.mweb
        self._block_tail = tail
        self.notify_params = [
            job_id,
            swap_words(self.prevhash).hex(),
            self.coinb1.hex(),
            self.coinb2.hex(),
            [node.hex() for node in self.branch],
            f"{self.version:08x}",
            f"{self.bits:08x}",
            f"{self.ntime:08x}",
        ]

    def coinbase(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        return self.coinb1 + extranonce1 + extranonce2 + self.coinb2

    def serialize_block(self, header: bytes, coinbase: bytes, *, coinbase_witness: bool = False) -> bytes:
        """The block for ``submitblock``: header, tx count, coinbase, template txs, [0x01 + mweb]."""
        if coinbase_witness and self.template.witness_commitment is not None:
            coinbase = coinbase_with_witness(coinbase)
        return header + self._tx_count + coinbase + self._block_tail


def build_coinbase(
    template: Template,
    payout_script: bytes,
    extra_outputs: list[tuple[bytes, int]],
    pool_tag: bytes,
    extranonce_size: int,
    *,
    job_tag: bytes = b"",
) -> tuple[bytes, bytes]:
    """Coinbase transaction (without witness) split around the extranonce: (coinb1, coinb2).

    scriptSig = BIP34 height | push of the job tag (the job id) | push of the extranonce
    (extranonce1 + extranonce2) | push of the pool tag; empty tags are left out.
    Outputs: the payout script with what the extra outputs leave of the coinbase value, the
    extra outputs, then the witness commitment (value 0) when the template has one.
    """
    height_push = push_int(template.height)
    job_push = push_data(job_tag) if job_tag else b""
    tag_push = push_data(pool_tag) if pool_tag else b""
    script_length = len(height_push) + len(job_push) + 1 + extranonce_size + len(tag_push)
    if script_length > MAX_COINBASE_SCRIPT:
        raise ValueError(f"coinbase scriptSig would be {script_length} bytes (max {MAX_COINBASE_SCRIPT}): "
                         "shorten the pool tag (or the job id)")
    extra_total = sum(value for _, value in extra_outputs)
    if any(value < 0 for _, value in extra_outputs) or extra_total > template.coinbase_value:
        raise ValueError("extra coinbase outputs exceed the coinbase value")
    outputs = [tx_output(template.coinbase_value - extra_total, payout_script)]
    outputs += [tx_output(value, script) for script, value in extra_outputs]
    if template.witness_commitment is not None:
        outputs.append(tx_output(0, template.witness_commitment))
    coinb1 = (
        (1).to_bytes(4, "little")  # transaction version
        + b"\x01"  # one input
        + bytes(32) + b"\xff\xff\xff\xff"  # the null prevout
        + varint(script_length)
        + height_push
        + job_push
        + bytes([extranonce_size])  # direct push of the extranonce
    )
    coinb2 = (
        tag_push
        + b"\xff\xff\xff\xff"  # sequence
        + varint(len(outputs))
        + b"".join(outputs)
        + bytes(4)  # lock time
    )
    return coinb1, coinb2
