"""The Merkle tree over a block's miner payouts, with inclusion proofs.

Precisely (version ``quarry-payout-v1``):

* Leaves are the report's miner entries sorted by address as UTF-8 bytes (addresses are distinct):
  ``leaf = sha256(b"quarry-payout-v1" || address as UTF-8 || 0x00 || amount as 8-byte big-endian)``.
  Addresses never contain NUL, so the encoding is unambiguous.
* An internal node is ``sha256(left || right)`` (64 bytes in).  A level with an odd count promotes its
  last node unchanged to the next level (it is *not* duplicated, so no two different payout lists
  share a root the way Bitcoin's duplicated-last-node trees can).  Leaves and internal nodes cannot
  be confused: a leaf pre-image starts with the 16-byte tag, and no one can make a node hash that does.
* The root of one leaf is that leaf; the root of no leaves is ``sha256(b"quarry-payout-v1")``
  (shorter than any leaf pre-image).
* A proof is the list of siblings from the leaf up, each ``(side, hash hex)``: side ``"L"`` means the
  sibling is on the left (``node = sha256(sibling || node)``), ``"R"`` on the right.  Levels where the
  node was promoted contribute no step.  Hashes and roots are lower-case hex strings.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

TAG = b"quarry-payout-v1"
EMPTY_ROOT = hashlib.sha256(TAG).digest()
LEFT, RIGHT = "L", "R"


def leaf_hash(address: str, amount: int) -> bytes:
    return hashlib.sha256(TAG + address.encode("utf-8") + b"\x00" + amount.to_bytes(8, "big")).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(left + right).digest()


def sort_key(address: str) -> bytes:
    """Leaf order: addresses as UTF-8 bytes (the same order as Python's str comparison)."""
    return address.encode("utf-8")


def tree_levels(payouts: Sequence[tuple[str, int]]) -> list[list[bytes]]:
    """All levels of the tree over ``(address, amount)`` pairs already in leaf order, leaves first."""
    level = [leaf_hash(address, amount) for address, amount in payouts]
    if not level:
        return [[EMPTY_ROOT]]
    levels = [level]
    while len(level) > 1:
        parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        levels.append(parents)
        level = parents
    return levels


def merkle_root(payouts: Sequence[tuple[str, int]]) -> str:
    return tree_levels(payouts)[-1][0].hex()


def proof_from_levels(levels: list[list[bytes]], index: int) -> list[tuple[str, str]]:
    steps = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            steps.append((LEFT if sibling < index else RIGHT, level[sibling].hex()))
        index //= 2
    return steps


def verify_proof(root: str | bytes, address: str, amount: int, proof: Sequence[tuple[str, str]]) -> bool:
    """True when ``(address, amount)`` is a leaf under ``root`` by ``proof``; False for any bad input."""
    try:
        if isinstance(root, str):
            root = bytes.fromhex(root)
        if not isinstance(root, bytes) or len(root) != 32:
            return False
        if not isinstance(address, str) or not address or "\x00" in address:
            return False
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount < 2**64:
            return False
        node = leaf_hash(address, amount)
        for side, sibling_hex in proof:
            sibling = bytes.fromhex(sibling_hex)
            if len(sibling) != 32:
                return False
            if side == LEFT:
                node = node_hash(sibling, node)
            elif side == RIGHT:
                node = node_hash(node, sibling)
            else:
                return False
        return node == root
    except (TypeError, ValueError, UnicodeError):
        return False
