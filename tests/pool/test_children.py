"""`pool.children.supervise`: a child that exits is started again; cancelling stops the one running."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pool.children import supervise


async def test_a_child_that_exits_is_started_again_and_cancel_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr("pool.children.FIRST_RETRY_S", 0.05)
    starts = tmp_path / "starts"
    # Each run notes its pid, says it is up, lives 0.2 s the first two times, then until stopped.
    script = ("import os, sys, time; p = sys.argv[1]; open(p, 'a').write(f'{os.getpid()}\\n');"
              "print('UP', flush=True); n = len(open(p).read().split());"
              "time.sleep(0.2 if n < 3 else 3600)")
    lines = []
    task = asyncio.ensure_future(supervise([sys.executable, "-c", script, str(starts)], env=os.environ,
                                           name="test child", on_first_line=lambda line: lines.append(line) or True))
    async with asyncio.timeout(20):
        while not starts.exists() or len(starts.read_text().split()) < 3:
            await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    pids = [int(pid) for pid in starts.read_text().split()]
    assert len(pids) == 3 and lines[:2] == [b"UP\n", b"UP\n"]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # the last one stopped, none left behind
