"""Work from the coin daemon: templates in, jobs out.

New blocks are noticed three ways, whichever is first: ``getblocktemplate`` long polling
(``longpollid``), the ``-blocknotify`` hook (``pool notify`` or an HTTP POST to the
loopback notify endpoint), and polling ``getbestblockhash`` as the fallback.  A new chain
tip gives a job with clean_jobs=true; between blocks the template is refreshed every
``template_refresh_s`` seconds with clean_jobs=false, so new transactions get mined.

The tip is known from every source: the three above, the templates, and the pool's own blocks
(found: its previous block is passed until the daemons answer; accepted: it is the tip).  When
the tip moves past the jobs' previous block, they are retired at once, before a template for the
new tip is asked for (``pool.chain.tip`` decides which templates may still become jobs).

When the daemon is down, syncing or without peers, no job is valid and none is handed out; the
miners are told that the pool waits for its daemon (the details go to the log and the metrics);
the source keeps trying and recovers by itself.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Sized
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from pool.chain.tip import ChainTip
from pool.families import FamilyError
from pool.families.base import Job, ShareResult, Work
from pool.rpc.client import DaemonClient
from pool.rpc.wire import DaemonAuthError, DaemonError, DaemonTimeout, DaemonUnreachable, DaemonWarmingUp

if TYPE_CHECKING:
    from pool.config import PoolConfig
    from pool.ledger.recorder import BlockRecord

logger = logging.getLogger(__name__)

BLOCK_HASH = re.compile("[0-9a-f]{64}")


class JobSink(Protocol):
    """Where the work source publishes: the Stratum server (`pool.stratum.server.StratumServer`)."""
    sessions: Sized
    work_available: bool

    def new_job(self, job: Job, clean: bool) -> int: ...
    def retire_jobs(self) -> int: ...
    def work_unavailable(self, reason: str) -> None: ...
    def broadcast_message(self, text: str) -> None: ...
    def broadcast_reconnect(self, host: str | None = None, port: int | None = None, wait_s: int = 0) -> None: ...


class WorkSource:
    def __init__(self, daemon: DaemonClient, server: JobSink, config: PoolConfig,
                 *, payout_script: bytes | None = None) -> None:
        self.daemon = daemon
        self.server = server
        self.config = config
        self.family = config.family
        self.work = config.work
        self.payout_script = payout_script or config.payout_script
        self.template: Work | None = None
        self.job_counter = 0
        self.healthy = False
        self.last_error = ""
        self.notices = {"longpoll": 0, "notify": 0, "poll": 0, "refresh": 0, "submit": 0}
        self.tip = ChainTip()
        self.unavailable: dict[str, int] = {}  # why no template could be had (kind -> times), for the metrics
        self._lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._have_work = asyncio.Event()
        self._notify_runner: web.AppRunner | None = None
        self.notify_port: int | None = None

    # -- jobs ------------------------------------------------------------------------------

    async def refresh(self, reason: str, template: Work | None = None, *,
                      asked_at: int | None = None) -> bool:
        """Fetch a template (unless given one, asked for when ``tip.news`` was ``asked_at``) and hand
        out a job; True when work is available afterwards."""
        async with self._lock:
            try:
                if template is None:
                    asked_at = self.tip.news
                    template = await self.family.fetch_work(self.daemon)
            except (DaemonError, FamilyError) as exc:
                self._unhealthy(exc)
                return False
            except Exception as exc:  # a daemon answer of an unexpected shape
                logger.exception("unexpected error fetching a template")
                self._unhealthy(exc)
                return False
            prevhash = template.prevhash_hex
            if not self.tip.usable(prevhash, self.tip.news if asked_at is None else asked_at):
                if not self.tip.claimed(prevhash):
                    self.wake(reason)  # the tip moved while it was asked for: ask again
                logger.debug("template on %s not used: the tip has moved past it", prevhash)
                return False
            self.tip.learn(prevhash)
            previous = self.template
            clean = (previous is None or previous.prevhash_hex != template.prevhash_hex or not self.healthy
                     or not self.server.work_available)  # retired jobs: the miners must drop them
            if not clean and previous is not None and reason != "refresh" and self.family.same_work(previous, template):
                return True  # nothing new
            self.template = template
            self.job_counter += 1
            job = self.family.new_job(
                template, f"{self.job_counter:x}", coin=self.config.coin, payout_script=self.payout_script,
                pool_tag=self.config.pool_tag.encode(), extranonce2_size=self.config.extranonce2_size,
            )
            sent = self.server.new_job(job, clean)
            if not self.healthy:
                logger.info("work available again at height %d", template.height)
            self.healthy = True
            self.last_error = ""
            self._have_work.set()
            if clean:
                self.notices[reason] = self.notices.get(reason, 0) + 1
                logger.info("new block template: height %d, %s, job %s to %d miners (%s)",
                            template.height, self.family.describe_work(template), job.job_id, sent, reason)
            return True

    def _unhealthy(self, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, (DaemonError, FamilyError)) else f"template error: {exc}"
        kind = _unavailable_kind(exc)
        self.unavailable[kind] = self.unavailable.get(kind, 0) + 1
        if self.healthy or reason != self.last_error:
            logger.warning("daemon cannot give work (%s): %s", kind, reason)
        self.healthy = False
        self.last_error = reason
        self._have_work.clear()
        self.server.work_unavailable(reason)

    def wake(self, reason: str = "notify") -> None:
        """Ask for a template now (block notify hook, a block we found)."""
        self._wake_reason = reason
        self._wakeup.set()

    # -- the chain tip ---------------------------------------------------------------------

    def tip_moved(self, block_hash: str, source: str) -> None:
        """A source says ``block_hash`` is the tip: jobs on another previous block are stale now."""
        if self.tip.learn(block_hash):
            self._retire_unless_on(block_hash, source)

    def _retire_unless_on(self, block_hash: str, source: str) -> None:
        template = self.template
        if template is not None and template.prevhash_hex != block_hash:
            retired = self.server.retire_jobs()
            if retired:
                logger.debug("tip %s (%s): %d jobs retired", block_hash, source, retired)

    def block_found(self, result: ShareResult) -> None:
        """A share solved a block. On a current job it is the pool's own next block: the jobs on its
        previous block are stale at once (a second solution there could only compete with it)."""
        template = self.template
        if result.reject is not None or template is None:  # a stale solution: the jobs were retired already
            return
        self.tip.claim(result.block_hash_hex, template.prevhash_hex)  # current jobs: the current template's
        self.server.retire_jobs()

    def block_submitted(self, record: BlockRecord, outcome: str) -> None:
        """The daemons answered for a block (``accepted``, ``rejected`` or ``unknown``)."""
        if not self.tip.settle(record.hash, outcome):
            return
        if outcome == "accepted":  # the tip (a stale solution can win a race too)
            self._retire_unless_on(record.hash, "submit")
        self.wake("submit")

    # -- loops -----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.start_notify_endpoint()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._wake_loop(), name="work-wake")
                group.create_task(self._poll_loop(), name="work-poll")
                if self.work.longpoll:
                    group.create_task(self._longpoll_loop(), name="work-longpoll")
        finally:
            await self.stop_notify_endpoint()

    async def _wake_loop(self) -> None:
        self._wake_reason = "startup"
        self._wakeup.set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.refresh(self._wake_reason)

    async def _poll_loop(self) -> None:
        """getbestblockhash every poll interval (the fallback), and the periodic refresh."""
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(self.work.poll_interval_s if self.healthy else max(self.work.poll_interval_s, 1.0))
            try:
                best = await self.family.best_block_hash(self.daemon)
            except DaemonError as exc:
                self._unhealthy(exc)
                continue
            self.tip_moved(best, "poll")
            template = self.template
            if (not self.healthy or template is None or best != template.prevhash_hex
                    or not self.server.work_available):
                await self.refresh("poll")
                last_refresh = time.monotonic()
            elif time.monotonic() - last_refresh >= self.work.template_refresh_s:
                await self.refresh("refresh")
                last_refresh = time.monotonic()

    async def _longpoll_loop(self) -> None:
        while True:
            template = self.template
            if template is None or not self.healthy:
                await self._have_work.wait()
                continue
            longpollid = self.family.longpoll_id(template)
            if longpollid is None:
                await asyncio.sleep(1.0)
                continue
            asked_at = self.tip.news
            try:
                new = await self.family.fetch_work(self.daemon, longpollid=longpollid)
            except (DaemonError, FamilyError) as exc:
                logger.debug("long poll ended: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if self.template is None or new.prevhash_hex != self.template.prevhash_hex:
                await self.refresh("longpoll", new, asked_at=asked_at)
            elif self.family.longpoll_id(new) == longpollid:
                await asyncio.sleep(1.0)  # the daemon returned without news; avoid spinning
            else:
                await self.refresh("refresh", new, asked_at=asked_at)

    # -- the -blocknotify hook over HTTP -------------------------------------------------

    async def start_notify_endpoint(self) -> None:
        if not self.work.notify_listen:
            return
        host, _, port = self.work.notify_listen.rpartition(":")
        host = host.strip("[]")
        app = web.Application(client_max_size=16384)
        app.router.add_post("/notify", self._notify_handler)
        app.router.add_post("/admin/message", self._message_handler)
        app.router.add_post("/admin/reconnect", self._reconnect_handler)
        self._notify_runner = web.AppRunner(app, access_log=None)
        await self._notify_runner.setup()
        site = web.TCPSite(self._notify_runner, host, int(port))
        await site.start()
        self.notify_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        logger.info("block notify endpoint on http://%s:%d/notify", host, self.notify_port)

    async def stop_notify_endpoint(self) -> None:
        if self._notify_runner is not None:
            await self._notify_runner.cleanup()
            self._notify_runner = None

    def _authorized(self, request: web.Request) -> bool:
        secret = request.headers.get("X-Notify-Secret", "")
        return hmac.compare_digest(secret.encode(), self.work.notify_secret.encode())

    async def _notify_handler(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "bad secret"}, status=403)
        try:
            body = await request.json()
        except ValueError:
            body = None
        block = body.get("block") if isinstance(body, dict) else None
        if isinstance(block, str) and BLOCK_HASH.fullmatch(block):  # -blocknotify's %s: the new tip
            self.tip_moved(block, "notify")
        self.wake("notify")
        return web.json_response({"ok": True})

    async def _json_body(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json")
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"error": "body must be an object"}', content_type="application/json")
        return body

    async def _message_handler(self, request: web.Request) -> web.Response:
        """Operator command: show a message to every miner (client.show_message)."""
        if not self._authorized(request):
            return web.json_response({"error": "bad secret"}, status=403)
        text = (await self._json_body(request)).get("text")
        if not isinstance(text, str) or not 0 < len(text) <= 1000:
            return web.json_response({"error": "text must be a string of 1-1000 characters"}, status=400)
        self.server.broadcast_message(text)
        return web.json_response({"ok": True, "miners": len(self.server.sessions)})

    async def _reconnect_handler(self, request: web.Request) -> web.Response:
        """Operator command: ask every miner to reconnect (client.reconnect), here or elsewhere."""
        if not self._authorized(request):
            return web.json_response({"error": "bad secret"}, status=403)
        body = await self._json_body(request)
        host, port, wait = body.get("host"), body.get("port"), body.get("wait", 0)
        if host is not None and (not isinstance(host, str) or not 0 < len(host) <= 255
                                 or isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            return web.json_response({"error": "host must be a name and port a number 1-65535"}, status=400)
        if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= 3600:
            return web.json_response({"error": "wait must be 0-3600 seconds"}, status=400)
        count = len(self.server.sessions)
        self.server.broadcast_reconnect(host, port, wait)
        return web.json_response({"ok": True, "miners": count})


def _unavailable_kind(exc: BaseException) -> str:
    """Why no template could be had, in one word (a metrics label)."""
    for kind, types in (("timeout", DaemonTimeout), ("unreachable", DaemonUnreachable),
                        ("warming_up", DaemonWarmingUp), ("auth", DaemonAuthError),
                        ("rpc_error", DaemonError), ("bad_template", FamilyError)):
        if isinstance(exc, types):
            return kind
    return "unexpected"
