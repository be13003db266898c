"""Which templates may become jobs, given what the pool knows of the tip (pure state, no daemon)."""
from pool.chain.tip import ChainTip

A, B, C, OWN = "aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32


def test_a_template_asked_for_before_news_is_used_only_on_the_newest_tip():
    tip = ChainTip()
    asked = tip.news
    assert tip.usable(A, asked)  # nothing known yet: the daemon's word
    assert tip.learn(A) and not tip.learn(A)
    asked = tip.news
    assert tip.learn(B)  # polling or blocknotify: B while the template was asked for
    assert not tip.usable(A, asked)  # a long poll answering with the tip before
    assert tip.usable(B, asked)
    assert tip.usable(C, tip.news)  # asked after the news: the daemon knows best (a reorganisation)


def test_the_pools_own_block_holds_its_previous_block_until_the_daemons_answer():
    tip = ChainTip()
    tip.learn(A)
    tip.claim(OWN, A)
    assert tip.claimed(A) and not tip.usable(A, tip.news)
    assert tip.settle(OWN, "accepted")
    assert tip.best == OWN and not tip.claimed(A)
    assert not tip.usable(A, tip.news - 1) and tip.usable(OWN, tip.news)
    assert not tip.settle(OWN, "accepted")  # said twice: no news


def test_a_rejected_own_block_gives_its_previous_block_back():
    tip = ChainTip()
    tip.learn(A)
    tip.claim(OWN, A)
    asked = tip.news
    assert tip.settle(OWN, "rejected")
    assert tip.best == A and tip.usable(A, asked)


def test_an_inconclusive_own_block_leaves_the_tip_to_the_daemon():
    tip = ChainTip()
    tip.learn(A)
    tip.claim(OWN, A)
    asked = tip.news
    assert tip.settle(OWN, "unknown")
    assert tip.best is None
    assert not tip.usable(A, asked)  # asked while the block was in flight
    assert tip.usable(B, tip.news) and tip.usable(A, tip.news)  # asked afterwards: whatever the daemon says


def test_a_stale_solution_accepted_after_all_is_the_tip():
    tip = ChainTip()
    tip.learn(A)
    assert tip.settle(OWN, "accepted") and tip.best == OWN
    assert not tip.settle(C, "rejected")  # no claim, no news


def test_a_claim_never_settled_lapses():
    now = [100.0]
    tip = ChainTip(claim_timeout_s=60.0, clock=lambda: now[0])
    tip.learn(A)
    tip.claim(OWN, A)
    now[0] += 59.0
    assert tip.claimed(A)
    now[0] += 2.0
    assert not tip.claimed(A) and tip.usable(A, tip.news)
