"""Job construction: rebuilt from real mainnet blocks, and built from templates."""
import pytest
from chaindata import Reader, load_block, parse_block, read_tx

from share_validator import hashing
from share_validator.bitcoin.coins import get_coin
from share_validator.bitcoin.job import (
    Job,
    Template,
    TemplateError,
    coinbase_with_witness,
    merkle_branch,
    merkle_root,
)
from share_validator.bitcoin.serialize import push_int, swap_words
from share_validator.difficulty import bits_to_target

REAL_BLOCKS = [("litecoin_mainnet_2265985", "litecoin"), ("bitcoin_mainnet_951658", "bitcoin")]


@pytest.mark.parametrize("fixture, coin_name", REAL_BLOCKS)
def test_real_block_rebuilt_from_coinbase_parts(use_backend, fixture, coin_name):
    """Given a real block's coinbase split around 8 bytes of its scriptSig and its txids,
    the one-call share hash gives back the real merkle root, header and block hash."""
    coin = get_coin(coin_name)
    block = load_block(fixture)
    raw = bytes.fromhex(block["block"])
    header, txs, _ = parse_block(raw)
    assert len(txs) == len(block["tx"])
    coinbase = txs[0]["stripped"]
    assert hashing.sha256d(coinbase)[::-1].hex() == block["tx"][0]
    script_offset, script_length = txs[0]["inputs"][0]
    assert script_length >= 12
    cut = script_offset + 4  # after the BIP34 height push, inside the scriptSig
    coinb1, extranonce1, extranonce2, coinb2 = coinbase[:cut], coinbase[cut:cut + 4], coinbase[cut + 4:cut + 8], coinbase[cut + 8:]
    txids = [bytes.fromhex(txid)[::-1] for txid in block["tx"]]
    branch = merkle_branch(txids[1:])
    assert merkle_root(txids)[::-1].hex() == block["merkleroot"]

    out = hashing.share_hash(
        coin.algorithm.pow_code, coinb1, extranonce1, extranonce2, coinb2, b"".join(branch),
        bytes.fromhex(block["previousblockhash"])[::-1],
        int.from_bytes(header[:4], "little"), block["time"], int(block["bits"], 16), block["nonce"],
    )
    assert out[:80] == header
    assert out[36:68][::-1].hex() == block["merkleroot"]
    assert out[112:][::-1].hex() == block["hash"]
    assert int.from_bytes(out[80:112], "little") <= bits_to_target(int(block["bits"], 16))
    assert out[80:112] == coin.algorithm.pow_hash(header)


def test_merkle_branch_shapes():
    # With only the coinbase there is no branch; the branch length is ceil(log2(n)).
    leaves = [bytes([i]) * 32 for i in range(1, 40)]
    assert merkle_branch([]) == []
    for count in range(1, 39):
        branch = merkle_branch(leaves[1:count])
        assert len(branch) == (count - 1).bit_length()
        root = leaves[0]
        for node in branch:
            root = hashing.sha256d(root + node)
        assert root == merkle_root(leaves[:count])


@pytest.mark.parametrize(
    "height, push",
    [(1, "51"), (16, "60"), (17, "0111"), (127, "017f"), (128, "028000"), (255, "02ff00"), (256, "020001"),
     (432, "02b001"), (500, "02f401"), (65535, "03ffff00"), (2265985, "03819322"), (8388608, "0400008000")],
)
def test_bip34_height_push(height, push):
    # Bitcoin Core CScript() << nHeight: OP_1..OP_16 for small heights, else a minimal CScriptNum push.
    assert push_int(height).hex() == push


def gbt_from_block(fixture: str, **overrides) -> dict:
    """A getblocktemplate-shaped answer carrying a real block's transactions."""
    block = load_block(fixture)
    raw = bytes.fromhex(block["block"])
    header, txs, _ = parse_block(raw)
    gbt = {
        "version": int.from_bytes(header[:4], "little"),
        "previousblockhash": block["previousblockhash"],
        "transactions": [{"data": tx["raw"].hex(), "txid": txid} for tx, txid in zip(txs[1:], block["tx"][1:])],
        "coinbasevalue": 1_253_000_000,
        "bits": block["bits"],
        "curtime": block["time"],
        "mintime": block["time"] - 3000,
        "height": block["height"],
        "default_witness_commitment": "6a24aa21a9ed" + "ab" * 32,
        "longpollid": "x" * 64 + "7",
    }
    gbt.update(overrides)
    return gbt


def make_job(coin_name="litecoin", fixture="litecoin_mainnet_2265985", **overrides):
    coin = get_coin(coin_name)
    template = Template.from_gbt(gbt_from_block(fixture, **overrides))
    payout = bytes.fromhex("0014") + bytes(range(20))
    return Job("1f", coin, template, payout_script=payout, pool_tag=b"/quarry/", extranonce2_size=4)


def test_job_notify_fields_follow_the_wire_conventions():
    job = make_job()
    block = load_block("litecoin_mainnet_2265985")
    job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime = job.notify_params
    assert job_id == "1f"
    # prevhash: header bytes with every 4-byte word reversed.
    header_prev = bytes.fromhex(block["previousblockhash"])[::-1]
    assert bytes.fromhex(prevhash) == swap_words(header_prev)
    assert swap_words(bytes.fromhex(prevhash)) == header_prev
    assert nbits == block["bits"]
    assert ntime == f"{block['time']:08x}"
    assert int(version, 16) == job.version and len(version) == 8
    assert branch == [node.hex() for node in merkle_branch([bytes.fromhex(t)[::-1] for t in block["tx"][1:]])]
    assert coinb1 == job.coinb1.hex() and coinb2 == job.coinb2.hex()


def test_every_job_has_its_own_coinbase():
    """Two jobs of one template differ in their coinbase (the job id), so the same extranonce, ntime
    and nonce never give the same header on two jobs: duplicates are per job."""
    first, second = make_job(), make_job()
    assert first.coinb1 == second.coinb1  # same job id, same template
    coin = get_coin("litecoin")
    other = Job("20", coin, first.template, payout_script=bytes.fromhex("0014") + bytes(range(20)),
                pool_tag=b"/quarry/", extranonce2_size=4)
    assert other.coinb1 != first.coinb1 and other.coinb2 == first.coinb2
    extranonce = bytes.fromhex("01020304"), bytes.fromhex("0a0b0c0d")
    assert hashing.sha256d(other.coinbase(*extranonce)) != hashing.sha256d(first.coinbase(*extranonce))


def test_coinbase_structure():
    job = make_job()
    coinbase = job.coinbase(bytes.fromhex("01020304"), bytes.fromhex("0a0b0c0d"))
    tx = read_tx(Reader(coinbase))
    assert tx["stripped"] == coinbase
    script_offset, script_length = tx["inputs"][0]
    script = coinbase[script_offset:script_offset + script_length]
    assert script.startswith(push_int(2265985) + b"\x021f")  # height, then the job id
    assert bytes.fromhex("0801020304" "0a0b0c0d") in script
    assert script.endswith(b"\x08/quarry/")
    assert 2 <= script_length <= 100
    # outputs: payout (the whole value) then the witness commitment with value 0
    reader = Reader(coinbase)
    reader.pos = script_offset + script_length + 4
    assert reader.varint() == 2
    assert int.from_bytes(reader.take(8), "little") == 1_253_000_000
    assert reader.take(reader.varint()) == bytes.fromhex("0014") + bytes(range(20))
    assert int.from_bytes(reader.take(8), "little") == 0
    assert reader.take(reader.varint()).hex() == "6a24aa21a9ed" + "ab" * 32
    assert reader.take(4) == bytes(4)


def test_extra_outputs_take_from_the_payout():
    coin = get_coin("litecoin")
    template = Template.from_gbt(gbt_from_block("litecoin_mainnet_2265985"))
    fee_script = bytes.fromhex("a914") + bytes(20) + b"\x87"
    job = Job("2", coin, template, payout_script=b"\x51", extra_outputs=[(fee_script, 3_000_000)])
    coinbase = job.coinbase(bytes(4), bytes(4))
    assert (1_250_000_000).to_bytes(8, "little") + b"\x01\x51" in coinbase
    assert (3_000_000).to_bytes(8, "little") + b"\x17" + fee_script in coinbase
    with pytest.raises(ValueError):
        Job("3", coin, template, payout_script=b"\x51", extra_outputs=[(fee_script, 1_253_000_001)])


def test_pool_tag_too_long_is_refused():
    with pytest.raises(ValueError, match="pool tag"):
        make_job().__class__("4", get_coin("litecoin"), make_job().template, payout_script=b"\x51", pool_tag=b"x" * 90)


@pytest.mark.parametrize("size", [3, 9, 0, -1])
def test_extranonce2_size_bounds(size):
    with pytest.raises(ValueError):
        Job("5", get_coin("litecoin"), make_job().template, payout_script=b"\x51", extranonce2_size=size)


def test_block_serialization_round_trips_and_appends_mweb():
    job = make_job(mweb="c0ffee" * 10)
    block = load_block("litecoin_mainnet_2265985")
    coinbase = job.coinbase(bytes(4), bytes(4))
    header = bytes(80)
    serialized = job.serialize_block(header, coinbase)
    reader = Reader(serialized)
    assert reader.take(80) == header
    assert reader.varint() == len(block["tx"])
    assert read_tx(reader)["raw"] == coinbase
    for txid in block["tx"][1:]:
        tx = read_tx(reader)
        assert hashing.sha256d(tx["stripped"])[::-1].hex() == txid
    assert serialized[reader.pos:] == b"\x01" + bytes.fromhex("c0ffee" * 10)
    # No mweb field: nothing appended.
    plain = make_job().serialize_block(header, coinbase)
    assert plain == serialized[:reader.pos]


def test_coinbase_witness_form():
    job = make_job()
    coinbase = job.coinbase(bytes(4), bytes(4))
    with_witness = coinbase_with_witness(coinbase)
    tx = read_tx(Reader(with_witness))
    assert tx["stripped"] == coinbase
    assert with_witness[4:6] == b"\x00\x01"
    assert with_witness[-4 - 34:-4] == b"\x01\x20" + bytes(32)
    block = job.serialize_block(bytes(80), coinbase, coinbase_witness=True)
    assert with_witness in block


@pytest.mark.parametrize(
    "field, value",
    [("previousblockhash", "zz" * 32), ("previousblockhash", "00" * 31), ("bits", "1d00fff"), ("bits", 486604799),
     ("height", -1), ("height", "1"), ("height", True), ("coinbasevalue", 2.5), ("curtime", 2**40),
     ("transactions", {}), ("transactions", [{"data": "00"}]), ("transactions", [{"data": "0", "txid": "00" * 32}]),
     ("default_witness_commitment", "xyz"), ("mweb", 12), ("version", None)],
)
def test_template_errors_name_the_field(field, value):
    gbt = gbt_from_block("litecoin_mainnet_2265985", **{field: value})
    with pytest.raises(TemplateError):
        Template.from_gbt(gbt)


def test_template_not_a_dict():
    for bad in (None, [], "template", 5):
        with pytest.raises(TemplateError):
            Template.from_gbt(bad)


def test_serializer_reproduces_a_real_mweb_block():
    """Litecoin block 2,265,985 is from just after MWEB activation: header, txs, then 0x01 + MWEB
    block. A job carrying its transactions and MWEB bytes serializes it back byte for byte."""
    block = load_block("litecoin_mainnet_2265985")
    raw = bytes.fromhex(block["block"])
    header, txs, rest = parse_block(raw)
    assert rest[:1] == b"\x01"
    job = make_job(mweb=rest[1:].hex())
    assert txs[0]["raw"] == coinbase_with_witness(txs[0]["stripped"])
    assert job.serialize_block(header, txs[0]["stripped"], coinbase_witness=True) == raw
