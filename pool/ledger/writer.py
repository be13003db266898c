"""The share ledger written by a process of its own, so that the pool's event loop does not encode rows.

`LedgerProcess` is the Recorder the pool runs. ``record_share`` appends the record to a list. Every
``flush_interval_s`` seconds or ``batch_size`` shares, the batch becomes plain tuples (one C call per
record), is marshalled and written down a pipe to the writer (``python -m pool.ledger.writer``), which
owns the PostgreSQL connections and runs `PostgresRecorder`'s batch write: COPY and the idempotent insert,
or the fsync'd spill file, and its automatic replay. Block records go down the same pipe at once.

The pool keeps every batch and block until the writer acknowledges it, which the writer does only
after it committed it or fsync'd it to the spill. So the guarantees are those of `PostgresRecorder`:

* the writer dies (or hangs longer than ``write_timeout_s`` + ``WRITER_GRACE_S``): the pool appends every
  unacknowledged batch to the spill itself, starts a new writer, and that writer replays the spill
  (batches that had committed after all are stored once: share ids are unique);
* SIGTERM (`stop`): the pool sends what it holds, tells the writer to stop and waits for it;
* SIGKILL of the pool: the writer reads the end of its input, writes what it was sent and exits; what
  was lost is the pool's buffer, at most one flush interval of shares (or ``batch_size`` shares).

The writer ignores SIGINT and SIGTERM (a signal to the whole process group must not end it before the
pool's last batch); it ends when its input ends.

Pipe format: pool -> writer, frames of a 4-byte big-endian length and ``marshal.dumps((kind, seq,
payload))`` (``config``, ``shares``, ``block``, ``stop``); writer -> pool, one JSON line per
acknowledgement or report: ``{"ack": seq or null, "healthy": bool, "stats": {...}}``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from pool.ledger.recorder import BlockRecord, ShareRecord, share_fields
from pool.ledger.store import PostgresRecorder, SpillFile, block_entry, share_row_of_fields, shares_entry

logger = logging.getLogger(__name__)

WRITER_GRACE_S = 30.0  # beyond the write timeout, before an unanswering writer is replaced
MARSHAL_VERSION = 4
_PLAIN = (str, int, float, bool, type(None))
_STAT_NAMES = ("shares_written", "shares_duplicate", "batches_spilled", "shares_spilled", "spill_replays",
               "blocks_written", "blocks_spilled", "write_errors")


def _plain(fields: tuple) -> tuple:
    """A record's fields made marshallable (subclasses of str or int from elsewhere become plain)."""
    return tuple(value if type(value) in _PLAIN else
                 (float(value) if isinstance(value, float) else int(value) if isinstance(value, int) else str(value))
                 for value in fields)


class LedgerProcess:
    """The Recorder whose batches a writer process stores (see the module docstring)."""

    def __init__(self, dsn: str, pool_name: str, spill_dir: str | Path, *, flush_interval_s: float = 1.0,
                 batch_size: int = 5000, write_timeout_s: float = 10.0, replay_interval_s: float = 2.0,
                 restart_delay_s: float = 1.0, log_level: str = "WARNING") -> None:
        self.dsn = dsn
        self.pool_name = pool_name
        self.spill = SpillFile(Path(spill_dir))
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.write_timeout_s = write_timeout_s
        self.replay_interval_s = replay_interval_s
        self.restart_delay_s = restart_delay_s
        self.log_level = log_level
        self.healthy = True
        self._buffer: list[ShareRecord] = []
        self._unacked: dict[int, tuple[str, Any, float]] = {}  # seq -> (kind, payload, sent at)
        self._unacked_shares = 0
        self._sequence = 0
        self._process: asyncio.subprocess.Process | None = None
        self._writer_ready: asyncio.Event = asyncio.Event()
        self._progress = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._supervisor: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self._stopping = False
        self._stats_before: dict[str, int] = dict.fromkeys(_STAT_NAMES, 0)  # of the writers that ended
        self._stats_writer: dict[str, int] = dict.fromkeys(_STAT_NAMES, 0)  # of the writer running
        self._local = {"writer_restarts": 0, "batches_spilled_by_pool": 0, "shares_spilled_by_pool": 0,
                       "blocks_spilled_by_pool": 0}

    # -- Recorder interface ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer and return once it reported (or failed to start: then shares are spilled)."""
        self._stopping = False
        self._supervisor = asyncio.create_task(self._supervise(), name="ledger-writer")
        with contextlib.suppress(TimeoutError):  # a writer slow to come up still gets the batches later
            async with asyncio.timeout(60):
                await self._writer_ready.wait()
        self._flusher = asyncio.create_task(self._flush_loop(), name="ledger-flush")

    async def stop(self) -> None:
        """Send everything, let the writer finish and exit; what it did not acknowledge goes to the spill."""
        self._stopping = True
        self._wakeup.set()
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._send_buffer()
        process = self._process
        if process is not None:
            self._tell_to_stop(process)
        if self._supervisor is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._supervisor), self.write_timeout_s + WRITER_GRACE_S)
            except TimeoutError:
                logger.error("ALERT: the ledger writer did not finish in time; killing it")
                if process is not None and process.returncode is None:
                    process.kill()
                await self._supervisor
            self._supervisor = None
        self._spill_unacked()  # none, unless the writer was away at the very end

    def record_share(self, share: ShareRecord) -> None:
        buffer = self._buffer
        buffer.append(share)
        if len(buffer) >= self.batch_size:
            self._wakeup.set()

    def record_block(self, block: BlockRecord) -> None:
        self._send("block", {name: getattr(block, name) for name in BlockRecord.__slots__})

    @property
    def buffered(self) -> int:
        """Shares not yet committed or spilled (held by the pool or being written)."""
        return len(self._buffer) + self._unacked_shares

    @property
    def stats(self) -> dict[str, int]:
        totals = {name: self._stats_before[name] + self._stats_writer.get(name, 0) for name in _STAT_NAMES}
        totals["batches_spilled"] += self._local["batches_spilled_by_pool"]
        totals["shares_spilled"] += self._local["shares_spilled_by_pool"]
        totals["blocks_spilled"] += self._local["blocks_spilled_by_pool"]
        return {**totals, **self._local}

    async def flush(self) -> None:
        """Send what is buffered and wait until the writer committed or spilled all of it."""
        await self._send_buffer()
        target = self._sequence
        while any(seq <= target for seq in self._unacked):
            self._progress.clear()
            await self._progress.wait()

    # -- sending ---------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._stopping:
            try:
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self._send_buffer()
                self._check_writer()
            except Exception:  # the spill itself failed (disk full?): keep trying, loudly
                logger.exception("ALERT: could not hand shares to the ledger writer")

    async def _send_buffer(self) -> None:
        while self._buffer:
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            try:
                self._send("shares", list(map(share_fields, batch)))
            except OSError:
                self._buffer[:0] = batch  # no writer and the disk failed too: keep them, try again
                raise
            process = self._process
            if process is not None:
                with contextlib.suppress(ConnectionError):  # a writer gone: its batches are spilled
                    await process.stdin.drain()

    def _send(self, kind: str, payload: Any) -> None:
        self._sequence += 1
        seq = self._sequence
        process = self._process
        if process is None or process.returncode is not None or process.stdin.is_closing():
            self._spill_one(kind, payload)  # no writer now: straight to the spill, which the next one replays
            self._progress.set()
            return
        self._unacked[seq] = (kind, payload, time.monotonic())
        if kind == "shares":
            self._unacked_shares += len(payload)
        self._write_frame(process, kind, seq, payload)

    def _tell_to_stop(self, process: asyncio.subprocess.Process) -> None:
        """The writer stores what it was sent, acknowledges it and exits."""
        self._write_frame(process, "stop", 0, None)
        with contextlib.suppress(Exception):
            process.stdin.close()

    @staticmethod
    def _write_frame(process: asyncio.subprocess.Process, kind: str, seq: int, payload: Any) -> None:
        try:
            frame = marshal.dumps((kind, seq, payload), MARSHAL_VERSION)
        except ValueError:
            if kind != "shares":
                raise
            frame = marshal.dumps((kind, seq, [_plain(fields) for fields in payload]), MARSHAL_VERSION)
        try:
            process.stdin.write(len(frame).to_bytes(4, "big") + frame)
        except (ConnectionError, RuntimeError):  # the writer is gone: its batches are spilled at its end
            pass

    def _check_writer(self) -> None:
        """A writer that has not answered for longer than any write may take is replaced."""
        if not self._unacked or self._process is None:
            return
        oldest = min(sent for _, _, sent in self._unacked.values())
        if time.monotonic() - oldest > self.write_timeout_s + WRITER_GRACE_S and self._process.returncode is None:
            logger.error("ALERT: the ledger writer has not answered for %.0f s; replacing it",
                         time.monotonic() - oldest)
            self._process.kill()

    # -- the writer process ----------------------------------------------------------------

    async def _supervise(self) -> None:
        """Run the writer; when it ends, spill what it did not acknowledge and start another."""
        while True:
            try:
                process = await self._spawn()
            except Exception:
                logger.exception("ALERT: cannot start the ledger writer; shares go to the spill meanwhile")
                process = None
            if process is not None:
                self._process = process
                if self._stopping:  # stop() came while this writer was starting
                    self._tell_to_stop(process)
                await self._read_acks(process)
                self._process = None  # from here on, _send spills directly
                self._spill_unacked()
                returncode = await process.wait()
                self._stats_before = {name: self._stats_before[name] + self._stats_writer.get(name, 0)
                                      for name in _STAT_NAMES}
                self._stats_writer = dict.fromkeys(_STAT_NAMES, 0)
            else:
                returncode = None
            self._writer_ready.set()
            if self._stopping:
                return
            self.healthy = False
            self._local["writer_restarts"] += 1
            logger.error("ALERT: the ledger writer ended (exit code %s); starting another", returncode)
            await asyncio.sleep(self.restart_delay_s)
            if self._stopping:
                return

    async def _spawn(self) -> asyncio.subprocess.Process:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds pool/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool.ledger.writer",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=1 << 20,
            start_new_session=True,  # a terminal's Ctrl-C is the pool's to handle
        )
        config = {  # on the pipe, not the command line: the DSN may hold a password
            "dsn": self.dsn, "pool_name": self.pool_name, "spill_dir": str(self.spill.directory),
            "flush_interval_s": self.flush_interval_s, "batch_size": self.batch_size,
            "write_timeout_s": self.write_timeout_s, "replay_interval_s": self.replay_interval_s,
            "log_level": self.log_level,
        }
        self._write_frame(process, "config", 0, config)
        return process

    async def _read_acks(self, process: asyncio.subprocess.Process) -> None:
        while True:
            try:
                line = await process.stdout.readline()
            except (ValueError, ConnectionError):  # an absurd line: the writer is broken
                process.kill()
                return
            if not line:
                return
            try:
                message = orjson.loads(line)
                seq = message.get("ack")
                stats = message.get("stats")
            except (orjson.JSONDecodeError, AttributeError):
                logger.error("ledger writer said something unexpected: %r", line[:200])
                continue
            self._writer_ready.set()  # its first report: it is up
            if type(stats) is dict:
                self._stats_writer = {name: int(stats.get(name, 0)) for name in _STAT_NAMES}
            if type(message.get("healthy")) is bool:
                self.healthy = message["healthy"]
            entry = self._unacked.pop(seq, None) if type(seq) is int else None
            if entry is not None and entry[0] == "shares":
                self._unacked_shares -= len(entry[1])
            self._progress.set()

    def _spill_unacked(self) -> None:
        """Every batch and block the writer did not acknowledge, to the spill, in the order sent."""
        for seq in sorted(self._unacked):
            kind, payload, _ = self._unacked[seq]
            self._spill_one(kind, payload)  # an OSError leaves the rest in _unacked for the next attempt
            del self._unacked[seq]
            if kind == "shares":
                self._unacked_shares -= len(payload)
        self._progress.set()

    def _spill_one(self, kind: str, payload: Any) -> None:
        if kind == "shares":
            self.spill.append(shares_entry([share_row_of_fields(fields, self.pool_name) for fields in payload]))
            self._local["batches_spilled_by_pool"] += 1
            self._local["shares_spilled_by_pool"] += len(payload)
        elif kind == "block":
            self.spill.append(block_entry(BlockRecord(**payload)))
            self._local["blocks_spilled_by_pool"] += 1
            logger.error("ALERT: block %s at height %s kept in the spill file until the ledger writer is back",
                         payload.get("hash"), payload.get("height"))


# == the writer process =======================================================================


async def _read_frame(reader: asyncio.StreamReader) -> tuple | None:
    try:
        size = int.from_bytes(await reader.readexactly(4), "big")
        return marshal.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


def _answer(seq: int | None, recorder: PostgresRecorder) -> None:
    line = orjson.dumps({"ack": seq, "healthy": recorder.healthy, "stats": recorder.stats}) + b"\n"
    try:
        os.write(1, line)
    except OSError:  # the pool is gone (killed): go on writing what it sent
        pass


async def writer_main() -> int:
    from pool.ledger.database import connect_pool

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    first = await _read_frame(reader)
    if first is None or first[0] != "config":
        return 2
    config = first[2]
    logging.basicConfig(level=getattr(logging, str(config.get("log_level", "WARNING")).upper(), logging.WARNING),
                        format="[ledger writer] %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    pool_name = config["pool_name"]
    # No connection at start: PostgreSQL may be away, and then batches go to the spill.
    db = await connect_pool(config["dsn"], min_size=0, max_size=2, connect_timeout=config["write_timeout_s"])
    recorder = PostgresRecorder(db, pool_name, config["spill_dir"], flush_interval_s=config["flush_interval_s"],
                                batch_size=config["batch_size"], write_timeout_s=config["write_timeout_s"],
                                replay_interval_s=config["replay_interval_s"])
    await recorder.start()
    _answer(None, recorder)  # up and running
    frames: asyncio.Queue = asyncio.Queue()

    async def read_all() -> None:
        while True:
            frame = await _read_frame(reader)
            frames.put_nowait(frame)
            if frame is None:
                return

    async def report() -> None:  # health and counters, also while no batch comes
        while True:
            await asyncio.sleep(min(1.0, config["flush_interval_s"]))
            _answer(None, recorder)

    reading = asyncio.ensure_future(read_all())
    reporting = asyncio.ensure_future(report())
    try:
        while True:
            frame = await frames.get()
            if frame is None:
                logger.info("the pool closed the pipe: stopping after what it sent")
                break
            kind, seq, payload = frame
            if kind == "stop":
                break
            while True:
                try:
                    if kind == "shares":
                        await recorder.write_fields(payload)
                    elif kind == "block":
                        await recorder.write_block(BlockRecord(**payload))
                    break
                except OSError:  # PostgreSQL away and the spill failed too (disk full?): keep trying
                    logger.exception("ALERT: could not store or spill a batch; trying again")
                    await asyncio.sleep(1.0)
            _answer(seq, recorder)
    finally:
        reading.cancel()
        reporting.cancel()
        await recorder.stop()
        await db.close()
    _answer(None, recorder)
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when the writer ends
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(writer_main())
    return uvloop.run(writer_main())


if __name__ == "__main__":
    sys.exit(main())
