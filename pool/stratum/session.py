"""One miner connection speaking Stratum v1 (the Bitcoin family's dialect): the methods, dispatched through a table.

Every handler checks its parameters' types and sizes and answers a Stratum error for
anything else (20 other, 21 job not found, 22 duplicate, 23 low difficulty, 24
unauthorized, 25 not subscribed).  Nothing a miner sends may raise out of here.
"""
from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from pool.stratum.vardiff import VarDiff, tidy
from share_validator.difficulty import BadDifficulty, Difficulty, check_difficulty
from share_validator.errors import Reject, StratumError

if TYPE_CHECKING:
    from pool.families.base import ShareResult
    from pool.stratum.protocol import StratumProtocol


class SessionHost(Protocol):
    """What a session asks of the server that holds it (`pool.stratum.server.StratumServer`)."""
    clock: Any
    coin: Any
    family: Any
    config: Any
    pool_config: Any
    current_job: Any
    stats: Any
    validator: Any
    work_available: bool

    def address_known(self, address: str) -> bool | None: ...
    def address_refusal(self, address: str) -> str: ...
    async def check_address(self, address: str) -> bool: ...
    def ban(self, ip: str, reason: str) -> None: ...
    def log_once(self, key: str, message: str, interval_s: float = 60.0) -> None: ...
    def notify_line(self, job: Any, clean: bool) -> bytes: ...
    def resume_extranonce1(self, session: Any, wanted: bytes) -> bytes | None: ...
    def submit(self, session: Any, msg_id: Any, params: list) -> None: ...
    def track(self, task: asyncio.Future) -> None: ...

logger = logging.getLogger(__name__)

WORKER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_USER_LENGTH = 160
MAX_AGENT_LENGTH = 256
MAX_PASSWORD_LENGTH = 256
_JSON_SCALAR_IDS = (int, str, type(None))


class StratumFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message


def _fault(reject: Reject) -> StratumFault:
    return StratumFault(reject.code, reject.reason)


class Session:
    """The state and the handlers of one connection."""

    __slots__ = (
        "_queue",
        "alias_counter",
        "bad_messages",
        "closed",
        "closing",
        "connected_at",
        "difficulty",
        "extranonce_subscribed",
        "ip",
        "last_activity",
        "miner_min_difficulty",
        "number",
        "pending",
        "port",
        "protocol",
        "server",
        "shares_accepted",
        "shares_checked",
        "shares_invalid",
        "state",
        "subscribed",
        "user_agent",
        "vardiff",
        "workers",
    )

    def __init__(self, server: SessionHost, protocol: StratumProtocol, number: int, extranonce1: bytes) -> None:
        self.server = server
        self.protocol = protocol
        self.number = number
        self.port = protocol.port
        self.ip = protocol.peer_ip
        now = server.clock()
        self.connected_at = now
        self.last_activity = now
        self.state = server.validator.new_miner_state(extranonce1, server.pool_config.extranonce2_size)
        self.subscribed = False
        self.user_agent = ""
        self.extranonce_subscribed = False
        self.workers: dict[str, tuple[str, str]] = {}  # full name -> (address, worker)
        self.difficulty = Difficulty(server.coin, self.port.initial_difficulty)
        self.miner_min_difficulty = 0.0
        self.vardiff = VarDiff(
            target_share_s=self.port.target_share_s, retarget_s=self.port.retarget_s,
            variance_pct=self.port.variance_pct, min_difficulty=self.port.min_difficulty,
            max_difficulty=self.port.max_difficulty, enabled=self.port.vardiff, now=now,
        )
        self.alias_counter = 0
        self.shares_checked = 0
        self.shares_invalid = 0
        self.shares_accepted = 0
        self.bad_messages = 0
        self.closed = False  # the server's bookkeeping for the connection is done
        self.closing = False  # the connection is ending: nothing more is judged or answered
        self.pending = 0  # requests read but not yet answered (queued lines, shares waiting for a batch)
        self._queue: deque[bytes] | None = None  # lines waiting while an async handler runs

    @property
    def log(self) -> logging.LoggerAdapter:
        return logging.LoggerAdapter(logger, {"session": f"#{self.number} {self.ip}"})

    @property
    def authorized(self) -> bool:
        return bool(self.workers)

    @property
    def extranonce1(self) -> bytes:
        return self.state.extranonce1

    # -- input -------------------------------------------------------------------------

    def handle_line(self, line: bytes) -> None:
        if self._queue is not None:  # counted: the protocol stops reading at max_requests_in_flight
            self.pending += 1
            self._queue.append(line)
            return
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            self._bad_message(None, "parse error")
            return
        if type(message) is not dict:
            self._bad_message(None, "request must be a JSON object")
            return
        msg_id = message.get("id")
        if type(msg_id) not in _JSON_SCALAR_IDS or (type(msg_id) is str and len(msg_id) > 64):
            self._bad_message(None, "bad request id")
            return
        method = message.get("method")
        if method is None and ("result" in message or "error" in message):
            return  # a miner's answer to one of our requests
        if type(method) is not str:
            self._bad_message(msg_id, "request without a method")
            return
        params = message.get("params")  # no default list made per request
        if params is None:
            params = []
        if type(params) is not list:
            self._bad_message(msg_id, "params must be a list")
            return
        handler = HANDLERS.get(method)
        if handler is None:
            self.server.stats["unknown_method"] += 1
            self.send_error(msg_id, StratumError.OTHER, "unknown method")
            return
        try:
            outcome = handler(self, msg_id, params)
        except StratumFault as fault:
            self.send_error(msg_id, fault.code, fault.message)
            return
        except Exception:  # a bug must cost one answer, never the server
            self.server.stats["internal_error"] += 1
            self.log.exception("error handling %s", method)
            self.send_error(msg_id, StratumError.OTHER, "internal error")
            return
        if outcome is not None and asyncio.iscoroutine(outcome):
            self._queue = deque()
            task = asyncio.ensure_future(self._run_async(msg_id, method, outcome))
            self.server.track(task)

    async def _run_async(self, msg_id: Any, method: str, outcome) -> None:
        try:
            await outcome
        except StratumFault as fault:
            self.send_error(msg_id, fault.code, fault.message)
        except Exception:
            self.server.stats["internal_error"] += 1
            self.log.exception("error handling %s", method)
            self.send_error(msg_id, StratumError.OTHER, "internal error")
        queue, self._queue = self._queue, None
        while queue and not self.closing:
            self.pending -= 1
            self.handle_line(queue.popleft())
            if self._queue is not None:  # another async handler started: it takes the rest
                self._queue.extend(queue)
                return
        if not self.closing and self.pending <= self.protocol.resume_at:
            self.protocol.resume_reading()

    def _bad_message(self, msg_id: Any, reason: str) -> None:
        self.bad_messages += 1
        self.server.stats["bad_message"] += 1
        self.server.log_once(self.ip, f"bad message: {reason}")
        self.send_error(msg_id, StratumError.OTHER, reason)
        if self.bad_messages >= self.server.config.max_bad_messages:
            self.server.log_once(self.ip, "too many bad messages; disconnecting")
            self.close()

    # -- output ------------------------------------------------------------------------

    def send_result(self, msg_id: Any, result: Any) -> None:
        self.protocol.send(orjson.dumps({"id": msg_id, "result": result, "error": None}) + b"\n")

    def send_error(self, msg_id: Any, code: int, message: str) -> None:
        self.protocol.send(orjson.dumps({"id": msg_id, "result": None, "error": [int(code), message, None]}) + b"\n")

    def send_notification(self, method: str, params: list) -> None:
        self.protocol.send(orjson.dumps({"id": None, "method": method, "params": params}) + b"\n")

    def send_job(self, job, clean: bool) -> None:
        """The current job, pool-wide id, with the difficulty in force now."""
        self.protocol.send(self.server.notify_line(job, clean))
        self.state.job_sent(job.job_id, self.difficulty)

    def close(self) -> None:
        self.protocol.close()

    def drop_queued_lines(self) -> int:
        """The connection is ending: forget the lines waiting for an async handler; how many there were."""
        queue = self._queue
        if not queue:
            return 0
        count = len(queue)
        queue.clear()
        self.pending -= count
        return count

    # -- difficulty --------------------------------------------------------------------

    def clamp_difficulty(self, value: float) -> float:
        low = max(self.port.min_difficulty, self.miner_min_difficulty)
        return min(max(value, low), self.port.max_difficulty)

    def set_difficulty(self, value: float, *, send_job: bool = True) -> None:
        """Change difficulty; once authorized, tell the miner and re-send the job under a new id."""
        value = self.clamp_difficulty(value)
        if value == self.difficulty.value:
            return
        self.difficulty = Difficulty(self.server.coin, value)
        self.vardiff.restart(self.server.clock())
        if not self.authorized:
            return
        self.send_notification("mining.set_difficulty", [value])
        job = self.server.current_job
        if send_job and job is not None and self.server.work_available:
            self.alias_counter += 1
            wire_id = f"{job.job_id}.{self.alias_counter:x}"
            params = list(job.notify_params)
            params[0] = wire_id
            params.append(False)
            self.send_notification("mining.notify", params)
            self.state.job_sent(job.job_id, self.difficulty, wire_id=wire_id)

    def on_timer(self, now: float) -> None:
        new = self.vardiff.on_timer(self.difficulty.value, now)
        if new is not None:
            self.set_difficulty(new)

    # -- methods -----------------------------------------------------------------------

    def subscribe(self, msg_id: Any, params: list) -> None:
        if params:
            agent = params[0]
            if type(agent) is not str or len(agent) > MAX_AGENT_LENGTH:
                raise StratumFault(StratumError.OTHER, "user agent must be a short string")
            self.user_agent = agent
        if len(params) > 1 and params[1] is not None and not self.subscribed:
            wanted = params[1]
            if type(wanted) is str and re.fullmatch("[0-9a-fA-F]{8}", wanted):
                extranonce1 = self.server.resume_extranonce1(self, bytes.fromhex(wanted))
                if extranonce1 is not None:
                    self.state.extranonce1 = extranonce1
        self.subscribed = True
        session_id = self.state.extranonce1.hex()
        self.send_result(msg_id, [
            [["mining.set_difficulty", session_id], ["mining.notify", session_id]],
            session_id,
            self.state.extranonce2_size,
        ])

    def authorize(self, msg_id: Any, params: list):
        if not self.subscribed:
            raise _fault(Reject.NOT_SUBSCRIBED)
        if not params or type(params[0]) is not str or not 0 < len(params[0]) <= MAX_USER_LENGTH:
            raise StratumFault(StratumError.UNAUTHORIZED, "user must be ADDRESS or ADDRESS.WORKER")
        user = params[0]
        password = params[1] if len(params) > 1 else ""
        if password is None:
            password = ""
        if type(password) is not str or len(password) > MAX_PASSWORD_LENGTH:
            raise StratumFault(StratumError.OTHER, "password must be a short string")
        address, _, worker = user.partition(".")
        if worker and not WORKER_NAME.fullmatch(worker):
            raise StratumFault(StratumError.UNAUTHORIZED, "worker name must be 1-64 of A-Z a-z 0-9 _ . -")
        known = self.server.address_known(address)
        if known is False:
            raise StratumFault(StratumError.UNAUTHORIZED, self.server.address_refusal(address))
        if known is True:
            self._authorized(msg_id, user, address, worker or "default", password)
            return None
        return self._authorize_async(msg_id, user, address, worker or "default", password)

    async def _authorize_async(self, msg_id, user, address, worker, password) -> None:
        if not await self.server.check_address(address):
            raise StratumFault(StratumError.UNAUTHORIZED, self.server.address_refusal(address))
        if not self.closing:
            self._authorized(msg_id, user, address, worker, password)

    def _authorized(self, msg_id, user, address, worker, password) -> None:
        first = not self.workers
        if user not in self.workers and len(self.workers) >= 64:
            raise StratumFault(StratumError.UNAUTHORIZED, "too many workers on one connection")
        self.workers[user] = (address, worker)
        self.state.authorized.add(user)
        self.last_activity = self.server.clock()
        if first:
            requested = _password_difficulty(password)
            if requested is not None:
                self.difficulty = Difficulty(self.server.coin, self.clamp_difficulty(requested))
        self.send_result(msg_id, True)
        if first:
            self.send_notification("mining.set_difficulty", [self.difficulty.value])
            job = self.server.current_job
            if job is not None and self.server.work_available:
                self.send_job(job, True)

    def submit(self, msg_id: Any, params: list):
        if not self.subscribed:
            raise _fault(Reject.NOT_SUBSCRIBED)
        if not self.workers:
            raise _fault(Reject.UNAUTHORIZED)
        return self.server.submit(self, msg_id, params)

    def share_judged(self, msg_id: Any, result: ShareResult, now: float | None = None) -> None:
        """Answer a judged share and account for it (called by the server, maybe after a batch)."""
        if self.closing:  # banned or gone: no answer, no more accounting (one ban is one event)
            return
        if result.reject is None:
            if type(msg_id) is int:
                self.protocol.send(b'{"id":%d,"result":true,"error":null}\n' % msg_id)
            else:
                self.protocol.send(b'{"id":' + orjson.dumps(msg_id) + b',"result":true,"error":null}\n')
        else:
            self.send_error(msg_id, result.reject.code, result.reject.reason)
        if now is None:
            now = self.server.clock()
        self.shares_checked += 1
        if result.reject is None:
            self.shares_accepted += 1
            self.last_activity = now
            vardiff = self.vardiff
            if vardiff.enabled:
                new = vardiff.on_share(self.difficulty.value, now)
                if new is not None:
                    self.set_difficulty(new)
        elif result.reject.code != StratumError.JOB_NOT_FOUND:  # stale shares are honest
            self.shares_invalid += 1
            config = self.server.config
            if (self.shares_checked >= config.ban_min_shares
                    and self.shares_invalid >= config.ban_invalid_ratio * self.shares_checked):
                self.server.ban(self.ip, f"{self.shares_invalid} of {self.shares_checked} shares invalid")

    def configure(self, msg_id: Any, params: list) -> None:
        if len(params) < 1 or type(params[0]) is not list or len(params[0]) > 16:
            raise StratumFault(StratumError.OTHER, "configure takes [extensions, parameters]")
        options = params[1] if len(params) > 1 else {}
        if type(options) is not dict:
            raise StratumFault(StratumError.OTHER, "configure parameters must be an object")
        result: dict[str, Any] = {}
        for extension in params[0]:
            if type(extension) is not str:
                raise StratumFault(StratumError.OTHER, "extension names must be strings")
            if extension == "version-rolling":
                mask_hex = options.get("version-rolling.mask", "ffffffff")
                if type(mask_hex) is not str or not re.fullmatch("[0-9a-fA-F]{1,8}", mask_hex):
                    raise StratumFault(StratumError.OTHER, "version-rolling.mask must be hex")
                mask = int(mask_hex, 16) & self.server.family.version_mask
                self.state.version_mask = mask
                result["version-rolling"] = True
                result["version-rolling.mask"] = f"{mask:08x}"
            elif extension == "minimum-difficulty":
                value = options.get("minimum-difficulty.value")
                try:
                    minimum = float(check_difficulty(value))
                except BadDifficulty:
                    result["minimum-difficulty"] = False
                    continue
                self.miner_min_difficulty = min(minimum, self.port.max_difficulty)
                result["minimum-difficulty"] = True
                if self.difficulty.value < self.miner_min_difficulty:
                    self.set_difficulty(self.miner_min_difficulty)
            elif extension == "subscribe-extranonce":
                self.extranonce_subscribed = True
                result["subscribe-extranonce"] = True
            else:
                result[extension[:64]] = False
        self.send_result(msg_id, result)

    def suggest_difficulty(self, msg_id: Any, params: list) -> None:
        if len(params) != 1:
            raise StratumFault(StratumError.OTHER, "suggest_difficulty takes one number")
        try:
            value = float(check_difficulty(params[0]))
        except (BadDifficulty, OverflowError):
            raise StratumFault(StratumError.OTHER, "difficulty must be a finite positive number") from None
        self.set_difficulty(tidy(value) if value >= 1e-12 else value)
        self.send_result(msg_id, True)

    def extranonce_subscribe(self, msg_id: Any, params: list) -> None:
        self.extranonce_subscribed = True
        self.send_result(msg_id, True)

    def get_transactions(self, msg_id: Any, params: list) -> None:
        if not self.server.config.get_transactions:
            raise StratumFault(StratumError.OTHER, "mining.get_transactions is disabled on this pool")
        if not self.workers:
            raise _fault(Reject.UNAUTHORIZED)
        job_id = params[0] if params else None
        if job_id is None:
            job = self.server.current_job
        else:
            sent = self.state.jobs.get(job_id) if type(job_id) is str else None
            job = self.server.validator.jobs.get(sent[0]) if sent else None
        if job is None:
            raise _fault(Reject.JOB_NOT_FOUND)
        self.send_result(msg_id, [tx.hex() for tx in job.template.tx_data])

    def ping(self, msg_id: Any, params: list) -> None:
        self.send_result(msg_id, "pong")


def _password_difficulty(password: str) -> float | None:
    """``d=<difficulty>`` among comma-separated password options; None when absent or unusable."""
    for option in password.split(","):
        key, _, value = option.strip().partition("=")
        if key.strip().lower() == "d" and value:
            try:
                number = float(value)
            except ValueError:
                return None
            if math.isfinite(number) and number > 0:
                return number
            return None
    return None


HANDLERS = {
    "mining.subscribe": Session.subscribe,
    "mining.authorize": Session.authorize,
    "mining.submit": Session.submit,
    "mining.configure": Session.configure,
    "mining.suggest_difficulty": Session.suggest_difficulty,
    "mining.extranonce.subscribe": Session.extranonce_subscribe,
    "mining.get_transactions": Session.get_transactions,
    "mining.ping": Session.ping,
}
