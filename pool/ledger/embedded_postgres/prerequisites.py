"""What the embedded PostgreSQL needs from the machine: its server binaries, and, run as root, a user to
run as who can reach its directory.

The server runs from the Debian/Ubuntu binaries (``/usr/lib/postgresql/<version>/bin``, the newest
version first) or whatever ``initdb`` on PATH or $QUARRY_PG_BINDIR points at; without them,
`PostgresNotFound` says how to install them.

``initdb`` and ``postgres`` refuse to run as root. Run as root, the server runs as the ``postgres``
user if there is one, else as ``nobody`` (or as `run_as`), and its directory belongs to that user;
the directory's parents must let that user through (``/tmp`` does).
"""

from __future__ import annotations

import glob
import grp
import logging
import os
import pwd
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin or on "
    "PATH. Install them with `apt-get install -y postgresql` on Debian/Ubuntu (run `apt-get update` "
    "first), or point the QUARRY_PG_BINDIR environment variable at the directory holding them."
)
BINDIR_ENV = "QUARRY_PG_BINDIR"
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"


class PgServerError(RuntimeError):
    """The PostgreSQL server could not be set up, started or stopped."""


class PostgresNotFound(PgServerError):
    """No PostgreSQL server binaries; the message says how to install them."""


def find_postgres_bindir(bindir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``initdb`` and ``postgres``: `bindir`, else $QUARRY_PG_BINDIR, else the
    directory of ``initdb`` on PATH, else the newest ``/usr/lib/postgresql/<version>/bin``."""
    if bindir is not None or os.environ.get(BINDIR_ENV):
        candidates = [Path(bindir if bindir is not None else os.environ[BINDIR_ENV])]
    else:
        candidates = []
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
        candidates += sorted(
            (Path(p) for p in glob.glob(DEBIAN_BINDIRS)), key=_version_key, reverse=True
        )
    for candidate in candidates:
        if all(os.access(candidate / name, os.X_OK) for name in ("initdb", "postgres")):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    raise PostgresNotFound(f"{INSTALL_HINT} (looked in: {looked})")


def _version_key(path: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,); unparsable versions sort first."""
    digits = re.findall(r"\d+", path.parent.name)
    return tuple(int(d) for d in digits) or (-1,)


def server_user(run_as: str | None, data_dir: Path) -> pwd.struct_passwd:
    """The unprivileged user a server started by root runs as: `run_as`, else the owner of the cluster
    already in `data_dir`, else ``postgres``, else ``nobody``."""
    if run_as is not None:
        try:
            entry = pwd.getpwnam(run_as)
        except KeyError:
            raise PgServerError(f"run_as: there is no user {run_as!r}") from None
    elif data_dir.exists() and data_dir.stat().st_uid != 0:
        entry = pwd.getpwuid(data_dir.stat().st_uid)  # an existing cluster: its owner
    else:
        entry = _first_user("postgres", "nobody")
    if entry.pw_uid == 0:
        raise PgServerError("PostgreSQL cannot run as root: run_as must name an unprivileged user")
    return entry


def _first_user(*names: str) -> pwd.struct_passwd:
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PgServerError(
        f"running as root, PostgreSQL needs an unprivileged user to run as; none of {names} exists "
        "(pass run_as=...)"
    )


def check_traversable(path: Path, entry: pwd.struct_passwd, *, fix: bool = False) -> None:
    """Raise unless every parent of `path` lets `entry`'s user through (search permission).

    With `fix`, a root-owned parent that is not searchable gets the search bit for others (o+x:
    passing through by name, not listing), which is what a 0700 temporary directory needs."""
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
    for parent in path.parents:
        status = parent.stat()
        if fix and status.st_uid == 0 and not status.st_mode & 0o001:
            os.chmod(parent, status.st_mode | 0o001)
            logger.info("made %s searchable (o+x) so that PostgreSQL can reach %s", parent, path)
            status = parent.stat()
        if status.st_uid == entry.pw_uid:
            allowed = status.st_mode & 0o100
        elif status.st_gid in groups:
            allowed = status.st_mode & 0o010
        else:
            allowed = status.st_mode & 0o001
        if not allowed:
            raise PgServerError(
                f"PostgreSQL runs as {entry.pw_name!r} (initdb and postgres refuse root), which cannot "
                f"reach {path} because {parent} is not searchable for it; use a directory under /tmp "
                f"or /var/lib, or make {parent} searchable (chmod o+x)"
            )
