"""Start and drive a small Litecoin Core regtest network, for tests and ``pool devnet``.

``litecoind`` refuses ``getblocktemplate`` unless it has a peer (error -9), so the network has
two nodes by default: node 0 listens, the others ``-connect`` to it. Everything binds to 127.0.0.1
on ports picked at run time; RPC credentials are generated. The nodes run in the foreground of
their own process group (no ``-daemon``), so `stop` can SIGTERM them, wait, and kill if needed.

    with RegtestNetwork() as net:
        net.generate(101)
        template = net.getblocktemplate()
        url = net.rpc_url(0)            # http://user:pass@127.0.0.1:port/ for DaemonClient

A fresh chain (height 0) counts as initial block download: getblocktemplate answers -10 until
one block has been mined. MWEB activates at height 432 once coins have been pegged in;
`activate_mweb` does that. The daemon caches templates for up to 5 s while only the mempool
changes, so use `wait_for_template` after sending transactions.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from pool.localnet import free_loopback_ports
from pool.rpc.client import GBT_RULES
from pool.rpc.wire import (
    DaemonAuthError,
    DaemonEndpoint,
    DaemonError,
    DaemonTimeout,
    DaemonUnreachable,
    DaemonWarmingUp,
    decode_json,
    encode_json,
    rpc_error_from_reply,
)

logger = logging.getLogger(__name__)

#: Height at which MWEB activates on Litecoin regtest (needs a peg-in in that block's mempool).
MWEB_ACTIVATION_HEIGHT = 432
COINBASE_MATURITY = 100
WALLET_NAME = "pool"

INSTALL_HINT = (
    "litecoind was not found on PATH. Install Litecoin Core, e.g. `apt-get install -y litecoind` on "
    "Debian/Ubuntu (run `apt-get update` first), or point the LITECOIND environment variable at the binary."
)


class RegtestError(RuntimeError):
    """The regtest network could not be started or did not behave as expected."""


class LitecoindNotFound(RegtestError):
    """No litecoind binary; the message says how to install one."""


def find_litecoind(binary: str | os.PathLike[str] | None = None) -> str:
    """The litecoind to run: `binary`, else $LITECOIND, else ``litecoind`` on PATH; when that is a
    shell wrapper, the program it runs (`behind_wrapper`)."""
    candidate = str(binary) if binary else os.environ.get("LITECOIND") or "litecoind"
    found = shutil.which(candidate)
    if found is None:
        raise LitecoindNotFound(f"{INSTALL_HINT} (looked for {candidate!r})")
    return behind_wrapper(found)


#: A wrapper script's last word: ``exec /usr/lib/litecoin/litecoind "$@"``.
_WRAPPER_EXEC = re.compile(rb"^[ \t]*exec[ \t]+(/\S+)", re.MULTILINE)


def behind_wrapper(path: str) -> str:
    """The program a shell wrapper at `path` ends by exec'ing; `path` itself when it is no script.

    Debian's ``/usr/bin/litecoind`` is such a wrapper: before ``exec /usr/lib/litecoin/litecoind
    "$@"`` it runs ``[ -e ~/.litecoin ] || mkdir ~/.litecoin`` and writes a ``litecoin.conf`` there.
    Two nodes started at once on a machine without ``~/.litecoin`` race between the test and the
    mkdir, and the loser exits with ``mkdir: cannot create directory '/root/.litecoin': File
    exists`` (130 of 200 paired starts here). The nodes have their own ``-datadir`` and ``-conf`` and
    need nothing from the home directory, so they run the real binary.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(8192)
    except OSError:
        return path
    if not head.startswith(b"#!"):
        return path
    for match in reversed(list(_WRAPPER_EXEC.finditer(head))):
        target = match.group(1).decode(errors="replace")
        if os.path.isfile(target) and os.access(target, os.X_OK):
            return target
    return path


@dataclass
class RegtestNode:
    """One litecoind process of the network."""

    index: int
    datadir: Path
    p2p_port: int
    rpc_port: int
    process: subprocess.Popen[bytes] | None = None
    output: IO[bytes] | None = field(default=None, repr=False)

    @property
    def debug_log(self) -> Path:
        return self.datadir / "regtest" / "debug.log"

    def log_tail(self, lines: int = 30) -> str:
        """The end of this node's debug.log and console output, for error messages."""
        parts = []
        for path in (self.datadir / "stdout.log", self.debug_log):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts)


class RegtestNetwork:
    """Two (or more) connected regtest litecoind nodes with a wallet on node 0.

    `base_dir` None means a fresh temporary directory, removed on `stop` unless `keep_dir`; a given
    `base_dir` is never removed, and its chain and wallet are reused on the next start.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        node_count: int = 2,
        txindex: bool = False,
        keep_dir: bool = False,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        if node_count < 1:
            raise ValueError("node_count must be at least 1")
        self.node_count = node_count
        self.txindex = txindex
        self.keep_dir = keep_dir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self._binary = binary
        self._given_base_dir = Path(base_dir) if base_dir is not None else None
        self.base_dir: Path | None = None
        self.rpc_user = "quarry"
        self.rpc_password = secrets.token_hex(16)
        self.nodes: list[RegtestNode] = []
        self.warmup_answers_seen = 0
        self._mining_address: str | None = None
        self._ids = itertools.count(1)
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, wait: bool = True) -> Self:
        """Start all nodes, then (unless ``wait=False``) `wait_ready`. A failure stops everything."""
        if self._started:
            raise RegtestError("network already started")
        binary = find_litecoind(self._binary)
        self._started = True
        self.nodes = []
        self._mining_address = None
        atexit.register(self.stop)
        try:
            if self._given_base_dir is not None:
                self._given_base_dir.mkdir(parents=True, exist_ok=True)
                self.base_dir = self._given_base_dir
            else:
                self.base_dir = Path(tempfile.mkdtemp(prefix="quarry-regtest-"))
            ports = free_loopback_ports(2 * self.node_count)
            for index in range(self.node_count):
                datadir = self.base_dir / f"node{index}"
                datadir.mkdir(exist_ok=True)
                node = RegtestNode(index, datadir, p2p_port=ports[2 * index], rpc_port=ports[2 * index + 1])
                self._write_config(node)
                self.nodes.append(node)
            for node in self.nodes:
                self._launch(binary, node)
            if wait:
                self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Wait for RPC on every node (riding out -28 warm-up) and for the peers, then create or
        load the wallet on node 0. Stops the network if that fails."""
        try:
            deadline = time.monotonic() + self.startup_timeout
            for node in self.nodes:
                self._wait_for_rpc(node, deadline)
            self._wait_for_peers(deadline)
            self._open_wallet()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "regtest network up in %s: %s",
            self.base_dir,
            ", ".join(f"node{n.index} rpc {n.rpc_port} p2p {n.p2p_port}" for n in self.nodes),
        )

    def stop(self) -> None:
        """SIGTERM every node, wait, kill after `stop_timeout`; remove the temp dir. Idempotent."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        for node in reversed(self.nodes):
            process = node.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for node in reversed(self.nodes):
            process = node.process
            if process is not None:
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "node%d did not stop within %gs; killing it", node.index, self.stop_timeout
                    )
                    process.kill()
                    process.wait()
            if node.output is not None:
                node.output.close()
                node.output = None
        if self.base_dir is not None and self._given_base_dir is None and not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        elif self.base_dir is not None:
            logger.info("regtest data kept in %s", self.base_dir)

    def _write_config(self, node: RegtestNode) -> None:
        lines = [
            "regtest=1",
            "[regtest]",
            "server=1",
            "listen=1",  # -connect would imply listen=0, which Core refuses together with -bind
            f"bind=127.0.0.1:{node.p2p_port}",
            f"port={node.p2p_port}",
            f"rpcbind=127.0.0.1:{node.rpc_port}",
            f"rpcport={node.rpc_port}",
            "rpcallowip=127.0.0.1",
            f"rpcuser={self.rpc_user}",
            f"rpcpassword={self.rpc_password}",
            "fallbackfee=0.0001",
            "listenonion=0",
            "dnsseed=0",
            "discover=0",
            "upnp=0",
            "printtoconsole=0",
        ]
        if self.txindex:
            lines.append("txindex=1")
        if node.index > 0:
            lines.append(f"connect=127.0.0.1:{self.nodes[0].p2p_port}")
        # Written fresh on every start: ports and password change. Keeps the password off `ps`.
        config = node.datadir / "litecoin.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)

    def _launch(self, binary: str, node: RegtestNode) -> None:
        node.output = open(node.datadir / "stdout.log", "ab")  # noqa: SIM115 - open until stop()
        command = [
            binary,
            f"-datadir={node.datadir}",
            f"-conf={node.datadir / 'litecoin.conf'}",
            *self.extra_args,
        ]
        logger.debug("starting node%d: %s", node.index, " ".join(command))
        node.process = subprocess.Popen(
            command,
            # Its own home as well: a wrapper `behind_wrapper` could not see through then writes into
            # the node's directory, never into the user's home, and two nodes share nothing.
            env={**os.environ, "HOME": str(node.datadir)},
            stdin=subprocess.DEVNULL,
            stdout=node.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for the pool must not kill the nodes behind its back
        )

    def _wait_for_rpc(self, node: RegtestNode, deadline: float) -> None:
        while True:
            self._check_alive(node)
            try:
                self.rpc(node.index, "getblockcount", timeout=5)
                return
            except DaemonWarmingUp:
                self.warmup_answers_seen += 1
            except DaemonUnreachable:
                pass
            if time.monotonic() > deadline:
                raise RegtestError(f"node{node.index} RPC did not come up\n{node.log_tail()}")
            time.sleep(0.05)

    def _wait_for_peers(self, deadline: float) -> None:
        if self.node_count == 1:
            return
        while True:
            counts = [self.rpc(node.index, "getconnectioncount") for node in self.nodes]
            if counts[0] >= self.node_count - 1 and all(count >= 1 for count in counts[1:]):
                return
            for node in self.nodes:
                self._check_alive(node)
            if time.monotonic() > deadline:
                raise RegtestError(
                    f"nodes did not connect (peer counts {counts})\n{self.nodes[0].log_tail()}"
                )
            time.sleep(0.05)

    def _open_wallet(self) -> None:
        loaded = self.rpc(0, "listwallets")
        if WALLET_NAME in loaded:
            return
        try:
            self.rpc(0, "createwallet", WALLET_NAME)
        except DaemonError as error:
            if "already exists" not in error.message:
                raise
            self.rpc(0, "loadwallet", WALLET_NAME)

    @staticmethod
    def _check_alive(node: RegtestNode) -> None:
        if node.process is not None and node.process.poll() is not None:
            raise RegtestError(
                f"node{node.index} exited with code {node.process.returncode}\n{node.log_tail()}"
            )

    # -- RPC -----------------------------------------------------------------------------------------

    def rpc_url(self, node: int = 0, *, wallet: str | None = None) -> str:
        """``http://user:pass@127.0.0.1:port/`` (or ``.../wallet/<name>``) for node `node`."""
        path = f"wallet/{wallet}" if wallet else ""
        return f"http://{self.rpc_user}:{self.rpc_password}@127.0.0.1:{self.nodes[node].rpc_port}/{path}"

    def rpc(
        self, node: int, method: str, *params: Any, wallet: str | None = None, timeout: float = 60.0
    ) -> Any:
        """Call `method` on node `node` synchronously; raises the same errors as `DaemonClient`."""
        endpoint = DaemonEndpoint.parse(self.rpc_url(node, wallet=wallet))
        logged_url = endpoint.logged_url
        body = encode_json(
            {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        request = urllib.request.Request(endpoint.url, data=body, headers=endpoint.headers)
        status: int | None = None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:  # Core sends RPC errors with HTTP 500 / 404
            status = error.code
            raw = error.read()
            if status in (401, 403):
                raise DaemonAuthError(
                    f"HTTP {status}", method=method, url=logged_url, http_status=status
                ) from None
        except TimeoutError as error:
            raise DaemonTimeout(f"no answer within {timeout:g}s", method=method, url=logged_url) from error
        except (urllib.error.URLError, OSError) as error:
            raise DaemonUnreachable(str(error), method=method, url=logged_url) from error
        try:
            reply = decode_json(raw)
        except ValueError:
            raise DaemonUnreachable(
                f"HTTP {status}: {raw[:200].decode(errors='replace')}", method=method, url=logged_url
            ) from None
        if reply.get("error"):
            raise rpc_error_from_reply(reply["error"], method=method, url=logged_url)
        return reply.get("result")

    # -- chain helpers -------------------------------------------------------------------------------

    @property
    def mining_address(self) -> str:
        """A bech32 address of the node-0 wallet that `generate` mines to by default."""
        if self._mining_address is None:
            self._mining_address = str(self.rpc(0, "getnewaddress", "mining", "bech32"))
        return self._mining_address

    def height(self, node: int = 0) -> int:
        return int(self.rpc(node, "getblockcount"))

    def generate(
        self, count: int, address: str | None = None, *, node: int = 0, sync: bool = True
    ) -> list[str]:
        """Mine `count` blocks on `node` (to the wallet by default); wait until all nodes have them."""
        hashes = [str(h) for h in self.rpc(node, "generatetoaddress", count, address or self.mining_address)]
        if sync and hashes:
            self.wait_for_tip(hashes[-1])
        return hashes

    def wait_for_height(self, height: int, *, node: int = 0, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.height(node) < height:
            if time.monotonic() > deadline:
                raise RegtestError(f"node{node} did not reach height {height} within {timeout:g}s")
            time.sleep(0.05)

    def wait_for_tip(self, block_hash: str, *, timeout: float = 30.0) -> None:
        """Wait until every node's best block is `block_hash`."""
        deadline = time.monotonic() + timeout
        while True:
            tips = [self.rpc(node.index, "getbestblockhash") for node in self.nodes]
            if all(tip == block_hash for tip in tips):
                return
            if time.monotonic() > deadline:
                raise RegtestError(f"nodes did not sync to {block_hash} within {timeout:g}s: tips {tips}")
            time.sleep(0.05)

    def getblocktemplate(self, node: int = 0) -> dict[str, Any]:
        return dict(self.rpc(node, "getblocktemplate", {"rules": list(GBT_RULES)}))

    def wait_for_template(
        self, predicate: Callable[[dict[str, Any]], bool], *, node: int = 0, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Poll getblocktemplate until `predicate(template)`; Core caches templates for ~5 s."""
        deadline = time.monotonic() + timeout
        while True:
            template = self.getblocktemplate(node)
            if predicate(template):
                return template
            if time.monotonic() > deadline:
                raise RegtestError(f"no matching template from node{node} within {timeout:g}s")
            time.sleep(0.25)

    def mweb_active(self, node: int = 0) -> bool:
        return self.height(node) >= MWEB_ACTIVATION_HEIGHT and "mweb" in self.getblocktemplate(node)

    def activate_mweb(self) -> None:
        """Mine to height 431, peg 1 LTC into MWEB, mine blocks 432 and 433; check the template.

        Block 432 cannot be mined without a peg-in (``bad-txns-vin-empty``); coinbase coins must be
        100 blocks old to be spent, which 431 blocks satisfy.
        """
        height = self.height()
        if height >= MWEB_ACTIVATION_HEIGHT:
            if not self.mweb_active():
                raise RegtestError(f"height {height} but the template has no mweb field")
            return
        if height < MWEB_ACTIVATION_HEIGHT - 1:
            self.generate(MWEB_ACTIVATION_HEIGHT - 1 - height)
        pegin_address = self.rpc(0, "getnewaddress", "", "mweb")
        self.rpc(0, "sendtoaddress", pegin_address, Decimal(1))
        self.generate(2)
        if not self.mweb_active():
            raise RegtestError("MWEB did not activate: the template has no mweb field")
        logger.info("MWEB active at height %d", self.height())

    def _require_balance(self, amount: Decimal) -> None:
        balance = Decimal(self.rpc(0, "getbalance"))
        if balance < amount:
            raise RegtestError(
                f"wallet balance {balance} < {amount}: mine at least {COINBASE_MATURITY + 1} blocks first"
            )

    def send_segwit_tx(self, amount: Decimal = Decimal("0.5")) -> str:
        """Put a wallet transaction paying a bech32 (P2WPKH) address into node 0's mempool; its txid."""
        self._require_balance(amount)
        address = self.rpc(0, "getnewaddress", "", "bech32")
        return str(self.rpc(0, "sendtoaddress", address, amount))

    def send_mweb_tx(self, amount: Decimal = Decimal("0.3")) -> str:
        """Put a transaction paying an MWEB address into node 0's mempool; its txid.

        With MWEB coins in the wallet (`activate_mweb` pegs in 1 LTC) this is an MWEB-to-MWEB
        transaction: it does not appear in the template's ``transactions`` but inside its ``mweb``
        bytes, and its fee shows up as the HogEx ``fee``. Without MWEB coins it is a peg-in.
        """
        if self.height() < MWEB_ACTIVATION_HEIGHT:
            raise RegtestError("MWEB is not active yet: call activate_mweb() first")
        self._require_balance(amount)
        address = self.rpc(0, "getnewaddress", "", "mweb")
        return str(self.rpc(0, "sendtoaddress", address, amount))

    def snapshot_template(self, node: int = 0) -> dict[str, Any]:
        """A template plus the chain state it was made on, for test fixtures.

        ``_context`` carries the tip hash and height and the raw blocks 1..tip, so that a fresh
        regtest node can replay the chain (`replay_blocks`) and check blocks built from the template.
        """
        tip_hash = self.rpc(node, "getbestblockhash")
        template = self.getblocktemplate(node)
        tip_height = self.height(node)
        if template["previousblockhash"] != tip_hash or self.rpc(node, "getbestblockhash") != tip_hash:
            raise RegtestError("the tip moved while taking the snapshot")
        blocks = [
            self.rpc(node, "getblock", self.rpc(node, "getblockhash", h), 0) for h in range(1, tip_height + 1)
        ]
        version = self.rpc(node, "getnetworkinfo")
        return {
            "_context": {
                "chain": "regtest",
                "tip_hash": tip_hash,
                "tip_height": tip_height,
                "mempool_txids": sorted(self.rpc(node, "getrawmempool")),
                "node_version": version["version"],
                "node_subversion": version["subversion"],
                "getblocktemplate_params": {"rules": list(GBT_RULES)},
                "captured_at": int(time.time()),
                "blocks_hex": blocks,
            },
            "template": template,
        }

    def replay_blocks(self, blocks_hex: Sequence[str], *, node: int = 0) -> None:
        """Submit raw blocks in order (heights 1..n of another regtest chain) to `node`."""
        for height, block_hex in enumerate(blocks_hex, 1):
            result = self.rpc(node, "submitblock", block_hex)
            if result not in (None, "duplicate"):
                raise RegtestError(f"replaying block {height} failed: {result}")

    def describe(self) -> dict[str, Any]:
        """Where everything is, for ``pool devnet`` to show."""
        return {
            "base_dir": str(self.base_dir),
            "rpc_user": self.rpc_user,
            "nodes": [
                {
                    "index": node.index,
                    "datadir": str(node.datadir),
                    "p2p": f"127.0.0.1:{node.p2p_port}",
                    "rpc_url": self.rpc_url(node.index),
                    "pid": node.process.pid if node.process else None,
                }
                for node in self.nodes
            ],
        }
