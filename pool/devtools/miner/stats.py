"""What a run of the demo miner counts: shares, blocks, hashes, connections, errors, and why it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MinerStats:
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_code: dict[int | None, int] = field(default_factory=dict)
    stale_discarded: int = 0
    blocks: int = 0
    hashes: int = 0
    jobs: int = 0
    connections: int = 0
    protocol_errors: int = 0
    last_error: str | None = None
    gave_up: bool = False
    stop_reason: str | None = None
    elapsed: float = 0.0

    @property
    def hashrate(self) -> float:
        return self.hashes / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_code": {str(code): count for code, count in self.rejected_by_code.items()},
            "stale_discarded": self.stale_discarded,
            "blocks": self.blocks,
            "hashes": self.hashes,
            "hashrate": round(self.hashrate, 2),
            "jobs": self.jobs,
            "connections": self.connections,
            "protocol_errors": self.protocol_errors,
            "last_error": self.last_error,
            "gave_up": self.gave_up,
            "stop_reason": self.stop_reason,
            "elapsed": round(self.elapsed, 3),
        }
