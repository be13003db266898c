"""Variable difficulty (pure): converges to the target share rate, clamps, never jumps wildly."""
import pytest

from pool.stratum.vardiff import MAX_STEP, VarDiff, tidy


def make(**overrides):
    settings = dict(target_share_s=10.0, retarget_s=60.0, variance_pct=30.0, min_difficulty=1.0,
                    max_difficulty=1e6, enabled=True, now=0.0)
    settings.update(overrides)
    return VarDiff(**settings)


def simulate(vardiff, hashrate_diff_per_s, difficulty, seconds):
    """A miner doing `hashrate_diff_per_s` difficulty-1 units per second finds a share every difficulty/rate s."""
    now = 0.0
    changes = []
    while now < seconds:
        now += difficulty / hashrate_diff_per_s
        new = vardiff.on_share(difficulty, now)
        if new is not None:
            assert new <= difficulty * MAX_STEP + 1e-9 and new >= difficulty / MAX_STEP - 1e-9
            difficulty = new
            changes.append((now, new))
    return difficulty, changes


def test_converges_to_target_rate():
    final, changes = simulate(make(), hashrate_diff_per_s=500.0, difficulty=1.0, seconds=3600)
    assert changes and changes[0][0] < 10  # a fast miner is raised within seconds
    assert 500 * 10 * 0.7 <= final <= 500 * 10 * 1.3


def test_clamped_to_port_range():
    final, _ = simulate(make(max_difficulty=100), 1e6, 1.0, 600)
    assert final == 100
    vardiff = make(min_difficulty=8)
    assert vardiff.on_timer(16.0, now=1000) == 8


def test_slow_miner_lowered_by_timer():
    vardiff = make()
    assert vardiff.on_timer(1000.0, now=30) is None  # too early
    assert vardiff.on_timer(1000.0, now=61) == 1000.0 / MAX_STEP  # no share at all: the largest step down


def test_within_variance_no_change():
    vardiff = make()
    results = [vardiff.on_share(50.0, now=n * 12.0) for n in range(1, 12)]  # 12 s a share: within 30 % of 10
    assert results == [None] * 11
    assert vardiff.window_start == 120.0  # retargets happened (at 60 s and 120 s) and left the difficulty alone


def test_disabled():
    vardiff = make(enabled=False)
    assert all(vardiff.on_share(1.0, now=n * 0.001) is None for n in range(100))
    assert vardiff.on_timer(1.0, now=10_000) is None


@pytest.mark.parametrize("value, expected", [(1234567.0, 1235000.0), (0.000123456, 0.0001235), (3.0, 3.0),
                                             (65536.0, 65540.0)])
def test_tidy(value, expected):
    assert tidy(value) == pytest.approx(expected)
