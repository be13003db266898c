"""The demo miner's work and run loops: `StratumMiner` hashes the jobs its `StratumClient` base
receives, submits the shares it finds and reconnects when the connection ends; `run_miner` runs one.

The hashing runs in a worker thread (``asyncio.to_thread``) in chunks of about ``chunk_seconds``, so
the event loop keeps reading; a ``clean_jobs`` notify aborts the running chunk and shares found for the
abandoned job are not submitted (cpuminer discards stale work the same way). A newer job without
``clean_jobs`` is picked up at the next chunk boundary.

An answer to a ``mining.submit`` is accepted when ``result`` is true and ``error`` is null; otherwise
the share is counted as rejected under the error code (``[code, message, ...]`` or
``{"code": ..., "message": ...}``).

A connection that fails is retried after a backoff that doubles from ``backoff_initial`` up to
``backoff_max``, until ``max_reconnects`` attempts in a row have failed (a connection that got as far
as authorization starts the count again). A ``client.reconnect`` is followed at once, at most
``MAX_CONSECUTIVE_REDIRECTS`` times without a job in between.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pool.devtools.miner.client import ActiveJob, AuthorizationFailed, StratumClient
from pool.devtools.miner.hashing import MAX_NONCE, Share, check_algorithm, hash_difficulty, scan_nonces
from pool.devtools.miner.stats import MinerStats
from pool.devtools.miner.wire import MAX_LINE_BYTES, StratumProtocolError, response_error
from pool.devtools.miner.work import WorkUnit, make_work_unit, rolled_version, spread_bits

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_REDIRECTS = 10
STALE_CODE = 21  # Stratum: job not found (stale)


class StratumMiner(StratumClient):
    """A Stratum v1 CPU miner. ``await StratumMiner(...).run()`` returns the final ``MinerStats``."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str = "x",
        *,
        algorithm: str = "scrypt",
        max_shares: int | None = None,
        max_seconds: float | None = None,
        version_rolling: bool = True,
        suggest_difficulty: float | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        max_reconnects: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
        response_timeout: float = 30.0,
        chunk_seconds: float = 0.25,
        max_line_bytes: int = MAX_LINE_BYTES,
        duty_cycle: float = 1.0,
    ) -> None:
        if not 0.0001 <= duty_cycle <= 1.0:
            raise ValueError("duty_cycle must be in [0.0001, 1]")
        self.duty_cycle = duty_cycle  # the fraction of the time spent hashing: a slower miner
        super().__init__(
            host,
            port,
            username,
            password,
            version_rolling=version_rolling,
            suggest_difficulty=suggest_difficulty,
            on_event=on_event,
            response_timeout=response_timeout,
            max_line_bytes=max_line_bytes,
        )
        self.algorithm = check_algorithm(algorithm)
        if max_shares is not None and max_shares < 1:
            raise ValueError("max_shares must be >= 1 or None")
        self.max_shares = max_shares
        self.max_seconds = max_seconds
        self.max_reconnects = max_reconnects
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.chunk_seconds = chunk_seconds

    # ---------------------------------------------------------------- session state

    def _reset_session(self, writer: asyncio.StreamWriter | None) -> None:
        super()._reset_session(writer)
        self._version_counter = 1
        self._scan_abort: threading.Event | None = None
        self._pending_submits = 0
        self._submits_settled = asyncio.Event()
        self._submits_settled.set()

    def _fail_pending(self, exc: BaseException) -> None:
        super()._fail_pending(exc)
        if self._pending_submits:
            self._pending_submits = 0
            self._submits_settled.set()

    # ---------------------------------------------------------------- mining

    def _abort_scan(self) -> None:
        if self._scan_abort is not None:
            self._scan_abort.set()

    def _next_work_unit(self, active: ActiveJob) -> WorkUnit:
        space = 256**active.extranonce2_size
        counter = active.next_extranonce2
        if counter >= space:
            log.warning(
                "%s extranonce2 space of job %s exhausted, wrapping", self._prefix(), active.job.job_id
            )
            counter %= space
        active.next_extranonce2 = counter + 1
        # cpuminer stratum_gen_work increments the extranonce2 bytes as a little-endian counter
        extranonce2 = counter.to_bytes(active.extranonce2_size, "little")
        version_bits = None
        if self._version_mask:
            version_bits = spread_bits(self._version_counter, self._version_mask)
            self._version_counter += 1
        return make_work_unit(
            active.job,
            active.extranonce1,
            extranonce2,
            difficulty=active.difficulty,
            algorithm=self.algorithm,
            version_bits=version_bits,
            version_mask=self._version_mask if version_bits is not None else 0,
            generation=active.generation,
        )

    def _work_still_valid(self, work: WorkUnit) -> bool:
        if work.generation < self._stale_generation:
            return False
        if work.version_bits is not None:
            mask = self._version_mask
            if (
                work.version_bits & ~mask
                or rolled_version(work.job.version, work.version_bits, mask) != work.version
            ):
                return False
        return True

    async def _mine(self) -> None:
        while True:
            active = await self._wait_for_job()
            work = self._next_work_unit(active)
            log.debug(
                "%s work: job %s extranonce2 %s version %08x",
                self._prefix(),
                work.job.job_id,
                work.extranonce2.hex(),
                work.version,
            )
            nonce = 0
            while nonce <= MAX_NONCE:
                if self._current is not active or not self._work_still_valid(work):
                    break  # a newer job or a new version mask: switch at this chunk boundary
                abort = threading.Event()
                self._scan_abort = abort
                try:
                    result = await asyncio.to_thread(
                        scan_nonces,
                        work.header_prefix,
                        nonce,
                        MAX_NONCE,
                        work.share_target,
                        self.algorithm,
                        abort=abort,
                        time_budget=self.chunk_seconds,
                    )
                finally:
                    abort.set()  # if we were cancelled, stop the worker thread at its next hash
                    self._scan_abort = None
                self.stats.hashes += result.hashes
                nonce = result.next_nonce
                for share in result.shares:
                    if not self._work_still_valid(work):
                        self.stats.stale_discarded += 1
                        self._emit("stale", job_id=work.job.job_id, nonce=f"{share.nonce:08x}")
                        continue
                    await self._submit(work, share)
                    if self.max_shares is not None and self.stats.submitted >= self.max_shares:
                        return
                if self.duty_cycle < 1.0:
                    await asyncio.sleep(self.chunk_seconds * (1.0 / self.duty_cycle - 1.0))

    async def _submit(self, work: WorkUnit, share: Share) -> None:
        params = work.submit_params(self.username, share.nonce)
        self._pending_submits += 1
        self._submits_settled.clear()
        msg_id, _ = self._request(
            "mining.submit", params, on_response=functools.partial(self._on_submit_result, work, share)
        )
        self.stats.submitted += 1
        share_difficulty = hash_difficulty(share.hash_int, self.algorithm)
        log.info(
            "%s share job %s nonce %08x (difficulty %.6g of %g)",
            self._prefix(),
            work.job.job_id,
            share.nonce,
            share_difficulty,
            work.difficulty,
        )
        self._emit(
            "submitted",
            id=msg_id,
            params=params,
            hash=share.hash_int.to_bytes(32, "little")[::-1].hex(),
            share_difficulty=share_difficulty,
        )
        if share.hash_int <= work.network_target:
            self.stats.blocks += 1
            log.info("%s share meets the network target: block candidate", self._prefix())
            self._emit("block", job_id=work.job.job_id, nonce=f"{share.nonce:08x}")
        await self._drain()

    def _on_submit_result(self, work: WorkUnit, share: Share, message: dict[str, Any]) -> None:
        self._pending_submits = max(0, self._pending_submits - 1)
        if not self._pending_submits:
            self._submits_settled.set()
        error = response_error(message)
        fields = {
            "job_id": work.job.job_id,
            "nonce": f"{share.nonce:08x}",
            "extranonce2": work.extranonce2.hex(),
        }
        if error is None and message.get("result") is True:
            self.stats.accepted += 1
            log.info(
                "%s accepted: %d/%d",
                self._prefix(),
                self.stats.accepted,
                self.stats.accepted + self.stats.rejected,
            )
            self._emit("accepted", **fields)
            return
        code, text = error if error is not None else (None, f"result {message.get('result')!r}")
        self.stats.rejected += 1
        self.stats.rejected_by_code[code] = self.stats.rejected_by_code.get(code, 0) + 1
        # A stale share (21: its job is gone, the chain moved on) is what every miner sends now and
        # then after a new block; on regtest, where every share is a block, after nearly every one.
        log.log(logging.INFO if code == STALE_CODE else logging.WARNING,
                "%s rejected (%s): %s", self._prefix(), code, text[:200])
        self._emit("rejected", code=code, reason=text[:200], **fields)

    # ---------------------------------------------------------------- connection lifecycle

    async def _session(self, host: str, port: int) -> str:
        """One connection. Returns "stopped", "reconnect" or "closed"; raises on failures."""
        self._connection_number += 1
        self._session_host, self._session_port = host, port
        self._authorized = False
        self._reconnect_to = None
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
        self._reset_session(writer)
        self.stats.connections += 1
        log.info("%s connected to %s:%d", self._prefix(), host, port)
        self._emit("connected", host=host, port=port)
        read_task = asyncio.create_task(self._read_loop(reader))
        mine_task: asyncio.Task[None] | None = None
        try:
            try:
                await self._handshake()
            except ConnectionError:
                if self._reconnect_to is not None:
                    return "reconnect"
                if self._configure_pending:
                    # BIP310: some servers drop a client that sends an unknown method. Next time,
                    # connect without mining.configure.
                    log.info("%s connection lost after mining.configure; retrying without it", self._prefix())
                    self._configure_unsupported = True
                raise
            mine_task = asyncio.create_task(self._mine())
            done, _ = await asyncio.wait({read_task, mine_task}, return_when=asyncio.FIRST_COMPLETED)
            if mine_task in done:
                mine_task.result()
                await self._wait_for_submit_answers(read_task)
                return "stopped"
            read_task.result()
            return "reconnect" if self._reconnect_to is not None else "closed"
        finally:
            self._abort_scan()
            tasks = [task for task in (mine_task, read_task) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._fail_pending(ConnectionError("connection closed"))
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (OSError, TimeoutError):
                pass

    async def _wait_for_submit_answers(self, read_task: asyncio.Task[None]) -> None:
        if self._submits_settled.is_set():
            return
        settled = asyncio.ensure_future(self._submits_settled.wait())
        try:
            await asyncio.wait(
                {settled, read_task}, timeout=self.response_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            settled.cancel()
        if self._pending_submits:
            log.warning("%s %d submit(s) left unanswered", self._prefix(), self._pending_submits)

    async def _run_sessions(self) -> None:
        host, port = self.host, self.port
        failures = 0
        redirects = 0  # client.reconnect requests in a row without a job in between
        while True:
            outcome = "failed"
            jobs_before = self.stats.jobs
            try:
                outcome = await self._session(host, port)
            except (OSError, EOFError, TimeoutError, StratumProtocolError, AuthorizationFailed) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s session ended: %s", self._prefix(), self.stats.last_error)
            except Exception as exc:  # a bug must not turn a bad server into a crashed miner
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s session failed unexpectedly", self._prefix())
            self._emit(
                "disconnected", outcome=outcome, error=self.stats.last_error if outcome == "failed" else None
            )
            if outcome == "stopped":
                self.stats.stop_reason = "max_shares"
                return
            if outcome == "reconnect" and self._reconnect_to is not None:
                host, port, wait = self._reconnect_to
                failures = 0
                redirects = 1 if self.stats.jobs > jobs_before else redirects + 1
                if redirects > MAX_CONSECUTIVE_REDIRECTS:
                    self.stats.gave_up = True
                    self.stats.stop_reason = "gave_up"
                    self.stats.last_error = f"{redirects} client.reconnect requests without a job"
                    log.error("%s giving up: %s", self._prefix(), self.stats.last_error)
                    return
                self._emit("reconnect", host=host, port=port, wait=wait)
                await asyncio.sleep(wait)
                continue
            if self._authorized:
                failures = 0  # the connection worked for a while: start the backoff again
            failures += 1
            if failures > self.max_reconnects:
                self.stats.gave_up = True
                self.stats.stop_reason = "gave_up"
                log.error("%s giving up after %d failed connection(s)", self._prefix(), failures)
                return
            delay = min(self.backoff_initial * 2 ** (failures - 1), self.backoff_max)
            log.info(
                "%s reconnecting in %.1f s (attempt %d of %d)",
                self._prefix(),
                delay,
                failures,
                self.max_reconnects,
            )
            self._emit("reconnecting", delay=delay, attempt=failures)
            await asyncio.sleep(delay)

    async def run(self) -> MinerStats:
        started = time.monotonic()
        try:
            if self.max_seconds is None:
                await self._run_sessions()
            else:
                deadline = asyncio.timeout(self.max_seconds)
                try:
                    async with deadline:
                        await self._run_sessions()
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    self.stats.stop_reason = "duration"
        except asyncio.CancelledError:
            self.stats.stop_reason = "cancelled"
            raise
        finally:
            self.stats.elapsed = time.monotonic() - started
            self._emit("stopped", reason=self.stats.stop_reason, stats=self.stats.as_dict())
        return self.stats


async def run_miner(
    host: str,
    port: int,
    username: str,
    password: str = "x",
    *,
    algorithm: str = "scrypt",
    max_shares: int | None = None,
    max_seconds: float | None = None,
    version_rolling: bool = True,
    suggest_difficulty: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> MinerStats:
    """Mine on ``host:port`` until ``max_shares`` shares are submitted (and answered), ``max_seconds``
    pass, reconnecting fails ``max_reconnects`` times in a row, or the task is cancelled.

    ``options`` are the tuning keywords of ``StratumMiner`` (max_reconnects, backoff_initial,
    backoff_max, connect_timeout, response_timeout, chunk_seconds, max_line_bytes, duty_cycle).
    """
    miner = StratumMiner(
        host,
        port,
        username,
        password,
        algorithm=algorithm,
        max_shares=max_shares,
        max_seconds=max_seconds,
        version_rolling=version_rolling,
        suggest_difficulty=suggest_difficulty,
        on_event=on_event,
        **options,
    )
    return await miner.run()
