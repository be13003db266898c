"""Share validation: the checks a submitted share goes through, cheapest first.

1. canonical lowercase hex of exact length for extranonce2, ntime, nonce, version bits (20);
2. the worker is authorized on this connection (24), the job is known to it (21);
3. ntime within [template mintime, template curtime + ntime_future_s] (20);
4. version bits only inside the negotiated mask (20);
5. hash; duplicate by the resulting block hash, per job (22);
6. exact compare against the target of the difficulty the job was sent at (23);
7. block check on every hashed share: stale and low-difficulty ones too.

Pure code: no sockets, no clock, no database.  ``MinerState`` is what a connection
knows; ``ShareValidator`` holds the jobs and the duplicate sets.

A job's coinbase carries its job id, so no two jobs share a header: duplicates are looked
for among the shares of the same job, and a job's set goes when the job does.  The jobs
still valid are the newest ``max_jobs_per_tip`` of the current chain tip and as many older
ones (the previous tip's, or the current tip's pushed out); so memory stays flat however long
a block takes: at most (2 x max_jobs_per_tip) jobs' worth of shares.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from share_validator import hashing
from share_validator.bitcoin.coins import Coin
from share_validator.bitcoin.job import Job
from share_validator.difficulty import Difficulty
from share_validator.errors import Reject, ShareRejected

MAX_WORKER_LENGTH = 160
MAX_JOB_ID_LENGTH = 64
_HEX8 = re.compile("[0-9a-f]{8}").fullmatch
_HEX_OF_SIZE = {size: re.compile(f"[0-9a-f]{{{2 * size}}}").fullmatch for size in range(1, 25)}


class MinerState:
    """What one connection has negotiated, and which job and difficulty each job id it was sent means.

    The job id on the wire is normally the pool-wide job id.  When a miner's difficulty
    changes, the session re-sends the current job under a new wire id (an alias of the same
    job), so shares on the old id still count at the old difficulty and shares on the new id
    at the new one, without making a pool-wide job per miner.
    """

    __slots__ = ("authorized", "extranonce1", "extranonce2_size", "jobs", "max_jobs", "previous_jobs", "version_mask")

    def __init__(self, extranonce1: bytes, extranonce2_size: int, *, max_jobs: int = 64) -> None:
        self.extranonce1 = extranonce1
        self.extranonce2_size = extranonce2_size
        self.authorized: set[str] = set()
        self.version_mask = 0
        self.jobs: dict[str, tuple[str, Difficulty]] = {}
        self.previous_jobs: dict[str, tuple[str, Difficulty]] = {}  # the previous chain tip's
        self.max_jobs = max_jobs

    def job_sent(self, job_id: str, difficulty: Difficulty, wire_id: str | None = None) -> None:
        """Record that ``job_id`` went to this miner (as ``wire_id``) while ``difficulty`` was in force."""
        wire_id = job_id if wire_id is None else wire_id
        jobs = self.jobs
        jobs.pop(wire_id, None)
        jobs[wire_id] = (job_id, difficulty)
        while len(jobs) > self.max_jobs:
            del jobs[next(iter(jobs))]

    def new_tip(self, job_id: str, difficulty: Difficulty) -> None:
        """A clean job (new chain tip): the current jobs become the previous tip's, older ones go."""
        self.previous_jobs = self.jobs
        self.jobs = {job_id: (job_id, difficulty)}

    def lookup(self, wire_id: str) -> tuple[str, Difficulty] | None:
        sent = self.jobs.get(wire_id)
        return sent if sent is not None else self.previous_jobs.get(wire_id)


class ShareResult:
    """The verdict on one share.  ``block`` is set whenever the share solves a block."""

    __slots__ = (
        "actual_difficulty",
        "block",
        "block_hash",
        "credited_difficulty",
        "extranonce2",
        "header",
        "job",
        "nonce",
        "ntime",
        "pow_hash",
        "reject",
        "version",
        "worker",
    )

    def __init__(
        self,
        reject: Reject | None,
        worker: Any = None,
        job: Job | None = None,
        credited_difficulty: float = 0.0,
        extranonce2: bytes | None = None,
        ntime: int = 0,
        nonce: int = 0,
        version: int = 0,
    ) -> None:
        self.reject = reject
        self.worker = worker
        self.job = job
        self.credited_difficulty = credited_difficulty
        self.actual_difficulty = 0.0
        self.extranonce2 = extranonce2
        self.ntime = ntime
        self.nonce = nonce
        self.version = version
        self.header = self.pow_hash = self.block_hash = self.block = None

    @property
    def accepted(self) -> bool:
        return self.reject is None

    @property
    def is_block(self) -> bool:
        return self.block is not None

    @property
    def code(self) -> int | None:
        return None if self.reject is None else int(self.reject.code)

    @property
    def reason(self) -> str | None:
        return None if self.reject is None else self.reject.reason

    @property
    def block_hash_hex(self) -> str | None:
        return None if self.block_hash is None else self.block_hash[::-1].hex()

    def __repr__(self) -> str:
        verdict = "accepted" if self.reject is None else f"rejected {self.code} {self.reason!r}"
        block = f" block {self.block_hash_hex}" if self.block is not None else ""
        return f"<ShareResult {verdict} diff {self.actual_difficulty:.6g}/{self.credited_difficulty:.6g}{block}>"


class PreparedBatch:
    """Shares of a batch between ``prepare_batch`` and ``finish_batch``."""

    __slots__ = ("pending", "results")

    def __init__(self) -> None:
        self.results: list[ShareResult | None] = []
        self.pending: list[tuple[int, tuple]] = []


class ShareValidator:
    """Jobs by id (current chain tip, plus older ones as stale) and a duplicate set per job."""

    def __init__(self, coin: Coin, *, ntime_future_s: int = 600, max_jobs_per_tip: int = 64) -> None:
        self.coin = coin
        self.ntime_future_s = ntime_future_s
        self.max_jobs_per_tip = max_jobs_per_tip
        self._diff1 = coin.diff1_target
        self._scrypt = coin.algorithm.pow_code == hashing.POW_SCRYPT
        # Scrypt shares are hashed for proof of work after the native call (alone or in a batch);
        # sha256d shares get everything from the one call.
        self._first_pass = hashing.POW_DEFERRED if self._scrypt else hashing.POW_SHA256D
        self.jobs: dict[str, Job] = {}
        self.stale_jobs: dict[str, Job] = {}
        self._seen: dict[str, set[bytes]] = {}  # job id -> the shares' block hash prefixes

    # -- jobs ------------------------------------------------------------------------

    def add_job(self, job: Job, clean: bool) -> None:
        """A new job; ``clean`` (new chain tip) retires the current jobs (`retire_jobs`).  Past
        ``max_jobs_per_tip`` the oldest current job turns stale, and past as many stale jobs the
        oldest stale one goes.  A job's duplicate set goes with the job."""
        if clean:
            self.retire_jobs()
        jobs, stale = self.jobs, self.stale_jobs
        jobs[job.job_id] = job
        while len(jobs) > self.max_jobs_per_tip:
            oldest = next(iter(jobs))
            stale[oldest] = jobs.pop(oldest)
        while len(stale) > self.max_jobs_per_tip:
            del stale[next(iter(stale))]
        seen = self._seen
        seen.setdefault(job.job_id, set())
        for gone in [job_id for job_id in seen if job_id not in jobs and job_id not in stale]:
            del seen[gone]

    def retire_jobs(self) -> int:
        """The chain tip moved past the current jobs (or no template can be had): they become the
        stale ones, flagged ``retired`` so that a share judged after this is stale even when it was
        looked up before (a batch hashing on another thread). Returns how many were retired.
        With no current jobs (retired already), the stale ones stay: shares on them are still
        answered as stale and their block solutions still submitted."""
        jobs = self.jobs
        if not jobs:
            return 0
        for job in jobs.values():
            job.retired = True
        self.stale_jobs = jobs
        self.jobs = {}
        return len(jobs)

    @property
    def current_job(self) -> Job | None:
        return next(reversed(self.jobs.values()), None) if self.jobs else None

    # -- validation ------------------------------------------------------------------

    def validate(self, state: MinerState, params: Any) -> ShareResult:
        """Judge one ``mining.submit`` parameter list for the miner in ``state``."""
        try:
            prepared = self._prepare(state, params, self._first_pass)
        except ShareRejected as exc:
            return ShareResult(exc.reject, _worker_of(params))
        out = prepared[5]
        pow_hash = hashing.scrypt(out[:80]) if self._scrypt else out[112:]
        return self._finish(prepared, pow_hash)

    def validate_batch(self, submissions: Sequence[tuple[MinerState, Any]]) -> list[ShareResult]:
        """Judge several shares, hashing the scrypt ones in one native batch call."""
        batch = self.prepare_batch(submissions)
        if self._scrypt:
            pow_hashes = hashing.scrypt_batch([prepared[5][:80] for _, prepared in batch.pending])
        else:
            pow_hashes = [prepared[5][112:] for _, prepared in batch.pending]
        return self.finish_batch(batch, pow_hashes)

    def prepare_batch(self, submissions: Sequence[tuple[MinerState, Any]]) -> PreparedBatch:
        """Checks before proof of work for several shares.  The caller hashes the headers of
        ``pending`` (``prepared[5][:80]``), on another thread if it likes, then calls ``finish_batch``."""
        batch = PreparedBatch()
        for state, params in submissions:
            try:
                prepared = self._prepare(state, params, self._first_pass)
            except ShareRejected as exc:
                batch.results.append(ShareResult(exc.reject, _worker_of(params)))
                continue
            batch.pending.append((len(batch.results), prepared))
            batch.results.append(None)
        return batch

    def finish_batch(self, batch: PreparedBatch, pow_hashes: Sequence[bytes]) -> list[ShareResult]:
        """Target, duplicate and block checks in submission order, given the proof-of-work hashes."""
        results = batch.results
        for (index, prepared), pow_hash in zip(batch.pending, pow_hashes, strict=True):
            results[index] = self._finish(prepared, pow_hash)
        return results  # type: ignore[return-value]

    # -- what the Stratum server asks of a share check (pool.families.base.ShareChecker) --

    @property
    def batched(self) -> bool:
        """Scrypt shares are judged in batches whose hashing runs on worker threads."""
        return self._scrypt

    @staticmethod
    def new_miner_state(extranonce1: bytes, extranonce2_size: int) -> MinerState:
        return MinerState(extranonce1, extranonce2_size)

    @staticmethod
    def batch_inputs(batch: PreparedBatch) -> list[bytes]:
        """What ``hash_batch`` hashes for the pending shares of ``batch``: their 80-byte headers."""
        return [prepared[5][:80] for _, prepared in batch.pending]

    @staticmethod
    def hash_batch(headers: Sequence[bytes]) -> list[bytes]:
        """Proof-of-work hashes of the headers in one native call (releases the GIL)."""
        return hashing.scrypt_batch(headers)

    @staticmethod
    def hash_each(headers: Sequence[bytes]) -> list[bytes]:
        """The same, one header at a time (the fallback when a batch call failed)."""
        return [hashing.scrypt(header) for header in headers]

    def _prepare(self, state: MinerState, params: Any, pow_algo: int) -> tuple:
        # 1. shape
        if type(params) is not list:
            raise ShareRejected(Reject.BAD_PARAMS)
        if len(params) == 5:
            worker, job_id, extranonce2_hex, ntime_hex, nonce_hex = params
            version_bits = None
        elif len(params) == 6:
            worker, job_id, extranonce2_hex, ntime_hex, nonce_hex, bits_hex = params
            if type(bits_hex) is not str or not _HEX8(bits_hex):
                raise ShareRejected(Reject.BAD_VERSION_BITS)
            version_bits = int(bits_hex, 16)
        else:
            raise ShareRejected(Reject.BAD_PARAMS)
        if type(worker) is not str or not 0 < len(worker) <= MAX_WORKER_LENGTH:
            raise ShareRejected(Reject.BAD_WORKER)
        if type(job_id) is not str or not 0 < len(job_id) <= MAX_JOB_ID_LENGTH:
            raise ShareRejected(Reject.BAD_JOB_ID)
        size = state.extranonce2_size
        # One regex over the three hex fields when each has its exact length; on failure, name the field.
        if not (
            type(extranonce2_hex) is str and type(ntime_hex) is str and type(nonce_hex) is str
            and len(extranonce2_hex) == 2 * size and len(ntime_hex) == 8 and len(nonce_hex) == 8
            and _HEX_OF_SIZE[size + 8](extranonce2_hex + ntime_hex + nonce_hex)
        ):
            if type(extranonce2_hex) is not str or not _HEX_OF_SIZE[size](extranonce2_hex):
                raise ShareRejected(Reject.BAD_EXTRANONCE2)
            if type(ntime_hex) is not str or not _HEX8(ntime_hex):
                raise ShareRejected(Reject.BAD_NTIME)
            raise ShareRejected(Reject.BAD_NONCE)
        # 2. who and which job
        if worker not in state.authorized:
            raise ShareRejected(Reject.UNAUTHORIZED)
        sent = state.jobs.get(job_id)  # state.lookup, inline: this runs per share
        if sent is None:
            sent = state.previous_jobs.get(job_id)
            if sent is None:
                raise ShareRejected(Reject.JOB_NOT_FOUND)
        pool_job_id, difficulty = sent
        stale = False
        job = self.jobs.get(pool_job_id)
        if job is None:
            job = self.stale_jobs.get(pool_job_id)
            stale = True
            if job is None:
                raise ShareRejected(Reject.JOB_NOT_FOUND)
        # Taken now: a batch's job may go before the batch is finished; its shares still meet.
        seen = self._seen[pool_job_id]
        # 3. ntime window, from the template's own times
        ntime = int(ntime_hex, 16)
        if ntime < job.mintime or ntime > job.ntime + self.ntime_future_s:
            raise ShareRejected(Reject.NTIME_OUT_OF_RANGE)
        # 4. version rolling
        version = job.version
        if version_bits is not None:
            mask = state.version_mask
            if version_bits & ~mask:
                raise ShareRejected(
                    Reject.VERSION_BITS_OUTSIDE_MASK if mask else Reject.VERSION_ROLLING_NOT_NEGOTIATED
                )
            version = (version & ~mask) | version_bits
        # 5. hash (header, block hash and, for sha256d, proof of work in one native call)
        extranonce2 = bytes.fromhex(extranonce2_hex)
        nonce = int(nonce_hex, 16)
        out = job.hasher.share_hash(pow_algo, state.extranonce1, extranonce2, version, ntime, nonce)
        result = ShareResult(None, worker, job, difficulty.value, extranonce2, ntime, nonce, version)
        return result, job, difficulty, state.extranonce1, stale, out, seen

    def _finish(self, prepared: tuple, pow_hash: bytes) -> ShareResult:
        result, job, difficulty, extranonce1, stale, out, seen = prepared
        header = out[:80]
        block_hash = out[112:]
        result.header = header
        result.pow_hash = pow_hash
        result.block_hash = block_hash
        hash_int = int.from_bytes(pow_hash, "little")
        result.actual_difficulty = self._diff1 / (hash_int or 1)
        key = block_hash[:8]
        if key in seen:
            result.reject = Reject.DUPLICATE
            return result
        # 7. a block solution is never discarded, whatever else is wrong with the share
        is_block = hash_int <= job.network_target
        if is_block:
            result.block = job.serialize_block(header, job.coinbase(extranonce1, result.extranonce2))
        if stale:
            result.reject = Reject.STALE
        elif hash_int > difficulty.target:  # 6. exact target, no tolerance
            result.reject = Reject.LOW_DIFFICULTY
        if result.reject is None or is_block:
            seen.add(key)
        return result


def _worker_of(params: Any) -> Any:
    if type(params) is list and params and type(params[0]) is str and len(params[0]) <= MAX_WORKER_LENGTH:
        return params[0]
    return None
