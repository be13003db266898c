"""Every rejection rule of the share validator, with hostile variants, on both hashing backends."""

import pytest
from chaindata import parse_block
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from share_validator.bitcoin.coins import get_coin
from share_validator.bitcoin.job import Job, Template
from share_validator.bitcoin.validator import Difficulty, MinerState, ShareValidator
from share_validator.errors import Reject, StratumError

PREV = "00000000000000000002a7c4c1e48d76c5a37902165a270156b7a8d72728a054"
CURTIME = 1_700_000_000
REGTEST_BITS = "207fffff"  # about one hash in two is a block
MAINNET_BITS = "1a010ccd"  # no random share is a block
WORKER = "ltc1qexampleaddress.rig1"
# A minimal well-formed transaction (one input, one empty output); txids are made up in the tests.
DUMMY_TX = "01000000" "01" + "00" * 36 + "00" "ffffffff" "01" + "00" * 8 + "00" "00000000"
EXTRANONCE1 = bytes.fromhex("deadbeef")


def template(bits=MAINNET_BITS, prev=PREV, height=2_000_000, **extra):
    gbt = {
        "version": 0x20000000, "previousblockhash": prev, "bits": bits, "curtime": CURTIME,
        "mintime": CURTIME - 1000, "height": height, "coinbasevalue": 625_000_000,
        "transactions": [{"data": DUMMY_TX, "txid": f"{i:064x}"} for i in range(1, 6)],
        "default_witness_commitment": "6a24aa21a9ed" + "00" * 32,
    }
    gbt.update(extra)
    return Template.from_gbt(gbt)


class Pool:
    """A validator with one job sent to one miner, for the tests."""

    def __init__(self, coin_name="bitcoin", bits=MAINNET_BITS, difficulty=1e-12, extranonce2_size=4):
        self.coin = get_coin(coin_name)
        self.validator = ShareValidator(self.coin)
        self.state = MinerState(EXTRANONCE1, extranonce2_size)
        self.state.authorized.add(WORKER)
        self.difficulty = Difficulty(self.coin, difficulty)
        self.counter = 0
        self.new_job(bits=bits, clean=True)

    def new_job(self, clean=False, **template_args):
        self.counter += 1
        job = Job(f"{self.counter:x}", self.coin, template(**template_args), payout_script=b"\x51",
                  extranonce2_size=self.state.extranonce2_size)
        self.validator.add_job(job, clean)
        self.state.job_sent(job.job_id, self.difficulty)
        self.job = job
        return job

    def submit(self, extranonce2="00000000", ntime=None, nonce="00000000", job_id=None, worker=WORKER, version=None):
        job_id = self.job.job_id if job_id is None else job_id
        ntime = f"{CURTIME:08x}" if ntime is None else ntime
        params = [worker, job_id, extranonce2, ntime, nonce]
        if version is not None:
            params.append(version)
        return self.validator.validate(self.state, params)

    def find(self, predicate, limit=64):
        for n in range(limit):
            result = self.submit(nonce=f"{n:08x}")
            if predicate(result):
                return n, result
        raise AssertionError("no nonce found")


COINS = ["bitcoin", "litecoin"]


@pytest.mark.parametrize("coin", COINS)
def test_good_share_accepted(use_backend, coin):
    pool = Pool(coin)
    result = pool.submit()
    assert result.accepted, result
    assert result.code is None and result.credited_difficulty == pytest.approx(1e-12)
    assert result.actual_difficulty > 0 and not result.is_block
    assert result.worker == WORKER and result.job is pool.job
    assert result.header[4:36] == pool.job.prevhash


@pytest.mark.parametrize(
    "field, value, reject",
    [
        ("extranonce2", "0000000", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "000000000", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "0000000000", Reject.BAD_EXTRANONCE2),  # wrong size
        ("extranonce2", "ABCDEF01", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "0x000000", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "0000000g", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "00000000\n", Reject.BAD_EXTRANONCE2),
        ("extranonce2", " 0000000", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "", Reject.BAD_EXTRANONCE2),
        ("extranonce2", "０００００００", Reject.BAD_EXTRANONCE2),  # full-width digits
        ("extranonce2", "٠٠٠٠٠٠٠٠", Reject.BAD_EXTRANONCE2),  # Arabic-Indic digits
        ("extranonce2", 0, Reject.BAD_EXTRANONCE2),
        ("extranonce2", None, Reject.BAD_EXTRANONCE2),
        ("extranonce2", "0" * 1_000_000, Reject.BAD_EXTRANONCE2),
        ("ntime", "6553F100", Reject.BAD_NTIME),
        ("ntime", "6553f10", Reject.BAD_NTIME),
        ("ntime", float("nan"), Reject.BAD_NTIME),
        ("ntime", 1700000000, Reject.BAD_NTIME),
        ("ntime", ["6553f100"], Reject.BAD_NTIME),
        ("nonce", "0000000z", Reject.BAD_NONCE),
        ("nonce", "000000001", Reject.BAD_NONCE),
        ("nonce", 2**64, Reject.BAD_NONCE),
        ("nonce", float("inf"), Reject.BAD_NONCE),
        ("nonce", {"n": 1}, Reject.BAD_NONCE),
        ("nonce", "𝟎𝟎𝟎𝟎𝟎𝟎𝟎𝟎", Reject.BAD_NONCE),
        ("version", "2000000", Reject.BAD_VERSION_BITS),
        ("version", "1FFFE000", Reject.BAD_VERSION_BITS),
        ("version", True, Reject.BAD_VERSION_BITS),
        ("job_id", "", Reject.BAD_JOB_ID),
        ("job_id", 1, Reject.BAD_JOB_ID),
        ("job_id", "x" * 1_000_000, Reject.BAD_JOB_ID),
        ("worker", "", Reject.BAD_WORKER),
        ("worker", None, Reject.BAD_WORKER),
        ("worker", "w" * 1_000_000, Reject.BAD_WORKER),
    ],
)
def test_malformed_fields_rejected_with_code_20(field, value, reject):
    pool = Pool()
    pool.state.version_mask = 0x1FFFE000
    result = pool.submit(**{field: value})
    assert result.reject is reject
    assert result.code == StratumError.OTHER == 20
    assert result.reason == reject.reason


@pytest.mark.parametrize(
    "params",
    [None, [], {}, "submit", 5, float("nan"), [WORKER], [WORKER, "1", "00000000", "6553f100"],
     [WORKER, "1", "00000000", "6553f100", "00000000", "20000000", "extra"],
     (WORKER, "1", "00000000", "6553f100", "00000000")],
)
def test_malformed_parameter_lists(params):
    result = Pool().validator.validate(Pool().state, params)
    assert result.reject is Reject.BAD_PARAMS and result.code == 20


def test_deeply_nested_parameters():
    pool = Pool()
    result = pool.validator.validate(pool.state, [[[[[]]]]] * 5)
    assert result.code == 20 and not result.accepted


def test_unknown_job_is_21():
    pool = Pool()
    assert pool.submit(job_id="ffff").reject is Reject.JOB_NOT_FOUND
    assert pool.submit(job_id="ffff").code == 21


def test_job_never_sent_to_this_miner_is_21():
    pool = Pool()
    other = Job("99", pool.coin, template(), payout_script=b"\x51")
    pool.validator.add_job(other, clean=False)
    assert pool.submit(job_id="99").reject is Reject.JOB_NOT_FOUND


def test_unauthorized_worker_is_24():
    pool = Pool()
    for worker in ("ltc1qexampleaddress.rig2", "someone", WORKER.upper(), WORKER + " "):
        result = pool.submit(worker=worker)
        assert result.reject is Reject.UNAUTHORIZED and result.code == 24


@pytest.mark.parametrize("offset, ok", [(-1000, True), (-1001, False), (0, True), (600, True), (601, False)])
def test_ntime_window(offset, ok):
    pool = Pool()
    result = pool.submit(ntime=f"{CURTIME + offset:08x}")
    assert result.accepted is ok
    if not ok:
        assert result.reject is Reject.NTIME_OUT_OF_RANGE and result.code == 20


def test_ntime_window_is_configurable():
    pool = Pool()
    pool.validator.ntime_future_s = 60
    assert pool.submit(ntime=f"{CURTIME + 61:08x}").reject is Reject.NTIME_OUT_OF_RANGE
    assert pool.submit(ntime=f"{CURTIME + 60:08x}").accepted


def test_version_rolling_inside_mask(use_backend):
    pool = Pool()
    pool.state.version_mask = 0x1FFFE000
    result = pool.submit(version="1fffe000")
    assert result.accepted
    assert result.version == 0x20000000 | 0x1FFFE000
    assert int.from_bytes(result.header[:4], "little") == result.version
    assert pool.submit(version="00002000", nonce="00000001").accepted


def test_version_bits_outside_mask_are_20():
    pool = Pool()
    pool.state.version_mask = 0x00FFE000
    result = pool.submit(version="1fffe000")
    assert result.reject is Reject.VERSION_BITS_OUTSIDE_MASK and result.code == 20
    assert pool.submit(version="00001000").reject is Reject.VERSION_BITS_OUTSIDE_MASK


def test_version_bits_without_negotiation():
    pool = Pool()
    assert pool.submit(version="00002000").reject is Reject.VERSION_ROLLING_NOT_NEGOTIATED
    assert pool.submit(version="00000000").accepted


@pytest.mark.parametrize("coin", COINS)
def test_duplicate_is_22_even_under_another_job_id(use_backend, coin):
    pool = Pool(coin)
    first_job = pool.job.job_id
    assert pool.submit().accepted
    again = pool.submit()
    assert again.reject is Reject.DUPLICATE and again.code == 22
    # The same job re-sent under another wire id (a difficulty change) is the same header.
    pool.state.job_sent(first_job, pool.difficulty, wire_id="alias")
    assert pool.submit(job_id="alias").reject is Reject.DUPLICATE
    # A second job of the same template is other work: its coinbase carries its job id.
    pool.new_job(clean=False)
    second = pool.submit()
    assert second.accepted and second.header != again.header
    assert pool.submit().reject is Reject.DUPLICATE
    assert pool.submit(job_id=first_job, nonce="00000001").accepted
    # A different extranonce2 is different work.
    assert pool.submit(extranonce2="00000001").accepted


def test_duplicates_forgotten_with_the_job():
    pool = Pool()
    assert pool.submit().accepted
    pool.new_job(clean=True, prev="11" * 32)
    assert pool.submit().accepted  # new tip, new header
    pool.new_job(clean=True, prev="22" * 32)
    # Only the jobs still valid (the current and the previous tip's) keep duplicate sets.
    validator = pool.validator
    assert set(validator._seen) == set(validator.jobs) | set(validator.stale_jobs) == {"2", "3"}


def test_a_long_block_keeps_duplicates_of_the_valid_jobs_only():
    """One chain tip, new jobs all along (template refreshes): the jobs still valid are the newest
    max_jobs_per_tip current ones and as many stale ones; the duplicate sets follow them."""
    pool = Pool()
    pool.validator = validator = ShareValidator(pool.coin, max_jobs_per_tip=4)
    pool.state.max_jobs = 64
    shares_per_job = 5
    first = None
    for n in range(30):
        job = pool.new_job(clean=n == 0)
        first = first or job.job_id
        for nonce in range(shares_per_job):
            assert pool.submit(nonce=f"{nonce:08x}").accepted
        assert len(validator.jobs) <= 4 and len(validator.stale_jobs) <= 4
        assert set(validator._seen) == set(validator.jobs) | set(validator.stale_jobs)
        assert sum(map(len, validator._seen.values())) <= 8 * shares_per_job
    # A job pushed out of the current ones is stale while it is still valid; then it is gone.
    stale_id = next(iter(validator.stale_jobs))
    assert pool.submit(job_id=stale_id, nonce="00000000").reject is Reject.DUPLICATE  # its set is kept
    assert pool.submit(job_id=stale_id, nonce="00000100").reject is Reject.STALE
    assert pool.submit(job_id=first, nonce="00000000").reject is Reject.JOB_NOT_FOUND


def test_duplicates_in_a_batch_meet_though_their_job_went_meanwhile(use_backend):
    pool = Pool("litecoin")
    batch = pool.validator.prepare_batch([(pool.state, [WORKER, pool.job.job_id, "00000000", f"{CURTIME:08x}",
                                                        "00000000"])] * 2)
    # Two new chain tips while the batch is hashed elsewhere: its job is dropped.
    pool.new_job(clean=True, prev="11" * 32)
    pool.new_job(clean=True, prev="22" * 32)
    headers = pool.validator.batch_inputs(batch)
    results = pool.validator.finish_batch(batch, pool.validator.hash_each(headers))
    assert results[0].accepted and results[1].reject is Reject.DUPLICATE


@pytest.mark.parametrize("coin", COINS)
def test_low_difficulty_is_23_with_exact_target(use_backend, coin):
    pool = Pool(coin, difficulty=1.0)
    # Find the exact difficulty of one share, then hold it to targets just around it.
    probe = Pool(coin, difficulty=1e-12).submit()
    hash_int = int.from_bytes(probe.pow_hash, "little")
    exact = Pool(coin)
    exact.state.job_sent(exact.job.job_id, d := Difficulty(exact.coin, 1.0))
    d.target = hash_int  # target equal to the hash: accepted (<=)
    assert exact.submit().accepted
    exact2 = Pool(coin)
    exact2.state.job_sent(exact2.job.job_id, d2 := Difficulty(exact2.coin, 1.0))
    d2.target = hash_int - 1  # one below: rejected, no tolerance
    result = exact2.submit()
    assert result.reject is Reject.LOW_DIFFICULTY and result.code == 23
    assert pool.submit().reject in (None, Reject.LOW_DIFFICULTY)


def test_difficulty_in_force_when_job_was_sent():
    pool = Pool(difficulty=1e-12)
    old_job = pool.job.job_id
    # Difficulty raised, then a new job: shares on the old job still count at the old difficulty.
    pool.difficulty = Difficulty(pool.coin, 1e12)
    pool.new_job(clean=False)
    old = pool.submit(job_id=old_job)
    assert old.accepted and old.credited_difficulty == pytest.approx(1e-12)
    new = pool.submit(nonce="00000005")
    assert new.reject is Reject.LOW_DIFFICULTY


@pytest.mark.parametrize("coin", COINS)
def test_block_found_and_serialized(use_backend, coin):
    pool = Pool(coin, bits=REGTEST_BITS)
    _, result = pool.find(lambda r: r.is_block)
    assert result.accepted
    assert int.from_bytes(result.pow_hash, "little") <= pool.job.network_target
    header, txs, rest = parse_block(result.block)
    assert header == result.header
    assert txs[0]["raw"] == pool.job.coinbase(EXTRANONCE1, result.extranonce2)
    assert len(txs) == 6 and rest == b""
    assert result.block_hash_hex == pool.coin.block_hash(header)[::-1].hex()


def test_block_check_on_low_difficulty_share(use_backend):
    # Share difficulty far above the network's (as on regtest): a share below share difficulty
    # that meets the network target is still a block candidate.
    pool = Pool("litecoin", bits=REGTEST_BITS, difficulty=1e30)
    _, result = pool.find(lambda r: r.is_block)
    assert result.reject is Reject.LOW_DIFFICULTY
    assert result.block is not None


def test_block_check_on_stale_share(use_backend):
    pool = Pool("bitcoin", bits=REGTEST_BITS)
    old_job = pool.job.job_id
    pool.new_job(clean=True, prev="33" * 32, bits=REGTEST_BITS)
    for n in range(64):
        result = pool.submit(job_id=old_job, nonce=f"{n:08x}")
        assert result.reject is Reject.STALE and result.code == 21
        if result.is_block:
            break
    else:
        raise AssertionError("no block among 64 stale shares")
    # A share on a job dropped two tips ago cannot be hashed any more.
    pool.new_job(clean=True, prev="44" * 32)
    assert pool.submit(job_id=old_job, nonce="00000100").reject is Reject.JOB_NOT_FOUND


def test_difficulty_change_through_a_job_alias():
    """A retarget re-sends the current job under a new wire id: shares on the old id count at the
    old difficulty, on the new id at the new one; the same work under both ids is one share."""
    pool = Pool(difficulty=1e-12)
    pool.state.job_sent(pool.job.job_id, Difficulty(pool.coin, 1e12), wire_id=pool.job.job_id + "r1")
    assert pool.submit(job_id=pool.job.job_id + "r1").reject is Reject.LOW_DIFFICULTY
    old = pool.submit(nonce="00000001")
    assert old.accepted and old.job is pool.job and old.credited_difficulty == pytest.approx(1e-12)
    assert pool.submit(job_id=pool.job.job_id + "r1", nonce="00000001").reject is Reject.DUPLICATE
    assert pool.submit(job_id=pool.job.job_id + "r2").reject is Reject.JOB_NOT_FOUND


def test_miner_job_memory_is_bounded():
    pool = Pool()
    for n in range(200):
        pool.state.job_sent(pool.job.job_id, pool.difficulty, wire_id=f"a{n}")
    assert len(pool.state.jobs) == pool.state.max_jobs
    assert pool.submit(job_id="a0").reject is Reject.JOB_NOT_FOUND
    assert pool.submit(job_id="a199").accepted


def test_batch_matches_single(use_backend):
    for coin in COINS:
        single, batch = Pool(coin, bits=REGTEST_BITS), Pool(coin, bits=REGTEST_BITS)
        submissions = [[WORKER, "1", f"{n % 3:08x}", f"{CURTIME:08x}", f"{n % 5:08x}"] for n in range(12)]
        submissions += [[WORKER, "77", "00000000", f"{CURTIME:08x}", "00000000"], "junk"]
        expected = [single.validator.validate(single.state, list(p) if isinstance(p, list) else p) for p in submissions]
        got = batch.validator.validate_batch([(batch.state, p) for p in submissions])
        assert [(r.reject, r.pow_hash, r.block) for r in got] == [(r.reject, r.pow_hash, r.block) for r in expected]


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), float("-inf"), "1", None, True])
def test_bad_difficulty_refused(value):
    with pytest.raises(ValueError):
        Difficulty(get_coin("litecoin"), value)


def test_difficulty_target_exact():
    coin = get_coin("litecoin")
    assert Difficulty(coin, 1).target == 0xFFFF << 224
    assert Difficulty(coin, 65536).target == (0xFFFF << 224) // 65536
    assert Difficulty(coin, 0.5).target == 0xFFFF << 225
    assert Difficulty(get_coin("bitcoin"), 3).target == (0xFFFF << 208) // 3
    assert Difficulty(coin, 1e-300).target == 2**256 - 1


# -- property tests ------------------------------------------------------------------------

HEX = "0123456789abcdef"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=20))
def test_hex_rule_for_nonce(text):
    pool = Pool()
    result = pool.submit(nonce=text)
    canonical = len(text) == 8 and all(c in HEX for c in text)
    if canonical:
        assert result.reject is not Reject.BAD_NONCE
    else:
        assert result.reject is Reject.BAD_NONCE


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=4, max_value=8), st.text(alphabet=HEX + "ABCDEFx ", max_size=20))
def test_hex_rule_for_extranonce2(size, text):
    pool = Pool(extranonce2_size=size)
    result = pool.submit(extranonce2=text)
    canonical = len(text) == 2 * size and all(c in HEX for c in text)
    assert (result.reject is Reject.BAD_EXTRANONCE2) is (not canonical)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), max_size=40))
def test_duplicates_property(submissions):
    """Each distinct (extranonce2, nonce, version) is credited exactly once, whatever the order."""
    pool = Pool()
    pool.state.version_mask = 0x1FFFE000
    seen = set()
    for en2, nonce, version in submissions:
        result = pool.submit(extranonce2=f"{en2:08x}", nonce=f"{nonce:08x}", version=f"{version << 13:08x}")
        key = (en2, nonce, version)
        if key in seen:
            assert result.reject is Reject.DUPLICATE
        else:
            assert result.accepted
            seen.add(key)


def test_new_tip_keeps_one_previous_tip_of_jobs():
    """A connection's job memory is the current tip's jobs plus the previous tip's, no more."""
    pool = Pool(bits=REGTEST_BITS)
    first = pool.job.job_id
    for _ in range(3):
        pool.new_job(clean=False, bits=REGTEST_BITS)
    pool.validator.add_job(second := Job("b0", pool.coin, template(prev="55" * 32, bits=REGTEST_BITS),
                                         payout_script=b"\x51"), clean=True)
    pool.state.new_tip("b0", pool.difficulty)
    assert list(pool.state.jobs) == ["b0"] and len(pool.state.previous_jobs) == 4
    stale = pool.submit(job_id=first, nonce="00000009")
    assert stale.reject is Reject.STALE  # still hashed, so a block on it would not be lost
    pool.validator.add_job(Job("c0", pool.coin, template(prev="66" * 32), payout_script=b"\x51"), clean=True)
    pool.state.new_tip("c0", pool.difficulty)
    assert pool.submit(job_id=first, nonce="0000000a").reject is Reject.JOB_NOT_FOUND
    assert pool.submit(job_id=second.job_id, nonce="0000000b").reject is Reject.STALE
