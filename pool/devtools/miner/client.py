"""The Stratum v1 client side of the demo miner: one connection's requests and answers, the handshake,
and what the server may send. `StratumClient` keeps the current job; its subclass
`pool.devtools.miner.mining.StratumMiner` mines it.

Handshake
    ``mining.configure`` first when version rolling is wanted (BIP310: "SHOULD be the first message"),
    with ``[["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]``;
    then ``mining.subscribe [USER_AGENT]`` and, only once its answer is in, ``mining.authorize
    [user, password]`` (cpuminer ``stratum_subscribe`` / ``stratum_authorize``). The subscribe result
    is ``[subscriptions, extranonce1_hex, extranonce2_size]``; cpuminer refuses an extranonce2_size
    outside 1..100 and retries the subscribe once with empty params when the first one is refused.
    Requests carry unique ids and answers are matched by id, so their order does not matter (cpuminer
    itself sends every submit with id 4).

Jobs and difficulty
    ``mining.notify`` is decoded by `pool.devtools.miner.work.Job`. A ``mining.set_difficulty`` applies
    to the jobs that arrive after it, as in cpuminer (``stratum_notify`` copies ``next_diff`` into the
    job); before any, the difficulty is 1. A ``clean_jobs`` notify cancels the jobs before it.

Other server messages
    ``client.reconnect [host, port, wait]`` (cpuminer ``stratum_reconnect``; empty host/port mean the
    current ones); ``client.show_message [text]`` and ``client.get_version`` answered as cpuminer does
    (``true`` / the user agent); ``mining.set_extranonce [extranonce1, extranonce2_size]`` (NiceHash
    extension: used from the next job on); ``mining.set_version_mask [mask]`` (BIP310: valid
    immediately); ``mining.ping`` answered ``"pong"``. A request with an id and an unknown method is
    answered ``{"id": id, "result": false, "error": {"code": 38, "message": "unknown method"}}`` as in
    the cpuminer family's ``stratum_unknown_method`` (tpruvot/cpuminer-multi; pooler's 2.5 ignores it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pool.devtools.miner.hashing import check_difficulty
from pool.devtools.miner.stats import MinerStats
from pool.devtools.miner.wire import (
    MAX_EXTRANONCE_BYTES,
    MAX_LINE_BYTES,
    LineFramer,
    StratumProtocolError,
    checked_extranonce2_size,
    finite_number,
    hex_bytes,
    hex_u32,
    response_error,
)
from pool.devtools.miner.work import Job

log = logging.getLogger(__name__)

USER_AGENT = "demo-miner/1.0"
REQUESTED_VERSION_MASK = 0x1FFFE000  # BIP310 example mask, the BIP320 general-purpose bits 13..28
VERSION_ROLLING_MIN_BIT_COUNT = 2
MAX_RECONNECT_WAIT = 300.0
MAX_UNSENT_BYTES = 4 << 20
UNKNOWN_METHOD_ERROR = {"code": 38, "message": "unknown method"}  # cpuminer-multi, ENOSYS


class AuthorizationFailed(Exception):
    """``mining.authorize`` was refused."""


@dataclass
class ActiveJob:
    """A job as received on this connection, with what it was received under."""

    job: Job
    difficulty: float
    extranonce1: bytes
    extranonce2_size: int
    generation: int
    next_extranonce2: int = 0


@dataclass
class _Pending:
    method: str
    future: asyncio.Future[dict[str, Any]] | None = None
    on_response: Callable[[dict[str, Any]], None] | None = None


class _ReconnectRequested(Exception):
    pass


class StratumClient:
    """A Stratum v1 client: it connects, subscribes and authorizes, answers the server's methods and
    keeps the current job, the difficulty and extranonce it came with, and the version mask.

    The state of one connection is set afresh by `_reset_session`. A subclass mines: it waits for a
    job with `_wait_for_job` and stops hashing when `_abort_scan` is called.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str = "x",
        *,
        version_rolling: bool = True,
        suggest_difficulty: float | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        response_timeout: float = 30.0,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.version_rolling = version_rolling
        self.suggest_difficulty = suggest_difficulty
        self.on_event = on_event
        self.response_timeout = response_timeout
        self.max_line_bytes = max_line_bytes
        self.stats = MinerStats()
        self._method_handlers: dict[str, Callable[[Any, list[Any]], None]] = {
            "mining.notify": self._on_notify,
            "mining.set_difficulty": self._on_set_difficulty,
            "mining.set_extranonce": self._on_set_extranonce,
            "mining.set_version_mask": self._on_set_version_mask,
            "client.reconnect": self._on_reconnect,
            "client.show_message": self._on_show_message,
            "client.get_version": self._on_get_version,
            "mining.ping": self._on_ping,
        }
        self._configure_unsupported = False  # set when a server dropped us after mining.configure
        self._connection_number = 0
        self._session_host = host
        self._session_port = self.port
        self._reset_session(None)

    # ---------------------------------------------------------------- session state

    def _reset_session(self, writer: asyncio.StreamWriter | None) -> None:
        self._writer = writer
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._extranonce1: bytes | None = None
        self._extranonce2_size = 0
        self._pending_extranonce: tuple[bytes, int] | None = None
        self._next_difficulty: float = 1.0  # cpuminer stratum_subscribe: next_diff = 1.0
        self._version_mask = 0  # non-zero once version rolling is negotiated
        self._current: ActiveJob | None = None
        self._job_event = asyncio.Event()
        self._generation = 0
        self._stale_generation = 0  # jobs older than this were cancelled by clean_jobs
        self._reconnect_to: tuple[str, int, float] | None = None
        self._authorized = False
        self._configure_pending = False

    def _prefix(self) -> str:
        return f"[{self._session_host}:{self._session_port}#{self._connection_number}]"

    def _emit(self, event_type: str, **fields: Any) -> None:
        if self.on_event is None:
            return
        event = {"type": event_type, **fields}
        try:
            self.on_event(event)
        except Exception:  # a broken callback must not stop the miner
            log.exception("%s on_event callback failed for %s", self._prefix(), event_type)

    def _protocol_error(self, what: str, detail: Any = None) -> None:
        self.stats.protocol_errors += 1
        if detail is None:
            log.warning("%s protocol error: %s", self._prefix(), what)
        else:
            shown = detail[:200] if isinstance(detail, (bytes, str)) else detail
            log.warning("%s protocol error: %s: %.300r", self._prefix(), what, shown)
        self._emit("protocol_error", message=what)

    # ---------------------------------------------------------------- sending

    def _write(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("not connected")
        if self._writer.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            # The server keeps asking (pings, get_version, ...) but does not read the answers.
            self._protocol_error("server does not read what we send; closing the connection")
            self._writer.close()
            raise ConnectionError("server does not read")
        line = json.dumps(message, separators=(",", ":")) + "\n"
        log.debug("%s > %s", self._prefix(), line.rstrip())
        self._writer.write(line.encode())

    def _request(
        self,
        method: str,
        params: list[Any],
        *,
        on_response: Callable[[dict[str, Any]], None] | None = None,
        want_future: bool = False,
    ) -> tuple[int, asyncio.Future[dict[str, Any]] | None]:
        msg_id = self._next_id
        self._next_id += 1
        future = asyncio.get_running_loop().create_future() if want_future else None
        self._pending[msg_id] = _Pending(method, future, on_response)
        self._write({"id": msg_id, "method": method, "params": params})
        return msg_id, future

    async def _call(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Send a request and wait for its answer (matched by id, in whatever order it comes)."""
        msg_id, future = self._request(method, params, want_future=True)
        assert future is not None
        await self._drain()
        try:
            return await asyncio.wait_for(future, self.response_timeout)
        except TimeoutError:
            self._pending.pop(msg_id, None)
            raise TimeoutError(f"no answer to {method} within {self.response_timeout} s") from None

    async def _drain(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    def _reply(self, msg_id: Any, result: Any, error: Any = None) -> None:
        try:
            self._write({"id": msg_id, "result": result, "error": error})
        except ConnectionError:
            pass

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(exc)

    # ---------------------------------------------------------------- receiving

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        framer = LineFramer(self.max_line_bytes)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    log.info("%s connection closed by the server", self._prefix())
                    return
                overlong_before = framer.overlong_lines
                lines = framer.feed(data)
                if framer.overlong_lines != overlong_before:
                    self._protocol_error(f"line longer than {self.max_line_bytes} bytes dropped")
                for line in lines:
                    try:
                        self._dispatch_line(line)
                    except _ReconnectRequested:
                        return
                    except Exception as exc:  # a hostile line must never kill the connection loop
                        log.exception("%s failed to handle a server line", self._prefix())
                        self._protocol_error(f"unhandled {type(exc).__name__}", line)
        finally:
            self._fail_pending(ConnectionError("connection closed"))

    def _dispatch_line(self, line: bytes) -> None:
        log.debug("%s < %s", self._prefix(), line[:500])
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            self._protocol_error(f"undecodable line ({type(exc).__name__})", line)
            return
        if not isinstance(message, dict):
            self._protocol_error("line is not a JSON object", line)
            return
        method = message.get("method")
        if method is not None:
            if not isinstance(method, str):
                self._protocol_error("method is not a string", line)
                return
            self._handle_server_method(method, message.get("id"), message.get("params"))
        elif "id" in message:
            self._handle_response(message)
        else:
            self._protocol_error("neither a request nor a response", line)

    def _handle_response(self, message: dict[str, Any]) -> None:
        msg_id = message.get("id")
        if isinstance(msg_id, bool) or not isinstance(msg_id, int):
            if msg_id is None and message.get("error") is not None:
                log.warning("%s server error without id: %r", self._prefix(), message.get("error"))
                return
            self._protocol_error("response with an unusable id", msg_id)
            return
        entry = self._pending.pop(msg_id, None)
        if entry is None:
            self._protocol_error("response to an unknown request id", msg_id)
            return
        if entry.future is not None and not entry.future.done():
            entry.future.set_result(message)
        if entry.on_response is not None:
            entry.on_response(message)

    def _handle_server_method(self, method: str, msg_id: Any, params: Any) -> None:
        handler = self._method_handlers.get(method.lower())  # cpuminer matches with strcasecmp
        if handler is None:
            log.info("%s unknown server method %r", self._prefix(), method[:100])
            self._emit("unknown_method", method=method[:100])
            if msg_id is not None:
                self._reply(msg_id, False, UNKNOWN_METHOD_ERROR)
            return
        if params is None:
            params = []
        if not isinstance(params, list):
            self._protocol_error(f"{method} params are not a list", params)
            return
        try:
            handler(msg_id, params)
        except StratumProtocolError as exc:
            self._protocol_error(f"{method}: {exc}")

    # ---------------------------------------------------------------- server methods

    def _on_notify(self, msg_id: Any, params: list[Any]) -> None:
        job = Job.from_notify(params)
        if self._extranonce1 is None:
            raise StratumProtocolError("mining.notify before the subscribe answer")
        if self._pending_extranonce is not None:
            self._extranonce1, self._extranonce2_size = self._pending_extranonce
            self._pending_extranonce = None
        self._generation += 1
        previous = self._current
        active = ActiveJob(
            job=job,
            difficulty=self._next_difficulty,
            extranonce1=self._extranonce1,
            extranonce2_size=self._extranonce2_size,
            generation=self._generation,
        )
        if (
            previous is not None
            and previous.job.job_id == job.job_id
            and previous.extranonce1 == active.extranonce1
            and previous.extranonce2_size == active.extranonce2_size
        ):
            # cpuminer stratum_notify only zeroes extranonce2 for a new job id.
            active.next_extranonce2 = previous.next_extranonce2
        if job.clean_jobs:
            self._stale_generation = active.generation
            self._abort_scan()
        self._current = active
        self._job_event.set()
        self.stats.jobs += 1
        log.info(
            "%s job %s (clean=%s, difficulty %g, ntime %08x)",
            self._prefix(),
            job.job_id,
            job.clean_jobs,
            active.difficulty,
            job.ntime,
        )
        self._emit(
            "job",
            job_id=job.job_id,
            clean_jobs=job.clean_jobs,
            difficulty=active.difficulty,
            ntime=f"{job.ntime:08x}",
            nbits=f"{job.nbits:08x}",
            version=f"{job.version:08x}",
        )

    def _on_set_difficulty(self, msg_id: Any, params: list[Any]) -> None:
        try:
            difficulty = check_difficulty(params[0] if params else None)
        except (TypeError, ValueError) as exc:
            raise StratumProtocolError(str(exc)) from None
        self._next_difficulty = difficulty
        log.info("%s difficulty %g (from the next job on)", self._prefix(), difficulty)
        self._emit("difficulty", difficulty=difficulty)

    def _on_set_extranonce(self, msg_id: Any, params: list[Any]) -> None:
        if len(params) < 2:
            raise StratumProtocolError("mining.set_extranonce needs [extranonce1, extranonce2_size]")
        extranonce1 = hex_bytes(params[0], "extranonce1", max_length=MAX_EXTRANONCE_BYTES)
        size = checked_extranonce2_size(params[1])
        self._pending_extranonce = (extranonce1, size)
        log.info(
            "%s extranonce1 %s, extranonce2_size %d from the next job",
            self._prefix(),
            extranonce1.hex(),
            size,
        )
        self._emit("extranonce", extranonce1=extranonce1.hex(), extranonce2_size=size)

    def _on_set_version_mask(self, msg_id: Any, params: list[Any]) -> None:
        mask = hex_u32(params[0] if params else None, "version mask")
        if not self._version_mask:
            log.info("%s ignoring mining.set_version_mask: version rolling not negotiated", self._prefix())
            return
        self._version_mask = mask & REQUESTED_VERSION_MASK
        self._abort_scan()  # BIP310: the new mask is valid immediately
        log.info("%s version mask %08x", self._prefix(), self._version_mask)
        self._emit("version_mask", mask=f"{self._version_mask:08x}")

    def _on_reconnect(self, msg_id: Any, params: list[Any]) -> None:
        def given(index: int) -> Any:
            value = params[index] if len(params) > index else None
            return None if value == "" else value

        host = given(0) if given(0) is not None else self._session_host
        if not isinstance(host, str) or len(host) > 255:
            raise StratumProtocolError("client.reconnect host must be a string")
        # cpuminer stratum_reconnect accepts the port as a string or a number
        port_number = (
            finite_number(given(1), "client.reconnect port") if given(1) is not None else self._session_port
        )
        if port_number != int(port_number) or not 0 < port_number < 65536:
            raise StratumProtocolError(f"client.reconnect port out of range: {port_number!r}")
        port = int(port_number)
        wait = finite_number(given(2), "client.reconnect wait") if given(2) is not None else 0.0
        wait = min(max(wait, 0.0), MAX_RECONNECT_WAIT)
        log.info("%s server asks to reconnect to %s:%d after %g s", self._prefix(), host, port, wait)
        self._reconnect_to = (host, port, wait)
        raise _ReconnectRequested

    def _on_show_message(self, msg_id: Any, params: list[Any]) -> None:
        text = params[0] if params else ""
        log.warning("%s MESSAGE FROM SERVER: %s", self._prefix(), str(text)[:1000])
        self._emit("message", text=str(text)[:1000])
        if msg_id is not None:
            self._reply(msg_id, True)

    def _on_get_version(self, msg_id: Any, params: list[Any]) -> None:
        if msg_id is not None:
            self._reply(msg_id, USER_AGENT)

    def _on_ping(self, msg_id: Any, params: list[Any]) -> None:
        if msg_id is not None:
            self._reply(msg_id, "pong")

    # ---------------------------------------------------------------- responses to our requests

    def _on_configure_result(self, message: dict[str, Any]) -> None:
        self._configure_pending = False
        result = message.get("result")
        error = response_error(message)
        mask = 0
        if error is None and isinstance(result, dict) and result.get("version-rolling") is True:
            try:
                mask = hex_u32(result.get("version-rolling.mask"), "version-rolling.mask")
            except StratumProtocolError as exc:
                self._protocol_error(f"mining.configure: {exc}")
                mask = 0
        self._version_mask = mask & REQUESTED_VERSION_MASK
        if self._version_mask:
            log.info("%s version rolling on, mask %08x", self._prefix(), self._version_mask)
        else:
            log.info("%s version rolling not available (%r)", self._prefix(), error or result)
        self._emit("configured", version_rolling=bool(self._version_mask), mask=f"{self._version_mask:08x}")

    def _apply_subscribe_result(self, result: Any) -> None:
        if not isinstance(result, list) or len(result) < 3:
            raise StratumProtocolError(
                f"subscribe result must be [subscriptions, extranonce1, size]: {result!r:.200}"
            )
        extranonce1 = hex_bytes(result[1], "extranonce1", max_length=MAX_EXTRANONCE_BYTES)
        size = checked_extranonce2_size(result[2])
        self._extranonce1 = extranonce1
        self._extranonce2_size = size
        self._next_difficulty = 1.0

    # ---------------------------------------------------------------- handshake and jobs

    async def _handshake(self) -> None:
        if self.version_rolling and not self._configure_unsupported:
            self._configure_pending = True
            self._request(
                "mining.configure",
                [
                    ["version-rolling"],
                    {
                        "version-rolling.mask": f"{REQUESTED_VERSION_MASK:08x}",
                        "version-rolling.min-bit-count": VERSION_ROLLING_MIN_BIT_COUNT,
                    },
                ],
                on_response=self._on_configure_result,
            )
        answer = await self._call("mining.subscribe", [USER_AGENT])
        if response_error(answer) is not None or answer.get("result") is None:
            # cpuminer stratum_subscribe: retry once with empty params
            log.info(
                "%s subscribe refused (%r), retrying without params", self._prefix(), answer.get("error")
            )
            answer = await self._call("mining.subscribe", [])
            if response_error(answer) is not None:
                raise StratumProtocolError(f"mining.subscribe refused: {answer.get('error')!r:.200}")
        self._apply_subscribe_result(answer.get("result"))
        self._emit(
            "subscribed",
            extranonce1=self._extranonce1.hex() if self._extranonce1 else "",
            extranonce2_size=self._extranonce2_size,
        )
        if self.suggest_difficulty is not None:
            self._request("mining.suggest_difficulty", [self.suggest_difficulty])
        answer = await self._call("mining.authorize", [self.username, self.password])
        error = response_error(answer)
        # cpuminer stratum_authorize: refused if result is missing or false, or error is set
        if error is not None or "result" not in answer or answer.get("result") is False:
            raise AuthorizationFailed(
                f"mining.authorize refused for {self.username!r}: {error or answer.get('result')!r}"
            )
        self._authorized = True
        log.info("%s authorized as %s", self._prefix(), self.username)
        self._emit("authorized", username=self.username)

    def _abort_scan(self) -> None:
        """The work in hand is void (a clean job, a new version mask): the miner stops hashing it."""

    async def _wait_for_job(self) -> ActiveJob:
        while self._current is None:
            self._job_event.clear()
            await self._job_event.wait()
        return self._current
