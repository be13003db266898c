"""The payout Merkle tree (leaf encoding, promotion of the odd node, proofs) and the canonical report."""
import hashlib
import json
from fractions import Fraction

import pytest

from payouts import Block, FeeConfig, PayoutError, PayoutReport, ShareWork, pplns, proof, solo, verify_proof
from payouts.merkle import EMPTY_ROOT, merkle_root, proof_from_levels, tree_levels
from payouts.report import PayoutEntry


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf(address, amount):
    # Written out from the specification, independently of payouts.merkle.
    return sha256(b"quarry-payout-v1" + address.encode("utf-8") + b"\x00" + amount.to_bytes(8, "big"))


def test_leaf_encoding_known_answer():
    # "quarry-payout-v1" || "A" || 0x00 || 1 as 8 bytes big-endian
    preimage = bytes.fromhex("7175617272792d7061796f75742d7631" "41" "00" "0000000000000001")
    assert leaf("A", 1) == sha256(preimage)
    assert merkle_root([("A", 1)]) == leaf("A", 1).hex()


def test_three_leaves_promote_the_last():
    pairs = [("A", 5), ("B", 6), ("C", 7)]
    ab = sha256(leaf("A", 5) + leaf("B", 6))
    assert merkle_root(pairs) == sha256(ab + leaf("C", 7)).hex()
    # Not duplicated: [A, B, C] and [A, B, C, C] differ.
    assert merkle_root(pairs) != merkle_root(pairs + [("C", 7)])


def test_five_leaves():
    leaves = [leaf(a, n) for a, n in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]]
    left = sha256(sha256(leaves[0] + leaves[1]) + sha256(leaves[2] + leaves[3]))
    assert merkle_root([("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]) == sha256(left + leaves[4]).hex()


def test_empty_root():
    assert EMPTY_ROOT == sha256(b"quarry-payout-v1")
    assert merkle_root([]) == EMPTY_ROOT.hex()


@pytest.mark.parametrize("count", list(range(1, 18)) + [64, 100, 1001])
def test_every_proof_verifies_and_tampering_fails(count):
    pairs = [(f"addr{i:05d}", 1000 + i) for i in range(count)]
    levels = tree_levels(pairs)
    root = levels[-1][0].hex()
    for index, (address, amount) in enumerate(pairs):
        steps = proof_from_levels(levels, index)
        assert verify_proof(root, address, amount, steps)
        assert verify_proof(bytes.fromhex(root), address, amount, steps)
        if index % 7 == 0 or count < 18:
            assert not verify_proof(root, address, amount + 1, steps)
            assert not verify_proof(root, address + "x", amount, steps)
            if steps:
                flipped = [("R" if side == "L" else "L", h) for side, h in steps]
                assert not verify_proof(root, address, amount, flipped)
                assert not verify_proof(root, address, amount, steps[:-1])


@pytest.mark.parametrize("root, address, amount, steps", [
    ("zz", "A", 1, []), ("00" * 31, "A", 1, []), (5, "A", 1, []), (None, "A", 1, []),
    ("ROOT", "A", 1, []), ("LEAF", "", 1, []), ("LEAF", "A\x00", 1, []), ("LEAF", None, 1, []),
    ("LEAF", "A", -1, []), ("LEAF", "A", 2**64, []), ("LEAF", "A", True, []), ("LEAF", "A", 1.0, []),
    ("ROOT", "A", 1, [("X", "00" * 32)]), ("ROOT", "A", 1, [("L", "00")]), ("ROOT", "A", 1, [("L",)]),
    ("ROOT", "A", 1, [("L", "gg" * 32)]), ("ROOT", "A", 1, None), ("ROOT", "A", 1, [None]),
])
def test_malformed_verification_input_is_false(root, address, amount, steps):
    real_root = merkle_root([("A", 1), ("B", 2)])
    root = {"ROOT": real_root, "LEAF": leaf("A", 1).hex()}.get(root, root) if isinstance(root, str) else root
    assert verify_proof(root, address, amount, steps) is False


BLOCK = Block(7, "00ff", 1_000_000_000, "A")


def report_for(rows, fees=FeeConfig("1", [("fund", "0.5")])):
    shares = [ShareWork(a, "r", float(d), 100.0, f"s{i:03d}", created=100 - i)
              for i, (a, d) in enumerate(rows)]
    return pplns(BLOCK, shares, fees)


def test_report_proofs_for_every_address():
    report = report_for([(f"m{i % 23}", 1 + i % 3) for i in range(60)])
    assert len(report.entries) == 23
    for entry in report.entries:
        steps = proof(report, entry.address)
        assert verify_proof(report.merkle_root, entry.address, entry.amount, steps)
        assert not verify_proof(report.merkle_root, entry.address, entry.amount - 1, steps)
    with pytest.raises(KeyError):
        proof(report, "nobody")
    with pytest.raises(KeyError):
        proof(report, "fund")  # fee payments are in the report, not in the miners' tree


def test_canonical_bytes():
    report = report_for([("ltc1qé", 100), ("Ä", 60), ("B", 80)])
    raw = report.to_json_bytes()
    assert raw.isascii() and b" " not in raw and b"\n" not in raw
    data = json.loads(raw)
    assert json.dumps(data, sort_keys=True, separators=(",", ":")).encode() == raw
    # Addresses in UTF-8 byte order: "B" (0x42) < "ltc1qé" (0x6c ...) < "Ä" (0xc3 0x84).
    assert [m["address"] for m in data["miners"]] == ["B", "ltc1qé", "Ä"]
    assert report.digest == hashlib.sha256(raw).hexdigest()
    assert data["version"] == "quarry-payout-v1"


def test_report_is_reproducible():
    rows = [(f"m{i % 5}", 7 + i * 3) for i in range(40)]
    first, second = report_for(rows), report_for(list(rows))
    assert first is not second and first.to_json_bytes() == second.to_json_bytes()
    assert first.merkle_root == second.merkle_root and first == second


def test_report_refuses_inconsistent_totals():
    good = solo(BLOCK, FeeConfig("1"))
    with pytest.raises(PayoutError, match="!= 1000000000"):
        PayoutReport("solo", BLOCK, good.fees, (PayoutEntry("A", Fraction(1), Fraction(1), 990_000_001),),
                     (), 10_000_000, 0, None, True)
    with pytest.raises(PayoutError, match="non-negative"):
        PayoutReport("solo", BLOCK, good.fees, (PayoutEntry("A", Fraction(1), Fraction(1), 1_000_000_001),),
                     (), -1, 0, None, True)
    with pytest.raises(PayoutError, match="UTF-8 byte order"):
        entries = (PayoutEntry("B", 1, 1, 500_000_000), PayoutEntry("A", 1, 1, 500_000_000))
        PayoutReport("pplns", BLOCK, good.fees, entries, (), 0, 0, None, True)
