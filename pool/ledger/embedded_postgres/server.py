"""`PgServer`: one PostgreSQL server (postmaster) with its own data directory, listening on 127.0.0.1.

It listens on 127.0.0.1 only, on a port picked at start, with its Unix socket inside the data
directory (0700). TCP logins need the superuser password, generated at ``initdb`` and kept in
``<base_dir>/superuser.password``; the socket trusts local logins, which only the directory's owner
(and root) can reach.

The postmaster runs in the foreground of its own process group, so `stop` can shut it down the way
``pg_ctl`` does: SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL for it and its children.
`stop` is idempotent and registered with atexit; a Python process that is killed outright (SIGKILL)
cannot stop it, so it would be left running.

The methods are synchronous (starting takes about a second); from a running event loop call
``await asyncio.to_thread(server.start)``. `create_database` and `drop_database` use asyncpg on a
thread of their own, so they work from inside an event loop too.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from pool.ledger.embedded_postgres.prerequisites import (
    PgServerError,
    check_traversable,
    find_postgres_bindir,
    server_user,
)
from pool.ledger.embedded_postgres.table_lock import TableLock
from pool.localnet import free_loopback_port

logger = logging.getLogger(__name__)

#: Settings for a throw-away server (tests): nothing waits for the disk. A crash loses data.
NON_DURABLE_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
_PORT_ATTEMPTS = 3

T = TypeVar("T")


def _run_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` to completion on a fresh event loop in another thread (works inside a loop too)."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgserver") as pool:
        return pool.submit(asyncio.run, main()).result()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgServer:
    """One PostgreSQL server (postmaster) with its own data directory, on 127.0.0.1.

    `base_dir` None means a fresh temporary directory, removed on `stop` unless `keep_dir`; a given
    `base_dir` is never removed, and its data (and password) are reused on the next start. Layout:
    ``<base_dir>/data`` (PGDATA, also the socket directory), ``postgres.log``, ``superuser.password``.
    `durable` False turns fsync off (tests). `settings` are extra ``postgres -c`` settings.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        database: str = "quarry",
        user: str = "quarry",
        port: int | None = None,
        durable: bool = True,
        keep_dir: bool = False,
        bindir: str | os.PathLike[str] | None = None,
        run_as: str | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        make_traversable: bool = False,
    ) -> None:
        self.make_traversable = make_traversable
        self.database = database
        self.user = user
        self.durable = durable
        self.keep_dir = keep_dir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.settings = dict(settings or {})
        self._requested_port = port
        self._bindir_option = bindir
        self._run_as_option = run_as
        self._given_base_dir = Path(base_dir).resolve() if base_dir is not None else None
        self.base_dir: Path | None = None
        self.bindir: Path | None = None
        self.port: int | None = None
        self.password: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # how long the last start or resume took
        self._log: IO[bytes] | None = None
        self._uid: int | None = None  # set when running as root: the server's user and group
        self._gid: int | None = None
        self._started = False  # between start() and stop(), paused or not

    # -- paths -------------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._require_base_dir() / "data"

    @property
    def log_path(self) -> Path:
        return self._require_base_dir() / "postgres.log"

    @property
    def password_path(self) -> Path:
        return self._require_base_dir() / "superuser.password"

    def _require_base_dir(self) -> Path:
        if self.base_dir is None:
            raise PgServerError("the server has not been started")
        return self.base_dir

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def dsn_for(self, database: str) -> str:
        if self.port is None or self.password is None:
            raise PgServerError("the server has not been started")
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """The DSN of the server's database (`database`)."""
        return self.dsn_for(self.database)

    def log_tail(self, lines: int = 30) -> str:
        """The end of postgres.log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except (OSError, PgServerError):
            return ""
        return f"--- {self.log_path} ---\n" + "\n".join(text)

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """initdb if needed, start the server, wait until it accepts connections, create `database`.
        A failure stops everything (and removes a temporary directory)."""
        if self._started:
            raise PgServerError("server already started")
        self.bindir = find_postgres_bindir(self._bindir_option)
        self._started = True
        atexit.register(self.stop)
        began = time.monotonic()
        try:
            if self._given_base_dir is not None:
                self._given_base_dir.mkdir(parents=True, exist_ok=True)
                self.base_dir = self._given_base_dir
            else:
                self.base_dir = Path(tempfile.mkdtemp(prefix="quarry-pg-"))
            self._choose_user()
            fresh = not (self.data_dir / "PG_VERSION").exists()
            if fresh:
                self._initdb()
            else:
                self._read_password()
            self._launch_on_free_port()
            self._ensure_database(self.database)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        logger.info(
            "PostgreSQL (%s) up in %.2fs on 127.0.0.1:%d, data in %s",
            self.bindir, self.start_seconds, self.port, self.data_dir,
        )
        return self

    def stop(self) -> None:
        """Shut the server down (fast, then immediate, then kill); remove a temporary directory.
        Idempotent."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        self._shutdown()
        if self.base_dir is not None and self._given_base_dir is None and not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        elif self.base_dir is not None:
            logger.info("PostgreSQL data kept in %s", self.base_dir)

    def pause(self) -> None:
        """Fast shutdown, keeping the data and the port for `resume`. Clients see the server go away."""
        if not self._started:
            raise PgServerError("the server has not been started")
        self._shutdown()

    def resume(self) -> None:
        """Start the paused server again on the same port with the same data; wait until it is ready."""
        if not self._started:
            raise PgServerError("the server has not been started")
        if self.running:
            return
        began = time.monotonic()
        assert self.port is not None
        self._launch(self.port)
        try:
            self._wait_ready()
        except PgServerError:
            self._shutdown()
            raise
        self.start_seconds = time.monotonic() - began

    # -- setup ----------------------------------------------------------------------------------------

    def _choose_user(self) -> None:
        """As root: the unprivileged user to run as, owning the base and data directories."""
        if os.geteuid() != 0:
            return
        entry = server_user(self._run_as_option, self.data_dir)
        self._uid, self._gid = entry.pw_uid, entry.pw_gid
        base_dir = self._require_base_dir()
        os.chown(base_dir, self._uid, self._gid)
        os.chmod(base_dir, 0o700)
        check_traversable(base_dir, entry, fix=self.make_traversable)
        logger.debug("running PostgreSQL as %s (uid %d)", entry.pw_name, entry.pw_uid)

    def _initdb(self) -> None:
        data_dir = self.data_dir
        data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(data_dir)
        self.password = secrets.token_urlsafe(24)
        # initdb reads the password from a file (it never appears on a command line); the file goes
        # away once initdb has read it, and the password is kept for later starts beside the data.
        password_file = self._require_base_dir() / "initdb.pwfile"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        self._chown(password_file)
        command = [
            str(self._binary("initdb")),
            "--pgdata", str(data_dir),
            "--username", self.user,
            "--pwfile", str(password_file),
            "--auth-host", "scram-sha-256",
            "--auth-local", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
        ]
        if not self.durable:
            command.append("--no-sync")
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, cwd=self.base_dir,
                env=self._environment(), timeout=self.startup_timeout, **self._user_kwargs(),
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise PgServerError(f"initdb failed with code {result.returncode}:\n{output}")
        self.password_path.write_text(self.password + "\n")
        self.password_path.chmod(0o600)

    def _read_password(self) -> None:
        try:
            self.password = self.password_path.read_text().strip()
        except OSError as error:
            raise PgServerError(
                f"{self.data_dir} holds a cluster but its password file is unreadable: {error}"
            ) from None

    def _launch_on_free_port(self) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = self._requested_port or free_loopback_port()
            self.port = port
            self._launch(port)
            try:
                self._wait_ready()
                return
            except PgServerError:
                self._shutdown()
                port_taken = "could not bind" in self.log_tail(10) or "already in use" in self.log_tail(10)
                if self._requested_port or not port_taken or attempt == _PORT_ATTEMPTS:
                    raise
                logger.info("port %d was taken before PostgreSQL could bind it; trying another", port)

    def _launch(self, port: int) -> None:
        data_dir = self.data_dir
        socket_dir = str(data_dir)
        if len(socket_dir) + len(f"/.s.PGSQL.{port}") > _UNIX_SOCKET_PATH_MAX:
            socket_dir = ""  # too long for a Unix socket path: TCP only
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": socket_dir,
            "unix_socket_permissions": "0700",
            "logging_collector": "off",
            **({} if self.durable else NON_DURABLE_SETTINGS),
            **self.settings,
        }
        command = [str(self._binary("postgres")), "-D", str(data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - open until the server stops
        logger.debug("starting PostgreSQL: %s", " ".join(command))
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=self._environment(),
            start_new_session=True,  # its own process group: a Ctrl-C for the pool does not reach it
            **self._user_kwargs(),
        )

    def _wait_ready(self) -> None:
        """Wait until postmaster.pid, written by our postmaster, says "ready" (what pg_ctl -w does)."""
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            if self.process.poll() is not None:
                raise PgServerError(
                    f"postgres exited with code {self.process.returncode}\n{self.log_tail()}"
                )
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[0].strip() == str(self.process.pid) and lines[7].strip() == "ready":
                return
            if time.monotonic() > deadline:
                raise PgServerError(
                    f"postgres did not become ready within {self.startup_timeout:g}s\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _shutdown(self) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL for it and its children."""
        process = self.process
        if process is not None:
            steps = ((signal.SIGINT, self.stop_timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0))
            for signum, timeout in steps:
                if process.poll() is not None:
                    break
                if signum == signal.SIGKILL:
                    logger.warning("PostgreSQL did not shut down; killing it and its children")
                    _kill_tree(process.pid)
                else:
                    process.send_signal(signum)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    continue
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _ensure_database(self, name: str) -> None:
        if name in ("postgres", "template0", "template1"):
            return
        self.create_database(name, exist_ok=True)

    # -- helpers ----------------------------------------------------------------------------------------

    def _binary(self, name: str) -> Path:
        assert self.bindir is not None
        return self.bindir / name

    def _chown(self, path: Path) -> None:
        if self._uid is not None and self._gid is not None:
            os.chown(path, self._uid, self._gid)

    def _user_kwargs(self) -> dict[str, Any]:
        if self._uid is None:
            return {}
        return {"user": self._uid, "group": self._gid, "extra_groups": []}

    def _environment(self) -> dict[str, str]:
        """The caller's environment without libpq's PG* variables, in the C locale."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self._uid is not None:
            env["HOME"] = str(self._require_base_dir())
        return env

    # -- databases and locks ----------------------------------------------------------------------------

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """Create database `name` (owned by the superuser); its DSN."""
        import asyncpg

        async def create() -> None:
            connection = await asyncpg.connect(self.dsn_for("postgres"), timeout=self.startup_timeout)
            try:
                exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
                if exists and not exist_ok:
                    raise PgServerError(f"database {name!r} already exists")
                if not exists:
                    await connection.execute(f"CREATE DATABASE {_quote_identifier(name)}")
            finally:
                await connection.close()

        _run_coroutine(create)
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting its clients."""
        import asyncpg

        async def drop() -> None:
            connection = await asyncpg.connect(self.dsn_for("postgres"), timeout=self.startup_timeout)
            try:
                await connection.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")
            finally:
                await connection.close()

        _run_coroutine(drop)

    def lock_table(
        self, table: str = "shares", *, database: str | None = None, mode: str = "ACCESS EXCLUSIVE"
    ) -> TableLock:
        """A `TableLock` on `table` in `database` (default: the server's); use ``async with``."""
        return TableLock(self.dsn_for(database or self.database), table, mode=mode)


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL the postmaster, its process group and its children (which run in sessions of their
    own: they would exit by themselves on noticing the postmaster gone, but not at once)."""
    children = _descendants(pid)
    for kill, target in [(os.killpg, pid), (os.kill, pid)] + [(os.kill, child) for child in children]:
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
