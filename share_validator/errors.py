"""Stratum error codes and the fixed reason strings, in one table.

Codes follow the de-facto Stratum v1 table (as in Miningcore's StratumError and
ckpool's share_errs): 20 other, 21 job not found (stale), 22 duplicate share,
23 low difficulty share, 24 unauthorized worker, 25 not subscribed.
"""
from __future__ import annotations

import enum


class StratumError(enum.IntEnum):
    OTHER = 20
    JOB_NOT_FOUND = 21
    DUPLICATE_SHARE = 22
    LOW_DIFFICULTY = 23
    UNAUTHORIZED = 24
    NOT_SUBSCRIBED = 25


class Reject(enum.Enum):
    """Every reason a share can be refused: (code, reason sent to the miner)."""

    BAD_PARAMS = (StratumError.OTHER, "malformed submit parameters")
    BAD_WORKER = (StratumError.OTHER, "malformed worker name")
    BAD_JOB_ID = (StratumError.OTHER, "malformed job id")
    BAD_EXTRANONCE2 = (StratumError.OTHER, "malformed extranonce2")
    BAD_NTIME = (StratumError.OTHER, "malformed ntime")
    BAD_NONCE = (StratumError.OTHER, "malformed nonce")
    BAD_VERSION_BITS = (StratumError.OTHER, "malformed version bits")
    NTIME_OUT_OF_RANGE = (StratumError.OTHER, "ntime out of range")
    VERSION_BITS_OUTSIDE_MASK = (StratumError.OTHER, "version bits outside the negotiated mask")
    VERSION_ROLLING_NOT_NEGOTIATED = (StratumError.OTHER, "version rolling not negotiated")
    JOB_NOT_FOUND = (StratumError.JOB_NOT_FOUND, "job not found")
    STALE = (StratumError.JOB_NOT_FOUND, "stale share")
    DUPLICATE = (StratumError.DUPLICATE_SHARE, "duplicate share")
    LOW_DIFFICULTY = (StratumError.LOW_DIFFICULTY, "low difficulty share")
    UNAUTHORIZED = (StratumError.UNAUTHORIZED, "unauthorized worker")
    NOT_SUBSCRIBED = (StratumError.NOT_SUBSCRIBED, "not subscribed")

    @property
    def code(self) -> StratumError:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]


class ShareRejected(Exception):
    """A share refused for ``reject``; raised inside the validator, answered by the session."""

    def __init__(self, reject: Reject) -> None:
        super().__init__(reject.reason)
        self.reject = reject

    @property
    def code(self) -> StratumError:
        return self.reject.code

    @property
    def reason(self) -> str:
        return self.reject.reason
