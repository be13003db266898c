"""A child process kept running: started again when it exits, stopped when its supervisor is cancelled,
and ended when its parent dies, however it dies.

A child is started through a small exec wrapper (`die_with_parent`): the kernel sends it SIGTERM when
the process that started it ends (``PR_SET_PDEATHSIG``, which stays set across ``execve``; strictly,
when the thread that started it ends: the event loop's), and a child whose parent was already gone
when it started exits at once. So a ``kill -9`` of ``pool run`` does not leave its API process (or
the API's workers) running and holding the API port. (The ledger writer is not started so: it must
outlive a killed pool long enough to store what it was sent, and ends at the end of its input.)

A child that exits with `EXIT_PORT_TAKEN` cannot listen on its port; starting it again would not
help: the supervisor raises `ChildFailed` instead.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Collection, Mapping, Sequence

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
LAST_RETRY_S = 60.0
STOP_TIMEOUT_S = 10.0
EXIT_PORT_TAKEN = 3  # a child's exit code: its listening port is taken

# Runs in the child, then execs the real program in its place (same pid); standard library only.
_WRAPPER = """\
import ctypes, os, sys
parent, signum = int(sys.argv[1]), int(sys.argv[2])
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != parent:  # the parent died before the line above: nobody to signal us
    os._exit(1)
os.execvp(sys.argv[3], sys.argv[3:])
"""


class ChildFailed(Exception):
    """A child exited in a way that starting it again cannot mend (its port is taken)."""

    def __init__(self, name: str, code: int) -> None:
        reason = ": its port is taken" if code == EXIT_PORT_TAKEN else ""
        super().__init__(f"{name} exited with code {code}{reason}")
        self.name = name
        self.code = code


def die_with_parent(argv: Sequence[str], signum: int = signal.SIGTERM) -> list[str]:
    """``argv`` run so that it gets ``signum`` when this process ends (same pid: the wrapper execs it)."""
    return [sys.executable, "-I", "-S", "-c", _WRAPPER, str(os.getpid()), str(int(signum)), *argv]


async def stop_child(child: asyncio.subprocess.Process, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
    if child.returncode is not None:
        return
    child.terminate()
    try:
        async with asyncio.timeout(timeout_s):
            await child.wait()
    except TimeoutError:
        child.kill()
        await child.wait()


async def supervise(argv: Sequence[str], *, env: Mapping[str, str], name: str,
                    on_first_line: Callable[[bytes], bool] | None = None,
                    done: asyncio.Event | None = None, fatal_codes: Collection[int] = (EXIT_PORT_TAKEN,)) -> None:
    """Run ``argv`` until cancelled (or ``done`` is set when it exits), starting it again after each exit
    (1 s, doubling up to 60 s); an exit with one of ``fatal_codes`` raises `ChildFailed`. With
    ``on_first_line`` the child's first line of output goes to it; a true answer (the child is up)
    brings the delay back to 1 s. Cancelled: the child is stopped. The child ends with this process."""
    delay = FIRST_RETRY_S
    while True:
        child = await asyncio.create_subprocess_exec(
            *die_with_parent(argv), env=dict(env),
            stdout=asyncio.subprocess.PIPE if on_first_line is not None else asyncio.subprocess.DEVNULL)
        logger.info("%s: process %d started", name, child.pid)
        try:
            if on_first_line is not None and on_first_line(await child.stdout.readline()):
                delay = FIRST_RETRY_S
            code = await child.wait()
        except asyncio.CancelledError:
            await stop_child(child)
            raise
        if done is not None and done.is_set():
            return
        if code in fatal_codes:
            raise ChildFailed(name, code)
        logger.error("%s exited with %s; starting it again in %.0f s", name, code, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, LAST_RETRY_S)
