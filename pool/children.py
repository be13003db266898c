"""A child process kept running: started again when it exits, stopped when its supervisor is cancelled."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
LAST_RETRY_S = 60.0
STOP_TIMEOUT_S = 10.0


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
                    done: asyncio.Event | None = None) -> None:
    """Run ``argv`` until cancelled (or ``done`` is set when it exits), starting it again after each exit
    (1 s, doubling up to 60 s). With ``on_first_line`` the child's first line of output goes to it; a
    true answer (the child is up) brings the delay back to 1 s. Cancelled: the child is stopped."""
    delay = FIRST_RETRY_S
    while True:
        child = await asyncio.create_subprocess_exec(
            *argv, env=dict(env),
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
        logger.error("%s exited with %s; starting it again in %.0f s", name, code, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, LAST_RETRY_S)
