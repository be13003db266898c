"""RegtestNetwork against the real litecoind, and the getblocktemplate fixtures it produces.

The fixtures in tests/data are rewritten by running this module with QUARRY_WRITE_FIXTURES=1;
otherwise the tests only check that the stored ones still match what the node produces.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pool.devtools.regtest import (
    MWEB_ACTIVATION_HEIGHT,
    LitecoindNotFound,
    RegtestError,
    RegtestNetwork,
    behind_wrapper,
    find_litecoind,
)
from pool.rpc.wire import DaemonError

DATA = Path(__file__).resolve().parents[2] / "data"
PREMWEB_FIXTURE = DATA / "ltc_regtest_gbt_premweb.json"
MWEB_FIXTURE = DATA / "ltc_regtest_gbt_mweb.json"
WRITE_FIXTURES = os.environ.get("QUARRY_WRITE_FIXTURES") == "1"

#: A HogEx serialises as version 2, then marker 0x00 and flag 0x08 (the MWEB flag).
HOGEX_PREFIX = "02000000" + "00" + "08"


@pytest.fixture(scope="module")
def network() -> Iterator[RegtestNetwork]:
    with RegtestNetwork() as net:
        yield net


def txids(template: dict[str, Any]) -> list[str]:
    return [tx["txid"] for tx in template["transactions"]]


def save_fixture(path: Path, snapshot: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, indent=2) + "\n")


# -- network lifecycle ------------------------------------------------------------------------------


def test_two_connected_nodes_give_a_template(network: RegtestNetwork) -> None:
    if network.height() == 0:
        # A fresh chain counts as initial block download until a block is mined.
        with pytest.raises(DaemonError) as caught:
            network.getblocktemplate()
        assert caught.value.code == -10
    network.generate(1)
    for node in (0, 1):
        assert network.rpc(node, "getconnectioncount") >= 1
        template = network.getblocktemplate(node)
        assert template["height"] == network.height() + 1
        assert "mweb" not in template


def test_lone_node_refuses_getblocktemplate() -> None:
    with RegtestNetwork(node_count=1) as lone:
        lone.generate(1)
        with pytest.raises(DaemonError) as caught:
            lone.getblocktemplate()
    assert caught.value.code == -9
    assert "not connected" in caught.value.message


def test_stop_terminates_nodes_and_removes_temp_dir() -> None:
    net = RegtestNetwork()
    with net:
        base_dir = net.base_dir
        assert base_dir is not None and base_dir.is_dir()
        processes = [node.process for node in net.nodes]
        urls = [net.rpc_url(i) for i in range(2)]
    assert all(p is not None and p.returncode == 0 for p in processes)  # clean exit on SIGTERM
    assert not base_dir.exists()
    assert all(url.startswith(f"http://{net.rpc_user}:{net.rpc_password}@127.0.0.1:") for url in urls)
    net.stop()  # idempotent


def test_given_base_dir_is_kept_and_reused(tmp_path: Path) -> None:
    with RegtestNetwork(tmp_path / "devnet") as first:
        first.generate(3)
        tip = first.rpc(0, "getbestblockhash")
    assert (tmp_path / "devnet" / "node0" / "regtest").is_dir()
    with RegtestNetwork(tmp_path / "devnet") as second:  # new ports and password, same chain and wallet
        assert second.rpc(0, "getbestblockhash") == tip
        assert "pool" in second.rpc(0, "listwallets")


def test_failed_start_cleans_up() -> None:
    net = RegtestNetwork(extra_args=["-no-such-option-at-all"], startup_timeout=20)
    with pytest.raises(RegtestError, match="exited with code") as caught:
        net.start()
    print(f"\nstartup failure reported as: {str(caught.value).splitlines()[0]}")
    assert net.base_dir is not None and not net.base_dir.exists()
    assert all(node.process is not None and node.process.poll() is not None for node in net.nodes)


def test_missing_binary_says_how_to_install() -> None:
    with pytest.raises(LitecoindNotFound, match="apt-get install -y litecoind"):
        RegtestNetwork(binary="/nonexistent/litecoind").start()


def test_two_nodes_started_at_once_on_a_machine_without_litecoin_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine has no ~/.litecoin. Debian's /usr/bin/litecoind wrapper creates it with a
    test-then-mkdir, and two nodes started at once used to race on it ("mkdir: cannot create
    directory ... File exists", then "node1 exited with code 1"): most starts failed."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for attempt in range(3):  # both nodes are launched back to back, then waited for
        with RegtestNetwork(tmp_path / f"net{attempt}") as net:
            assert [net.rpc(node, "getblockcount") for node in (0, 1)] == [0, 0]
    assert list(home.iterdir()) == []  # nothing was written into the home directory


def test_the_binary_behind_a_wrapper_is_run(tmp_path: Path) -> None:
    real = find_litecoind()
    with open(real, "rb") as binary:
        assert binary.read(4) == b"\x7fELF"  # Debian's shell wrapper is seen through
    wrapper = tmp_path / "litecoind"
    wrapper.write_text(f'#!/bin/sh\nset -e\n[ -e ~/.litecoin ] || mkdir ~/.litecoin\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    assert find_litecoind(wrapper) == real
    assert behind_wrapper(real) == real
    # A script that runs nothing we can find is run as it is.
    odd = tmp_path / "odd"
    odd.write_text('#!/bin/sh\nexec litecoind-somewhere "$@"\n')
    odd.chmod(0o755)
    assert behind_wrapper(str(odd)) == str(odd)


# -- templates before and after MWEB ------------------------------------------------------------------


def test_premweb_template_with_a_segwit_transaction(network: RegtestNetwork) -> None:
    if network.height() < 101:
        network.generate(101 - network.height())
    assert network.height() < MWEB_ACTIVATION_HEIGHT - 1
    with pytest.raises(RegtestError, match="MWEB is not active"):
        network.send_mweb_tx()
    segwit_txid = network.send_segwit_tx()
    template = network.wait_for_template(lambda t: segwit_txid in txids(t))
    assert "mweb" not in template
    assert "default_witness_commitment" in template
    assert type(template["coinbasevalue"]) is int
    if WRITE_FIXTURES:
        snapshot = network.snapshot_template()
        assert segwit_txid in txids(snapshot["template"])
        snapshot["_context"]["segwit_txid"] = segwit_txid
        save_fixture(PREMWEB_FIXTURE, snapshot)


def test_mweb_activation_gives_mweb_field_and_hogex_last(network: RegtestNetwork) -> None:
    started = time.monotonic()
    network.activate_mweb()
    print(f"\nactivate_mweb took {time.monotonic() - started:.2f}s, height {network.height()}")
    assert network.height() >= MWEB_ACTIVATION_HEIGHT
    template = network.getblocktemplate()
    assert isinstance(template["mweb"], str) and len(template["mweb"]) > 0
    assert template["transactions"], "an active MWEB template always carries the HogEx"
    assert template["transactions"][-1]["data"].startswith(HOGEX_PREFIX)
    assert not any(tx["data"].startswith(HOGEX_PREFIX) for tx in template["transactions"][:-1])
    network.activate_mweb()  # idempotent once active


def test_mweb_template_with_segwit_and_mweb_transactions(network: RegtestNetwork) -> None:
    network.activate_mweb()
    before = network.getblocktemplate()
    segwit_txid = network.send_segwit_tx()
    mweb_txid = network.send_mweb_tx()
    mweb_tx = network.rpc(0, "getrawtransaction", mweb_txid, 1)
    kernel_fee = sum((kernel["fee"] for kernel in mweb_tx["vkern"]), Decimal(0))
    assert all(vin.get("ismweb") for vin in mweb_tx["vin"]), "wallet should spend its pegged-in MWEB coin"

    template = network.wait_for_template(
        lambda t: segwit_txid in txids(t) and t["mweb"] != before["mweb"], timeout=20
    )
    # The segwit transaction is listed; the MWEB-only one lives inside the mweb bytes.
    assert segwit_txid in txids(template)
    assert mweb_txid not in txids(template)
    assert len(template["mweb"]) > len(before["mweb"])
    hogex = template["transactions"][-1]
    assert hogex["data"].startswith(HOGEX_PREFIX)
    assert hogex["fee"] == int(kernel_fee * 100_000_000)  # the HogEx carries the MWEB fees
    if WRITE_FIXTURES:
        snapshot = network.snapshot_template()
        assert snapshot["template"] == template or segwit_txid in txids(snapshot["template"])
        snapshot["_context"]["segwit_txid"] = segwit_txid
        snapshot["_context"]["mweb_txid"] = mweb_txid
        save_fixture(MWEB_FIXTURE, snapshot)


# -- the stored fixtures -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PREMWEB_FIXTURE, MWEB_FIXTURE], ids=["premweb", "mweb"])
def test_fixture_shape(path: Path) -> None:
    snapshot = json.loads(path.read_text())
    context, template = snapshot["_context"], snapshot["template"]
    assert template["previousblockhash"] == context["tip_hash"]
    assert template["height"] == context["tip_height"] + 1
    assert len(context["blocks_hex"]) == context["tip_height"]
    assert context["segwit_txid"] in txids(template)
    if path == MWEB_FIXTURE:
        assert template["height"] > MWEB_ACTIVATION_HEIGHT
        assert template["transactions"][-1]["data"].startswith(HOGEX_PREFIX)
        assert context["mweb_txid"] not in txids(template)
    else:
        assert "mweb" not in template


@pytest.mark.parametrize("path", [PREMWEB_FIXTURE, MWEB_FIXTURE], ids=["premweb", "mweb"])
def test_fixture_replays_on_a_fresh_network(path: Path) -> None:
    """A fresh network fed the fixture's blocks has the fixture's tip, and its listed transactions
    are valid there: code that builds blocks from the fixture can check them against a node."""
    snapshot = json.loads(path.read_text())
    context, template = snapshot["_context"], snapshot["template"]
    # The replayed tip is old; without -maxtipage the node would call itself in initial download.
    with RegtestNetwork(extra_args=["-maxtipage=2000000000"]) as fresh:
        started = time.monotonic()
        fresh.replay_blocks(context["blocks_hex"])
        print(f"\nreplayed {len(context['blocks_hex'])} blocks in {time.monotonic() - started:.2f}s")
        assert fresh.rpc(0, "getbestblockhash") == context["tip_hash"]
        fresh.wait_for_tip(context["tip_hash"])
        segwit_tx = next(tx for tx in template["transactions"] if tx["txid"] == context["segwit_txid"])
        assert fresh.rpc(0, "sendrawtransaction", segwit_tx["data"]) == segwit_tx["txid"]
        replayed = fresh.getblocktemplate()
        assert replayed["previousblockhash"] == context["tip_hash"]
        assert replayed["height"] == template["height"]
        assert replayed["bits"] == template["bits"]
