"""The Stratum server: listening ports, the sessions, job broadcast, limits and bans.

Share hot path: the session parses the line, the validator judges the share in one native
call (sha256d) or in a batch whose scrypt hashing runs on worker threads (the native
code releases the GIL), the session answers, and the share goes to the recorder's buffer.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pool.config import PoolConfig
from pool.families import FamilyError
from pool.families.base import Job, ShareChecker, ShareResult
from pool.ledger.recorder import Recorder, ShareRecord
from pool.metrics import SUBMIT_BUCKETS_S, LatencyHistogram
from pool.stratum.protocol import StratumProtocol
from pool.stratum.session import Session
from share_validator.errors import Reject

logger = logging.getLogger(__name__)

BlockSink = Callable[[ShareResult, Session], None]
AddressCheck = Callable[[str], Awaitable[bool]]


_new_record = tuple.__new__

PARALLEL_BROADCAST_MIN = 512  # connections; fewer are written from the loop thread alone
WRITE_BURST = 64  # connections with queued answers written at once, before the loop iteration ends
# What miners are told while there is no work: nothing of the daemon (its address, user or errors).
PAUSE_MESSAGE = "the pool is waiting for its coin daemon; mining resumes automatically"


def _write_to_all(fds: list[int], line: bytes) -> list[tuple[int, int]]:
    """Write the line to each socket; the (fd, bytes written) of those that did not take all of it.
    A broken connection is skipped: its transport finds out by itself."""
    short = []
    write = os.write
    size = len(line)
    for fd in fds:
        try:
            written = write(fd, line)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            continue
        if written < size:
            short.append((fd, written))
    return short


class StratumServer:
    def __init__(
        self,
        pool_config: PoolConfig,
        validator: ShareChecker,
        recorder: Recorder,
        *,
        on_block: BlockSink | None = None,
        check_address: AddressCheck | None = None,
        clock: Callable[[], float] = time.time,
        batch_size: int = 64,
        hash_threads: int | None = None,
        broadcast_threads: int | None = None,
    ) -> None:
        self.pool_config = pool_config
        self.config = pool_config.stratum
        self.coin = pool_config.coin
        self.family = pool_config.family
        self.validator = validator
        self.recorder = recorder
        self.on_block = on_block
        self._check_address = check_address
        self.clock = clock
        self.node_id = pool_config.node_id
        self.sessions: set[Session] = set()
        self.per_ip: collections.Counter[str] = collections.Counter()
        self.banned: dict[str, float] = {}
        # defaultdict, not Counter: an increment of a C dict subclass costs half as much (one per share)
        self.stats: collections.defaultdict[str, int] = collections.defaultdict(int)
        self.rejected: collections.Counter = collections.Counter()  # Reject -> shares, for the metrics
        self.submit_latency = LatencyHistogram(SUBMIT_BUCKETS_S)
        self._queued_since = 0.0  # perf_counter() when the scrypt queue last became non-empty
        self.current_job: Job | None = None
        self.work_available = False
        self.paused = False  # the miners were told that there is no work
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._to_flush: list[StratumProtocol] = []
        self._flush_scheduled = False
        self.write_burst = WRITE_BURST
        self._notify_cache: dict[tuple[str, bool], bytes] = {}
        self._address_cache: dict[str, bool] = {}
        self._address_checks: dict[str, asyncio.Future] = {}
        self._session_counter = 0
        self._extranonce_counter = int.from_bytes(os.urandom(3), "big")
        self._extranonces_in_use: set[bytes] = set()
        self._resumable: dict[bytes, float] = {}
        self._share_sequence = 0
        self._share_prefix = f"{self.node_id:02x}{int(time.time() * 1000):011x}"
        self._log_times: dict[tuple[str, str], float] = {}
        # shares judged in batches whose hashing runs on threads (scrypt); the others inline, one native call each
        self._batched = validator.batched
        self.batch_size = batch_size
        self._batch_queue: list[tuple[Session, Any, Any]] = []
        self._batch_wakeup: asyncio.Event | None = None
        self._hash_threads = hash_threads or max(1, min(4, os.cpu_count() or 1))
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.parallel_broadcast_min = PARALLEL_BROADCAST_MIN
        self._broadcast_helpers = broadcast_threads - 1 if broadcast_threads else min(4, os.cpu_count() or 1) - 1
        self._broadcast_executor = (concurrent.futures.ThreadPoolExecutor(self._broadcast_helpers,
                                                                          thread_name_prefix="broadcast")
                                    if self._broadcast_helpers > 0 else None)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for port in self.config.ports:
            server = await loop.create_server(
                lambda port=port: StratumProtocol(self, port), host=port.host, port=port.port,
                reuse_address=True, backlog=4096,
            )
            self._servers.append(server)
            logger.info("stratum listening on %s:%d (difficulty %g..%g%s)", port.host, port.port,
                        port.min_difficulty, port.max_difficulty, ", vardiff" if port.vardiff else "")
        self.track(asyncio.ensure_future(self._sweeper()))
        if self._batched:
            self._batch_wakeup = asyncio.Event()
            self._executor = concurrent.futures.ThreadPoolExecutor(self._hash_threads, thread_name_prefix="scrypt")
            self.track(asyncio.ensure_future(self._batcher()))

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self._servers if s.sockets]

    async def stop(self, message: str = "pool is restarting", reconnect: bool = True) -> None:
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            session.send_notification("client.show_message", [message])
            if reconnect:
                session.send_notification("client.reconnect", [])
            session.close()
        for server in self._servers:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._broadcast_executor:
            self._broadcast_executor.shutdown(wait=True)

    def write_soon(self, protocol: StratumProtocol) -> None:
        """Have the protocol's queued bytes written at the end of this loop iteration, or as soon as
        WRITE_BURST connections have some (the miners get to work on the first answers meanwhile)."""
        to_flush = self._to_flush
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_writes)
        to_flush.append(protocol)
        if len(to_flush) >= self.write_burst:
            self._write_queued()

    def _flush_writes(self) -> None:
        self._flush_scheduled = False
        self._write_queued()

    def _write_queued(self) -> None:
        protocols, self._to_flush = self._to_flush, []
        for protocol in protocols:
            protocol.flush()

    def track(self, task: asyncio.Future) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sessions ----------------------------------------------------------------------

    def open_session(self, protocol: StratumProtocol) -> Session | None:
        ip = protocol.peer_ip
        now = self.clock()
        until = self.banned.get(ip)
        if until is not None:
            if until > now:
                self.stats["refused_banned"] += 1
                return None
            del self.banned[ip]
        if len(self.sessions) >= self.config.max_connections:
            self.stats["refused_capacity"] += 1
            self.log_once("*", "connection refused: max_connections reached")
            return None
        if self.per_ip[ip] >= self.config.max_connections_per_ip:
            self.stats["refused_per_ip"] += 1
            self.log_once(ip, "connection refused: max_connections_per_ip reached")
            return None
        self._session_counter += 1
        session = Session(self, protocol, self._session_counter, self._new_extranonce1())
        self.sessions.add(session)
        self.per_ip[ip] += 1
        self.stats["connections"] += 1
        return session

    def close_session(self, session: Session) -> None:
        if session.closed:
            return
        session.closed = session.closing = True
        self.sessions.discard(session)
        self.per_ip[session.ip] -= 1
        if self.per_ip[session.ip] <= 0:
            del self.per_ip[session.ip]
        self._extranonces_in_use.discard(session.extranonce1)
        if session.subscribed and self.config.session_resume_s > 0:
            self._resumable[session.extranonce1] = self.clock() + self.config.session_resume_s

    def _new_extranonce1(self) -> bytes:
        """node id (1 byte) + a 24-bit counter, skipping values in use or held for resumption."""
        for _ in range(1 << 24):
            self._extranonce_counter = (self._extranonce_counter + 1) & 0xFFFFFF
            candidate = bytes([self.node_id]) + self._extranonce_counter.to_bytes(3, "big")
            if candidate not in self._extranonces_in_use and candidate not in self._resumable:
                self._extranonces_in_use.add(candidate)
                return candidate
        raise RuntimeError("no free extranonce1")

    def resume_extranonce1(self, session: Session, wanted: bytes) -> bytes | None:
        """A returning miner's extranonce1, when it is this node's, free and recently released."""
        if wanted[0] != self.node_id or wanted in self._extranonces_in_use or wanted not in self._resumable:
            return None
        del self._resumable[wanted]
        self._extranonces_in_use.discard(session.extranonce1)
        self._extranonces_in_use.add(wanted)
        self.stats["sessions_resumed"] += 1
        return wanted

    def ban(self, ip: str, reason: str) -> None:
        """Ban an address: one event (one count, one log line); its connections end, their queued
        requests unjudged. Called again while the ban holds (another connection of the address), it
        only closes."""
        now = self.clock()
        until = self.banned.get(ip)
        if until is None or until <= now:
            until = self.banned[ip] = now + self.config.ban_duration_s
            self.stats["bans"] += 1
            logger.warning("banning %s until %s (%g s): %s", ip,
                           time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until)), self.config.ban_duration_s,
                           reason)
        for session in [s for s in self.sessions if s.ip == ip]:
            session.close()

    def log_once(self, key: str, message: str, interval_s: float = 60.0) -> None:
        """Log a client problem once per key and message per interval (hostile input must not flood the log)."""
        now = time.monotonic()
        stamp = self._log_times.get((key, message))
        if stamp is not None and now - stamp < interval_s:
            return
        if len(self._log_times) > 10_000:
            self._log_times.clear()
        self._log_times[(key, message)] = now
        logger.info("%s: %s", key, message)

    async def _sweeper(self) -> None:
        """Timeouts and vardiff timers, once a second, in slices so no pass holds the loop long."""
        while True:
            await asyncio.sleep(1.0)
            sessions = list(self.sessions)
            for start in range(0, len(sessions), 1000):
                if start:
                    await asyncio.sleep(0)
                self._sweep(sessions[start:start + 1000])
            now = self.clock()
            for key in [k for k, until in self._resumable.items() if until < now]:
                del self._resumable[key]
            for ip in [ip for ip, until in self.banned.items() if until < now]:
                del self.banned[ip]

    def _sweep(self, sessions: list[Session]) -> None:
        now = self.clock()
        config = self.config
        for session in sessions:
            if session.closed:
                continue
            if not session.authorized and now - session.connected_at > config.handshake_timeout_s:
                self.stats["dropped_handshake_timeout"] += 1
                session.close()
            elif now - session.last_activity > config.idle_timeout_s:
                self.stats["dropped_idle"] += 1
                session.close()
            elif session.authorized:
                session.on_timer(now)

    # -- addresses ---------------------------------------------------------------------

    def address_known(self, address: str) -> bool | None:
        """True/False when known, None when the daemon must be asked."""
        cached = self._address_cache.get(address)
        if cached is not None:
            return cached
        try:
            self.family.payout_script(self.coin, address)
        except FamilyError:
            return False
        if self._check_address is None:
            self._cache_address(address, True)
            return True
        return None

    def address_refusal(self, address: str) -> str:
        """Why ``address`` is refused, for the miner: the family's reason (the network and the
        forms expected), or the coin daemon's refusal of an address that decodes."""
        try:
            self.family.payout_script(self.coin, address)
        except FamilyError as error:
            return str(error)
        return f"not a valid {self.coin.name} address: the coin daemon refused it"

    async def check_address(self, address: str) -> bool:
        pending = self._address_checks.get(address)
        if pending is None:
            pending = asyncio.ensure_future(self._check_address(address))  # type: ignore[misc]
            self._address_checks[address] = pending
            pending.add_done_callback(lambda _: self._address_checks.pop(address, None))
        try:
            valid = bool(await asyncio.shield(pending))
        except Exception as exc:  # daemon away: the local decoding already passed
            logger.warning("could not check address %s with the daemon (%s); accepting its local decoding", address, exc)
            return True
        self._cache_address(address, valid)
        return valid

    def _cache_address(self, address: str, valid: bool) -> None:
        if len(self._address_cache) > 100_000:
            self._address_cache.clear()
        self._address_cache[address] = valid

    # -- work --------------------------------------------------------------------------

    def notify_line(self, job: Job, clean: bool) -> bytes:
        key = (job.job_id, clean)
        line = self._notify_cache.get(key)
        if line is None:
            line = self.family.job_notification(job, clean)
            if len(self._notify_cache) > 64:
                self._notify_cache.clear()
            self._notify_cache[key] = line
        return line

    def new_job(self, job: Job, clean: bool) -> int:
        """Install a job and send it to every authorized miner; returns how many got it. After
        the jobs were retired (or before the first), it goes out clean: the miners must drop theirs."""
        clean = clean or not self.work_available
        self.validator.add_job(job, clean)
        self.current_job = job
        self.work_available = True
        self.paused = False
        line = self.notify_line(job, clean)
        job_id = job.job_id
        receivers = [session for session in self.sessions if session.workers]
        # All the writes first: the last miner hears of the block soonest.
        if len(receivers) >= self.parallel_broadcast_min and self._broadcast_helpers > 0:
            self._broadcast_parallel(receivers, line)
        else:
            for session in receivers:
                session.protocol.send(line)
        for session in receivers:
            if clean:
                session.state.new_tip(job_id, session.difficulty)
            else:
                session.state.job_sent(job_id, session.difficulty)
        self.stats["jobs"] += 1
        return len(receivers)

    def _broadcast_parallel(self, receivers: list[Session], line: bytes) -> None:
        """One line to many connections, the writes spread over this thread and the helper threads.

        Sending is nearly all kernel time, and ``os.write`` releases the GIL, so the writes run on
        several cores. Only connections whose transport has nothing queued are written directly;
        the loop is held until every helper is done (no other write can come in between), and what
        a full socket did not take goes through the transport afterwards, in order."""
        direct = []
        for session in receivers:
            protocol = session.protocol
            if protocol.can_send_direct():
                direct.append(protocol.fd)
            else:
                protocol.send(line)
        if not direct:
            return
        parts = self._broadcast_helpers + 1
        size = -(-len(direct) // parts)
        chunks = [direct[start:start + size] for start in range(0, len(direct), size)]
        futures = [self._broadcast_executor.submit(_write_to_all, chunk, line) for chunk in chunks[1:]]
        short = _write_to_all(chunks[0], line)
        for future in futures:
            short.extend(future.result())
        if short:
            by_fd = {session.protocol.fd: session.protocol for session in receivers}
            for fd, written in short:
                protocol = by_fd.get(fd)
                if protocol is not None:
                    protocol.send(line[written:])

    def retire_jobs(self) -> int:
        """The chain tip moved past the jobs handed out, or no template can be had: every job is
        stale from now on (shares on it are answered 21 and never credited; a block solution on it
        is still submitted) and none is handed out until the next one, which goes out clean."""
        retired = self.validator.retire_jobs()
        self.current_job = None
        self.work_available = False
        self.stats["jobs_retired"] += retired
        return retired

    def work_unavailable(self, reason: str) -> None:
        """The daemon cannot give work: no job is valid, none is handed out, and the miners are told
        once, in words that say nothing of the daemon (``reason`` is for the operator's log)."""
        self.retire_jobs()
        if self.paused:
            return
        self.paused = True
        self.stats["work_paused"] += 1
        logger.warning("no work to hand out: %s", reason)
        for session in self.sessions:
            if session.workers:
                session.send_notification("client.show_message", [PAUSE_MESSAGE])

    def broadcast_message(self, text: str) -> None:
        for session in self.sessions:
            session.send_notification("client.show_message", [text])

    def broadcast_reconnect(self, host: str | None = None, port: int | None = None, wait_s: int = 0) -> None:
        params: list = [] if host is None else [host, port, wait_s]
        for session in list(self.sessions):
            session.send_notification("client.reconnect", params)

    # -- shares ------------------------------------------------------------------------

    def submit(self, session: Session, msg_id: Any, params: list) -> None:
        if self._batched:
            session.pending += 1  # answered in _finish_batch; the protocol stops reading at its bound
            self._batch_queue.append((session, msg_id, params))
            if len(self._batch_queue) == 1:
                self._queued_since = time.perf_counter()
                self._batch_wakeup.set()
            return
        started = time.perf_counter()
        result = self.validator.validate(session.state, params)
        self._judged(session, msg_id, result)
        self.submit_latency.observe(time.perf_counter() - started)

    def _judged(self, session: Session, msg_id: Any, result: ShareResult) -> None:
        reject = result.reject
        if reject is None and result.job.retired:  # the tip moved while it was hashed, or a block came first
            reject = result.reject = Reject.STALE
        now = self.clock()  # one reading for the record and the session
        if reject is None:
            self.stats["shares_accepted"] += 1
        else:
            self.stats[f"shares_rejected_{reject.code}"] += 1
            self.rejected[reject] += 1
        # The share is recorded before its block, so that the block's time is never before the
        # time of the share that found it (payout windows end at the block's time). A stale share
        # is never stored, not even when it solves a block (that block is stored as a stale candidate).
        if reject is None or (result.block is not None and reject is not Reject.STALE):
            self._record(session, result, now)
        if result.block is not None:
            self.stats["block_candidates"] += 1
            if self.on_block is not None:
                self.on_block(result, session)
        session.share_judged(msg_id, result, now)

    def _record(self, session: Session, result: ShareResult, now: float) -> None:
        address, worker = session.workers.get(result.worker, ("", ""))
        job = result.job
        self._share_sequence += 1
        # tuple.__new__ as NamedTuple._make does, without its Python frame: this runs for every share.
        self.recorder.record_share(_new_record(ShareRecord, (
            f"{self._share_prefix}{self._share_sequence:010x}",  # share_id
            now,  # created
            address,
            worker,
            result.credited_difficulty if result.reject is None else 0.0,  # credited_difficulty
            result.actual_difficulty,
            job.network_difficulty,
            job.height,
            job.coinbase_value,
            self.node_id,
            session.ip,
            result.block is not None,  # is_block
        )))

    async def _batcher(self) -> None:
        """Judge queued scrypt shares in batches; the scrypt hashing runs on worker threads."""
        loop = asyncio.get_running_loop()
        in_flight = asyncio.Semaphore(2 * self._hash_threads)  # a batch queued behind each one hashing
        while True:
            await self._batch_wakeup.wait()
            self._batch_wakeup.clear()
            while self._batch_queue:
                await in_flight.acquire()
                batch = self._batch_queue[: self.batch_size]
                del self._batch_queue[: self.batch_size]
                live = [entry for entry in batch if not entry[0].closing]
                if len(live) < len(batch):  # banned or gone since: dropped, never hashed
                    self._drop(batch)
                    batch = live
                    if not batch:
                        in_flight.release()
                        continue
                queued_since, self._queued_since = self._queued_since, time.perf_counter()
                try:
                    prepared = self.validator.prepare_batch([(s.state, p) for s, _, p in batch])
                except Exception:
                    in_flight.release()
                    self._batch_failed(batch)
                    continue
                inputs = self.validator.batch_inputs(prepared)
                future = loop.run_in_executor(self._executor, self.validator.hash_batch, inputs)
                task = asyncio.ensure_future(self._finish_batch(batch, prepared, future, in_flight, queued_since))
                self.track(task)
                await asyncio.sleep(0)  # let more submissions arrive

    async def _finish_batch(self, batch, prepared, future, in_flight: asyncio.Semaphore,
                            queued_since: float = 0.0) -> None:
        try:
            pow_hashes = await future
        except Exception:
            logger.exception("hash batch failed")
            pow_hashes = self.validator.hash_each(self.validator.batch_inputs(prepared))
        finally:
            in_flight.release()
        try:
            results = self.validator.finish_batch(prepared, pow_hashes)
        except Exception:
            self._batch_failed(batch)
            return
        resume_at = self.config.max_requests_in_flight // 2  # as the protocols have it
        for (session, msg_id, _), result in zip(batch, results):
            pending = session.pending = session.pending - 1
            if session.closing and result.block is None:  # hashed before its connection ended
                self.stats["dropped_requests"] += 1
                continue
            try:
                self._judged(session, msg_id, result)
            except Exception:
                self.stats["internal_error"] += 1
                logger.exception("error answering a share")
            if pending == resume_at:  # passed on the way down from the bound: read again
                session.protocol.resume_reading()
        if queued_since:
            self.submit_latency.observe(time.perf_counter() - queued_since, len(batch))

    def _batch_failed(self, batch) -> None:
        """A bug must cost answers, never the server: every share of the batch gets error 20."""
        self.stats["internal_error"] += 1
        logger.exception("share batch failed")
        for session, msg_id, _ in batch:
            session.pending -= 1
            session.send_error(msg_id, 20, "internal error")
            if session.pending <= session.protocol.resume_at:
                session.protocol.resume_reading()

    def _drop(self, batch) -> None:
        """Queued shares of connections that ended: not judged, not answered."""
        for session, _, _ in batch:
            if session.closing:
                session.pending -= 1
                self.stats["dropped_requests"] += 1
