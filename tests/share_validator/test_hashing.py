"""Known answers and cross-checks for SHA-256, sha256d and scrypt, on every backend and implementation."""
import hashlib
import os
import random
import threading

import pytest
from chaindata import genesis_fixtures, genesis_header, load_block

from share_validator import hashing
from share_validator.difficulty import bits_to_target

# FIPS 180-2, appendix B (SHA-256 examples).
FIPS_VECTORS = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
]


def sha256d_reference(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def scrypt_reference(header: bytes) -> bytes:
    return hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32)


@pytest.mark.parametrize("data, digest", FIPS_VECTORS)
def test_sha256_fips_vectors(backend, data, digest):
    assert backend.sha256(data).hex() == digest


def test_sha256d_known_answer(backend):
    # sha256d("abc"): SHA-256 of the FIPS "abc" digest.
    assert backend.sha256d(b"abc").hex() == "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358"


def test_sha256_random_lengths_match_hashlib(backend):
    rng = random.Random(1)
    for length in list(range(300)) + [1000, 4095, 4096, 65537]:
        data = rng.randbytes(length)
        assert backend.sha256(data) == hashlib.sha256(data).digest()
        assert backend.sha256d(data) == sha256d_reference(data)


def test_genesis_block_hashes(backend):
    # Genesis headers of every configured network (tests/data/blocks/README.md gives the source).
    for name, entry in genesis_fixtures().items():
        assert backend.sha256d(genesis_header(entry))[::-1].hex() == entry["hash"], name


def test_litecoin_genesis_scrypt(backend):
    header = genesis_header(genesis_fixtures()["litecoin"])
    pow_hash = backend.scrypt(header)
    assert pow_hash == scrypt_reference(header)
    # Litecoin's genesis block (Litecoin Core chainparams) meets its own bits 1e0ffff0.
    assert int.from_bytes(pow_hash, "little") <= bits_to_target(0x1E0FFFF0)


def test_litecoin_mainnet_block_scrypt(backend):
    # Litecoin block 2,265,985 (electrumx test data): scrypt(header) <= target of its bits.
    block = load_block("litecoin_mainnet_2265985")
    header = bytes.fromhex(block["block"][:160])
    assert backend.sha256d(header)[::-1].hex() == block["hash"]
    pow_hash = backend.scrypt(header)
    assert pow_hash == scrypt_reference(header)
    assert int.from_bytes(pow_hash, "little") <= bits_to_target(int(block["bits"], 16))


def test_bitcoin_mainnet_block_pow(backend):
    block = load_block("bitcoin_mainnet_951658")
    header = bytes.fromhex(block["block"][:160])
    block_hash = backend.sha256d(header)
    assert block_hash[::-1].hex() == block["hash"]
    assert int.from_bytes(block_hash, "little") <= bits_to_target(int(block["bits"], 16))


def test_scrypt_random_headers_match_hashlib(backend):
    rng = random.Random(2)
    headers = [rng.randbytes(80) for _ in range(40)]
    for header in headers:
        assert backend.scrypt(header) == scrypt_reference(header)
    assert backend.scrypt_batch(headers) == [scrypt_reference(h) for h in headers]


def test_scrypt_rejects_wrong_length(backend):
    for bad in (b"", b"x" * 79, b"x" * 81):
        with pytest.raises(ValueError):
            backend.scrypt(bad)
    with pytest.raises(ValueError):
        backend.scrypt_batch([b"x" * 80, b"x" * 79])


# -- native implementations, each against hashlib ------------------------------------------

native = hashing.available_backends().get("native")
needs_native = pytest.mark.skipif(native is None, reason="native backend not built")


@pytest.fixture
def restore_native_selection():
    yield
    native.select_sha256("auto")
    native.select_scrypt("auto")


@needs_native
@pytest.mark.parametrize("impl", ["portable", "shani"])
def test_native_sha256_implementations(impl, restore_native_selection):
    if not native.select_sha256(impl):
        pytest.skip(f"CPU lacks {impl}")
    assert native.describe()["sha256"] == impl
    rng = random.Random(3)
    for length in range(260):
        data = rng.randbytes(length)
        assert native.sha256(data) == hashlib.sha256(data).digest()
        assert native.sha256d(data) == sha256d_reference(data)
    for data, digest in FIPS_VECTORS:
        assert native.sha256(data).hex() == digest


@needs_native
@pytest.mark.parametrize("impl", ["portable", "sse2", "avx2"])
def test_native_scrypt_implementations(impl, restore_native_selection):
    if not native.select_scrypt(impl):
        pytest.skip(f"CPU lacks {impl}")
    assert native.describe()["scrypt"] == impl
    rng = random.Random(4)
    headers = [rng.randbytes(80) for _ in range(37)]
    expected = [scrypt_reference(h) for h in headers]
    assert [native.scrypt(h) for h in headers] == expected
    # Batch sizes around every lane count, including none.
    for count in list(range(18)) + [33, 37]:
        assert native.scrypt_batch(headers[:count]) == expected[:count], count


@needs_native
def test_native_scrypt_from_threads():
    rng = random.Random(5)
    headers = [rng.randbytes(80) for _ in range(64)]
    expected = [scrypt_reference(h) for h in headers]
    errors = []

    def work(offset):
        try:
            for i in range(4):
                got = native.scrypt_batch(headers[offset:] + headers[:offset])
                assert got == expected[offset:] + expected[:offset]
                assert native.scrypt(headers[(offset + i) % 64]) == expected[(offset + i) % 64]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_backend_env_selects_twin(monkeypatch):
    assert hashing.load_backend("python").NAME == "python"
    with pytest.raises(ValueError):
        hashing.load_backend("fortran")


def test_native_is_default_here():
    if os.environ.get(hashing.BACKEND_ENV, "native") == "native":
        assert hashing.describe()["backend"] == "native"


def test_share_hash_backends_agree():
    """The one-call share hash and its per-job form give the same bytes on every backend."""
    rng = random.Random(6)
    backends = hashing.available_backends()
    for trial in range(30):
        coinb1, coinb2 = rng.randbytes(rng.randrange(0, 200)), rng.randbytes(rng.randrange(0, 300))
        branch = rng.randbytes(32 * rng.randrange(0, 14))
        prevhash, en1, en2 = rng.randbytes(32), rng.randbytes(4), rng.randbytes(rng.randrange(4, 9))
        version, ntime, nbits, nonce = (rng.getrandbits(32) for _ in range(4))
        algo = (0, 1, 2)[trial % 3]
        outs = set()
        for module in backends.values():
            whole = module.share_hash(algo, coinb1, en1, en2, coinb2, branch, prevhash, version, ntime, nbits, nonce)
            hasher = module.JobHasher(coinb1, coinb2, branch, prevhash, nbits)
            assert hasher.share_hash(algo, en1, en2, version, ntime, nonce) == whole
            outs.add(whole)
        assert len(outs) == 1
        out = outs.pop()
        assert out[112:] == sha256d_reference(out[:80])
        assert out[80:112] == {0: out[112:], 1: scrypt_reference(out[:80]), 2: bytes(32)}[algo]


def test_share_hash_bad_arguments(backend):
    with pytest.raises(ValueError):
        backend.share_hash(7, b"", b"", b"", b"", b"", bytes(32), 0, 0, 0, 0)
    with pytest.raises(ValueError):
        backend.share_hash(0, b"", b"", b"", b"", b"x" * 31, bytes(32), 0, 0, 0, 0)
    with pytest.raises(ValueError):
        backend.JobHasher(b"", b"", b"", bytes(31), 0)
    with pytest.raises(ValueError):
        backend.JobHasher(b"", b"", b"", bytes(32), 0).share_hash(9, b"", b"", 0, 0, 0)


@needs_native
def test_native_sha256d_and_share_hash_from_threads():
    """Output buffers are per thread: concurrent calls (the GIL is released) never mix results."""
    rng = random.Random(7)
    inputs = [rng.randbytes(rng.randrange(0, 200)) for _ in range(500)]
    expected = [sha256d_reference(data) for data in inputs]
    hasher = native.JobHasher(b"a" * 50, b"b" * 90, rng.randbytes(32 * 10), bytes(32), 0x1D00FFFF)
    share_expected = [hasher.share_hash(0, b"1234", n.to_bytes(4, "little"), 1, 2, n) for n in range(500)]
    errors = []

    def work():
        try:
            for _ in range(20):
                assert [native.sha256d(data) for data in inputs] == expected
                assert [hasher.share_hash(0, b"1234", n.to_bytes(4, "little"), 1, 2, n) for n in range(500)] == share_expected
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
