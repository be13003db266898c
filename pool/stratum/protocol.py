"""Bytes to messages: newline framing with a hard line limit and a bounded send buffer.

The protocol knows nothing of Stratum methods; it hands complete lines to its session and
sends what the session gives it: queued, and written once the loop has handled what it read in
the current iteration, so the answers to a burst of submits go out back to back.  A line longer
than the limit, or a peer that does not read what it is sent, ends the connection.

A connection has at most ``stratum.max_requests_in_flight`` requests read but not yet answered
(``session.pending``): at the bound the protocol stops reading from the socket and keeps the
bytes it has not handed over; it reads again once half of them are answered.  A line too long is
answered, then the connection is half-closed and what the peer still sends is read and thrown
away until its end (or ``LINGER_S``), so that the peer reads the reason rather than a reset.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pool.config import PortConfig

logger = logging.getLogger(__name__)

LINGER_S = 2.0  # after a last answer and our FIN: how long the peer's remaining bytes are drained


class ConnectionHost(Protocol):
    """What a connection asks of the server that accepted it (`pool.stratum.server.StratumServer`)."""
    config: Any
    stats: Any

    def open_session(self, protocol: StratumProtocol) -> Any: ...
    def close_session(self, session: Any) -> None: ...
    def write_soon(self, protocol: StratumProtocol) -> None: ...
    def log_once(self, key: str, message: str, interval_s: float = 60.0) -> None: ...


class StratumProtocol(asyncio.Protocol):
    __slots__ = ("server", "port", "transport", "session", "_buffer", "max_line", "send_limit", "peer_ip", "fd",
                 "_outgoing", "max_in_flight", "resume_at", "_paused", "_held", "_linger")

    def __init__(self, server: ConnectionHost, port: PortConfig) -> None:
        self.server = server
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.session = None
        self._buffer = b""
        self.max_line = server.config.max_line_bytes
        self.send_limit = server.config.send_buffer_bytes
        self.peer_ip = ""
        self.fd = -1  # the socket's descriptor, for the broadcast's direct writes (see can_send_direct)
        self._outgoing: bytes | list[bytes] | None = None  # sent during this loop iteration, written at its end
        self.max_in_flight = server.config.max_requests_in_flight
        self.resume_at = self.max_in_flight // 2  # answered down to this many: reading resumes
        self._paused = False  # reading paused at max_in_flight
        self._held = b""  # read while at the bound, not handed to the session yet
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else "?"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.fd = sock.fileno()
            except OSError:
                pass
        # Pause reading from the peer (not our writing) when the kernel queue backs up.
        self.transport.set_write_buffer_limits(high=max(self.send_limit // 2, 4096))
        self.session = self.server.open_session(self)
        if self.session is None:  # refused: cap reached or banned
            transport.abort()

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:  # refused, or lingering after a last answer: thrown away
            return
        if self._paused:  # a transport may deliver what it had read before it paused
            self._held += data
            return
        if not self._buffer:
            # The usual case: one whole request, ending the data.  orjson takes the line with its
            # newline, so it is handed over without slicing.
            end = data.find(b"\n")
            if end == len(data) - 1 and end <= self.max_line and data[0] == 123:  # b"{": not blank
                session.handle_line(data)
                if session.pending >= self.max_in_flight:
                    self._pause(b"")
                return
        buffer = self._buffer + data if self._buffer else data
        start = 0
        max_in_flight = self.max_in_flight
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end - start > self.max_line:
                self._too_long()
                return
            line = buffer[start:end]
            start = end + 1
            if line.strip():
                session.handle_line(line)
                if self.transport is None or self.transport.is_closing():
                    return
                if session.pending >= max_in_flight:
                    self._pause(buffer[start:])
                    return
        rest = buffer[start:]
        if len(rest) > self.max_line:
            self._too_long()
            return
        self._buffer = rest

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._ending()
        session, self.session = self.session, None
        self._buffer = b""
        self._outgoing = None
        self.fd = -1
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if session is not None:
            self.server.close_session(session)
        self.transport = None

    def pause_writing(self) -> None:
        # The peer is not reading.  Keep what fits in the send limit, drop the peer past it.
        self._check_send_buffer()

    def resume_writing(self) -> None:
        pass

    # -- used by the session -----------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue bytes; they are written when the loop has handled what it read in this iteration
        (all the answers of a burst then go out back to back: fewer wake-ups on both sides)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        outgoing = self._outgoing
        if outgoing is None:  # the usual case, one answer per iteration: the bytes alone, no list
            self._outgoing = data
            self.server.write_soon(self)
        elif type(outgoing) is not list:
            self._outgoing = [outgoing, data]
        else:
            outgoing.append(data)

    def flush(self) -> None:
        """Write what was queued (the server calls this once per loop iteration, and close does)."""
        outgoing, self._outgoing = self._outgoing, None
        transport = self.transport
        if outgoing is None or transport is None or transport.is_closing():
            return
        transport.write(b"".join(outgoing) if type(outgoing) is list else outgoing)
        if transport.get_write_buffer_size() > self.send_limit:
            self._check_send_buffer()

    def can_send_direct(self) -> bool:
        """Whether bytes may go straight to the socket: open, and nothing queued here or in the
        transport (so they cannot overtake earlier ones)."""
        transport = self.transport
        return (self.fd >= 0 and self._outgoing is None and transport is not None and not transport.is_closing()
                and not transport.get_write_buffer_size())

    def close(self, *, abort: bool = False) -> None:
        self._ending()
        if self._outgoing is not None and not abort:
            self.flush()
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def _check_send_buffer(self) -> None:
        if self.transport is not None and self.transport.get_write_buffer_size() > self.send_limit:
            self.server.log_once(self.peer_ip, "dropping a client that does not read (send buffer full)")
            self.server.stats["dropped_slow_reader"] += 1
            self._ending()
            self.transport.abort()

    # -- requests in flight --------------------------------------------------------------

    def _pause(self, rest: bytes) -> None:
        """At the bound: stop reading; ``rest`` (what was read and not handed over) waits here."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._paused = True
        self._held = rest
        self._buffer = b""
        self.server.stats["reading_paused"] += 1
        transport.pause_reading()

    def resume_reading(self) -> None:
        """Enough answers went out: hand over what was held, then read from the socket again."""
        if not self._paused or self.session is None or self.session.closing:
            return
        self._paused = False
        held, self._held = self._held, b""
        if held:
            self.data_received(held)  # may reach the bound again
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _ending(self) -> None:
        """The connection is ending: its queued requests are dropped, none is judged or answered."""
        self._held = b""
        session = self.session
        if session is not None and not session.closing:
            session.closing = True
            dropped = session.drop_queued_lines()
            if dropped:
                self.server.stats["dropped_requests"] += dropped

    def _too_long(self) -> None:
        self.server.stats["dropped_long_line"] += 1
        self.server.log_once(self.peer_ip, f"line longer than {self.max_line} bytes; disconnecting")
        if self.session is not None:
            self.session.send_error(None, 20, "line too long")
        self._buffer = b""
        self.close_after_reply()

    def close_after_reply(self) -> None:
        """Send what is queued, then our FIN (the peer reads the answer, then its end); read and throw
        away what the peer still sends until it closes too, or for ``LINGER_S`` at most. Closing a
        socket with unread bytes would send the peer a reset, which can destroy the answer unread."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._ending()
        self.flush()
        session, self.session = self.session, None  # data_received throws away from now on
        if session is not None:
            self.server.close_session(session)
        self.transport = None  # nothing more is sent
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._paused = False
        transport.resume_reading()  # reading on, to the peer's end (it may have been paused at the bound)
        self._linger = asyncio.get_running_loop().call_later(LINGER_S, transport.abort)
