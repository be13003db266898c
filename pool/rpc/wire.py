"""The JSON-RPC of Litecoin Core / Bitcoin Core daemons: its errors, its JSON, the daemons' endpoints.

Every error of a call is a `DaemonError`; its subclasses tell why:

* `DaemonUnreachable` -- no usable answer: connection refused or reset, timeout, HTTP 5xx without a
  JSON body (for example "Work queue depth exceeded"). `DaemonTimeout` is the timeout case.
* `DaemonWarmingUp` -- the daemon answered -28 (loading block index, verifying blocks, ...).
* `DaemonAuthError` -- HTTP 401/403: wrong rpcuser/rpcpassword or rpcallowip. Not retried.
* plain `DaemonError` -- the daemon answered with a JSON-RPC error; `.code` holds its code.

Amounts are money: JSON numbers with a fraction are parsed as `decimal.Decimal`, never float.
Decimal parameters are sent as decimal strings, which Core accepts wherever it takes an amount.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self

from yarl import URL

from payouts.wallet import WalletError, WalletUnreachable

RPC_IN_WARMUP = -28
RPC_METHOD_NOT_FOUND = -32601


# --------------------------------------------------------------------------------------------------
# Errors


class DaemonError(WalletError):
    """An RPC call failed. `code` is the JSON-RPC error code when the daemon sent one."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        method: str | None = None,
        url: str | None = None,
        http_status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.method = method
        self.url = url
        self.http_status = http_status
        self.attempts = attempts

    def __str__(self) -> str:
        where = " ".join(part for part in (self.method, f"at {self.url}" if self.url else None) if part)
        code = f" (code {self.code})" if self.code is not None else ""
        return f"{where}: {self.message}{code}" if where else f"{self.message}{code}"

    def _with_attempts(self, attempts: int, elapsed: float) -> Self:
        """A copy of this error saying how long we tried."""
        return type(self)(
            f"{self.message} (gave up after {attempts} attempts in {elapsed:.2f}s)",
            code=self.code,
            method=self.method,
            url=self.url,
            http_status=self.http_status,
            attempts=attempts,
        )


class DaemonUnreachable(DaemonError, WalletUnreachable):
    """No usable answer from the daemon (transport failure, timeout, non-JSON HTTP 5xx)."""


class DaemonTimeout(DaemonUnreachable):
    """The daemon did not answer within the request timeout."""


class DaemonWarmingUp(DaemonError):
    """The daemon answered -28: it is starting up and not ready for RPC yet."""


class DaemonAuthError(DaemonError):
    """HTTP 401/403: the daemon refused our credentials or our address."""


# --------------------------------------------------------------------------------------------------
# JSON (amounts are Decimal; payouts.money turns them into integer base units)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount: {value}")
        return format(value, "f")
    raise TypeError(f"cannot send a {type(value).__name__} in a JSON-RPC request")


def encode_json(payload: object) -> bytes:
    """Serialise a JSON-RPC payload. Decimals become decimal strings (Core accepts those as amounts)."""
    return json.dumps(payload, default=_json_default, separators=(",", ":")).encode()


def decode_json(raw: bytes | str) -> Any:
    """Parse a daemon answer; numbers with a fraction or exponent become Decimal."""
    return json.loads(raw, parse_float=Decimal)


def rpc_error_from_reply(
    error: object, *, method: str | None, url: str | None, http_status: int | None = None
) -> DaemonError:
    """Build the exception for the ``error`` member of a JSON-RPC reply."""
    if isinstance(error, dict):
        code = error.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        message = str(error.get("message", error))
    else:
        code, message = None, str(error)
    kind = DaemonWarmingUp if code == RPC_IN_WARMUP else DaemonError
    return kind(message, code=code, method=method, url=url, http_status=http_status)


# --------------------------------------------------------------------------------------------------
# Endpoints


@dataclass(frozen=True)
class DaemonEndpoint:
    """One daemon: its URL without credentials, plus the credentials."""

    url: str
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str, *, user: str | None = None, password: str | None = None) -> DaemonEndpoint:
        """Accept ``http://user:pass@host:port/path``; explicit user/password override the URL's."""
        parsed = URL(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"daemon URL must start with http:// or https://: {cls._redact(parsed)}")
        if not parsed.host:
            raise ValueError(f"daemon URL has no host: {cls._redact(parsed)}")
        bare = parsed.with_user(None)
        bare = bare.with_path(bare.path or "/")  # "http://h:1" -> "http://h:1/"
        return cls(
            url=str(bare),
            user=user if user is not None else (parsed.user or ""),
            password=password if password is not None else (parsed.password or ""),
        )

    @staticmethod
    def _redact(url: URL) -> str:
        return str(url.with_password(None)) if url.password else str(url)

    @property
    def logged_url(self) -> str:
        """The URL with the user name but never the password, for logs and errors."""
        url = URL(self.url)
        return str(url.with_user(self.user)) if self.user else str(url)

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers for a JSON-RPC POST, with Basic authorization when we have credentials."""
        headers = {"Content-Type": "application/json"}
        if self.user or self.password:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return headers
