"""Asynchronous JSON-RPC client for Litecoin Core / Bitcoin Core daemons.

`DaemonClient` is an async context manager that owns one `aiohttp.ClientSession`. It limits the
number of concurrent requests, retries transport failures and warm-up answers (-28) with bounded
exponential backoff, and fails over between several daemons, remembering the one that works.
Errors the daemon itself returns (bad parameter, unknown block, ...) are never retried. Every error
is a `DaemonError` (`pool.rpc.wire` says which subclass means what).

Modelled on electrumx ``server/daemon.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

from pool.metrics import RPC_BUCKETS_S, LatencyHistogram
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

#: `getblocktemplate` must name both rule sets on Litecoin Core 0.21.2 (it refuses "segwit" alone).
GBT_RULES: tuple[str, ...] = ("mweb", "segwit")

T = TypeVar("T")


@dataclass(frozen=True)
class DaemonReply:
    """What one daemon answered to `DaemonClient.call_all`: a result or an error."""

    endpoint: DaemonEndpoint
    result: Any = None
    error: DaemonError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _EndpointState:
    endpoint: DaemonEndpoint
    failing: bool = False
    failures: int = 0


# --------------------------------------------------------------------------------------------------
# Client


class DaemonClient:
    """JSON-RPC client over one or more daemons; use as ``async with DaemonClient([...]) as daemon``.

    Retries apply to transport failures and -28 warm-up only, bounded by `max_attempts` and by
    `retry_max_time` seconds. With several daemons a failure moves to the next one at once; a
    backoff sleep happens only after every daemon has failed in turn. The daemon that answered last
    stays the active one.

    Long-poll `getblocktemplate` calls use `longpoll_timeout`, do not count against
    `max_concurrent_requests` (they sit idle for minutes) and are not retried on timeout: the caller
    simply polls again. Each one still occupies one of the daemon's ``-rpcthreads`` (default 4).
    """

    def __init__(
        self,
        urls: str | DaemonEndpoint | Sequence[str | DaemonEndpoint],
        *,
        max_concurrent_requests: int = 8,
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        longpoll_timeout: float = 600.0,
        max_attempts: int = 10,
        retry_initial_delay: float = 0.25,
        retry_max_delay: float = 4.0,
        retry_max_time: float = 30.0,
    ) -> None:
        if isinstance(urls, (str, DaemonEndpoint)):
            urls = [urls]
        endpoints = [u if isinstance(u, DaemonEndpoint) else DaemonEndpoint.parse(u) for u in urls]
        if not endpoints:
            raise ValueError("DaemonClient needs at least one daemon URL")
        if max_concurrent_requests < 1 or max_attempts < 1:
            raise ValueError("max_concurrent_requests and max_attempts must be at least 1")
        self._states = [_EndpointState(endpoint) for endpoint in endpoints]
        self._active_index = 0
        self._semaphore = asyncio.Semaphore(max_concurrent_requests)
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._longpoll_timeout = longpoll_timeout
        self._max_attempts = max_attempts
        self._retry_initial_delay = retry_initial_delay
        self._retry_max_delay = retry_max_delay
        self._retry_max_time = retry_max_time
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        #: Counters for monitoring and tests.
        self.requests_sent = 0
        self.failover_count = 0
        self.warmup_answers = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.latency = LatencyHistogram(RPC_BUCKETS_S)  # HTTP round trips, for the metrics
        self.errors: collections.Counter[str] = collections.Counter()  # failed round trips by kind
        for number, endpoint in enumerate(endpoints, 1):
            logger.info("daemon #%d at %s%s", number, endpoint.logged_url, "" if number > 1 else " (active)")

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        # limit=0: the semaphore bounds ordinary requests, long polls are bounded by their callers.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- introspection -----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[DaemonEndpoint]:
        return [state.endpoint for state in self._states]

    @property
    def active_endpoint(self) -> DaemonEndpoint:
        """The daemon the next `call` goes to: the one that answered last."""
        return self._states[self._active_index].endpoint

    # -- public calls ------------------------------------------------------------------------------

    async def call(self, method: str, *params: Any, timeout: float | None = None, retry: bool = True) -> Any:
        """Call `method` on the active daemon (failing over as needed) and return its result.

        ``retry=False``: one attempt on the active daemon, no retry and no failover -- for calls
        whose effect must not be repeated blindly (broadcasting a payment): a timeout or a dropped
        connection raises at once and the caller reconciles."""
        request_id = next(self._ids)
        body = encode_json({"jsonrpc": "1.0", "id": request_id, "method": method, "params": list(params)})

        def unwrap(reply: Any, endpoint: DaemonEndpoint) -> Any:
            return self._unwrap(reply, method, endpoint)

        return await self._request(method, body, unwrap, timeout=timeout or self._request_timeout,
                                   max_attempts=None if retry else 1)

    async def call_all(self, method: str, *params: Any, timeout: float | None = None,
                       limited: bool = True) -> list[DaemonReply]:
        """Send the same call to every configured daemon at once; one `DaemonReply` each, in order.

        Each daemon gets its own retries (no failover). Used to submit a found block everywhere;
        ``limited=False``: outside `max_concurrent_requests` (the submitter bounds its own calls)."""
        request_id = next(self._ids)
        body = encode_json({"jsonrpc": "1.0", "id": request_id, "method": method, "params": list(params)})

        async def one(state: _EndpointState) -> DaemonReply:
            def unwrap(reply: Any, endpoint: DaemonEndpoint) -> Any:
                return self._unwrap(reply, method, endpoint)

            try:
                result = await self._request(method, body, unwrap, timeout=timeout or self._request_timeout,
                                             pinned=state, limited=limited)
            except DaemonError as error:
                return DaemonReply(state.endpoint, error=error)
            return DaemonReply(state.endpoint, result=result)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(state)) for state in self._states]
        return [task.result() for task in tasks]

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, return_errors: bool = False
    ) -> list[Any]:
        """Send several calls in one HTTP request; results come back in the order of `calls`.

        An RPC error raises the first `DaemonError`, or with ``return_errors=True`` takes the
        place of that call's result.
        """
        if not calls:
            return []
        first_id = next(self._ids)
        ids = [first_id] + [next(self._ids) for _ in calls[1:]]
        payload = [
            {"jsonrpc": "1.0", "id": request_id, "method": method, "params": list(params)}
            for request_id, (method, params) in zip(ids, calls, strict=True)
        ]
        label = f"batch of {len(calls)} ({calls[0][0]}, ...)"

        def unwrap(reply: Any, endpoint: DaemonEndpoint) -> list[Any]:
            if not isinstance(reply, list):
                raise DaemonError("batch reply is not a JSON array", method=label, url=endpoint.logged_url)
            by_id = {item.get("id"): item for item in reply if isinstance(item, dict)}
            results: list[Any] = []
            for request_id, (method, _params) in zip(ids, calls, strict=True):
                item = by_id.get(request_id)
                if item is None:
                    raise DaemonError(
                        f"no reply for {method} in batch", method=label, url=endpoint.logged_url
                    )
                error = item.get("error")
                if not error:
                    results.append(item.get("result"))
                    continue
                exception = rpc_error_from_reply(error, method=method, url=endpoint.logged_url)
                if isinstance(exception, DaemonWarmingUp) or not return_errors:
                    raise exception
                results.append(exception)
            return results

        return await self._request(label, encode_json(payload), unwrap, timeout=self._request_timeout)

    # -- convenience -------------------------------------------------------------------------------

    async def getblocktemplate(self, longpollid: str | None = None) -> dict[str, Any]:
        """A block template with the mweb and segwit rules; with `longpollid` this is a long poll
        that returns when the daemon's tip (or, after a minute, its mempool) changes."""
        request: dict[str, Any] = {"rules": list(GBT_RULES)}
        if longpollid is None:
            result = await self.call("getblocktemplate", request)
        else:
            request["longpollid"] = longpollid
            method = "getblocktemplate"
            body = encode_json(
                {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": [request]}
            )

            def unwrap(reply: Any, endpoint: DaemonEndpoint) -> Any:
                return self._unwrap(reply, method, endpoint)

            result = await self._request(
                "getblocktemplate (long poll)",
                body,
                unwrap,
                timeout=self._longpoll_timeout,
                limited=False,
                retry_timeouts=False,
            )
        return dict(result)

    async def submitblock(self, block_hex: str) -> str | None:
        """None when accepted, else Core's reason string (``duplicate`` and ``inconclusive`` are not
        rejections)."""
        result = await self.call("submitblock", block_hex)
        return None if result is None else str(result)

    async def getblockhash(self, height: int) -> str:
        return str(await self.call("getblockhash", height))

    async def getbestblockhash(self) -> str:
        return str(await self.call("getbestblockhash"))

    async def getblockcount(self) -> int:
        return int(await self.call("getblockcount"))

    async def validateaddress(self, address: str) -> dict[str, Any]:
        return dict(await self.call("validateaddress", address))

    async def getblockchaininfo(self) -> dict[str, Any]:
        return dict(await self.call("getblockchaininfo"))

    async def getnetworkinfo(self) -> dict[str, Any]:
        return dict(await self.call("getnetworkinfo"))

    async def getconnectioncount(self) -> int:
        return int(await self.call("getconnectioncount"))

    # -- machinery ---------------------------------------------------------------------------------

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("DaemonClient is not open: use 'async with DaemonClient(...) as daemon'")
        return self._session

    @staticmethod
    def _unwrap(reply: Any, method: str, endpoint: DaemonEndpoint) -> Any:
        if not isinstance(reply, dict) or not ("result" in reply or "error" in reply):
            raise DaemonError("reply is not a JSON-RPC response", method=method, url=endpoint.logged_url)
        error = reply.get("error")
        if error:
            raise rpc_error_from_reply(error, method=method, url=endpoint.logged_url)
        return reply.get("result")

    async def _post(
        self, state: _EndpointState, method: str, body: bytes, timeout: float, limited: bool
    ) -> Any:
        """One HTTP round trip; returns the decoded JSON or raises a DaemonError subclass."""
        session = self._require_session()
        endpoint = state.endpoint
        url = endpoint.logged_url
        client_timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(self._connect_timeout, timeout)
        )
        guard = self._semaphore if limited else contextlib.nullcontext()
        async with guard:
            if limited:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.requests_sent += 1
            started = time.perf_counter()
            try:
                async with session.post(
                    endpoint.url,
                    data=body,
                    headers=endpoint.headers,
                    timeout=client_timeout,
                ) as response:
                    raw = await response.read()
                    status, reason, content_type = response.status, response.reason, response.content_type
            except TimeoutError as error:
                self.errors["timeout"] += 1
                raise DaemonTimeout(f"no answer within {timeout:g}s", method=method, url=url) from error
            except (aiohttp.ClientError, OSError) as error:
                self.errors["unreachable"] += 1
                raise DaemonUnreachable(_describe_transport_error(error), method=method, url=url) from error
            finally:
                self.latency.observe(time.perf_counter() - started)
                if limited:
                    self.in_flight -= 1

        if status >= 400:
            self.errors[f"http_{status}"] += 1
        if status in (401, 403):
            hint = "check rpcuser/rpcpassword" if status == 401 else "check rpcallowip"
            raise DaemonAuthError(
                f"HTTP {status} {reason}: {hint}", method=method, url=url, http_status=status
            )
        # Core sends RPC errors as JSON with HTTP 500 (or 404 for an unknown method).
        if content_type == "application/json" or raw[:1] in (b"{", b"["):
            try:
                return decode_json(raw)
            except ValueError as error:
                raise DaemonUnreachable(
                    f"HTTP {status}: invalid JSON ({error})", method=method, url=url, http_status=status
                ) from error
        text = raw.decode("utf-8", "replace").strip() or (reason or "")
        if status >= 500:  # e.g. 503 "Work queue depth exceeded": transient
            raise DaemonUnreachable(f"HTTP {status}: {text}", method=method, url=url, http_status=status)
        raise DaemonError(f"HTTP {status}: {text}", method=method, url=url, http_status=status)

    async def _request(
        self,
        method: str,
        body: bytes,
        unwrap: Callable[[Any, DaemonEndpoint], T],
        *,
        timeout: float,
        limited: bool = True,
        pinned: _EndpointState | None = None,
        retry_timeouts: bool = True,
        max_attempts: int | None = None,
    ) -> T:
        """Send `body` with retries and failover; `pinned` fixes the daemon (no failover)."""
        max_attempts = max_attempts or self._max_attempts
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = self._retry_initial_delay
        attempts = 0
        failures_this_round = 0
        while True:
            state = pinned or self._states[self._active_index]
            attempts += 1
            last_error: DaemonError
            try:
                result = unwrap(await self._post(state, method, body, timeout, limited), state.endpoint)
            except (DaemonUnreachable, DaemonWarmingUp) as error:
                if isinstance(error, DaemonTimeout) and not retry_timeouts:
                    raise
                self._note_failure(state, error)
                last_error = error
            except DaemonError:
                # The daemon answered; the call itself is wrong (or our credentials are). No retry.
                self._note_answer(state)
                raise
            else:
                self._note_answer(state)
                return result

            failures_this_round += 1
            candidates = 1 if pinned is not None else len(self._states)
            elapsed = loop.time() - started
            if attempts >= max_attempts:
                raise last_error._with_attempts(attempts, elapsed) from last_error
            if candidates > 1:
                self._fail_over(state)
                if failures_this_round < candidates and elapsed < self._retry_max_time:
                    continue  # another daemon has not been tried this round: try it at once
            if elapsed + delay > self._retry_max_time:
                raise last_error._with_attempts(attempts, elapsed) from last_error
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_delay)
            failures_this_round = 0

    def _note_failure(self, state: _EndpointState, error: DaemonError) -> None:
        """Log a daemon's failure once per outage, not once per retry."""
        state.failures += 1
        if isinstance(error, DaemonWarmingUp):
            self.warmup_answers += 1
        if state.failing:
            logger.debug("daemon %s still failing: %s", state.endpoint.logged_url, error.message)
            return
        state.failing = True
        if isinstance(error, DaemonWarmingUp):
            logger.warning("daemon %s is warming up: %s", state.endpoint.logged_url, error.message)
        else:
            logger.warning(
                "daemon %s failed (%s): %s", state.endpoint.logged_url, error.method, error.message
            )

    def _note_answer(self, state: _EndpointState) -> None:
        if state.failing:
            state.failing = False
            logger.info("daemon %s is answering again", state.endpoint.logged_url)

    def _fail_over(self, failed: _EndpointState) -> None:
        """Make the daemon after `failed` the active one, unless another call already moved on."""
        index = self._states.index(failed)
        if index != self._active_index:
            return
        self._active_index = (index + 1) % len(self._states)
        self.failover_count += 1
        target = self._states[self._active_index]
        log = logger.debug if target.failing else logger.warning
        log("failing over from daemon %s to %s", failed.endpoint.logged_url, target.endpoint.logged_url)


def _describe_transport_error(error: BaseException) -> str:
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect ({error.os_error.strerror or error.os_error})"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    return f"{type(error).__name__}: {error}"
