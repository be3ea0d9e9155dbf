"""The job table: SQLite in WAL mode beside the runs, shared by the API and every worker process.

A job moves ``queued -> running -> done | failed | cancelled``. Claiming is one ``UPDATE ...
WHERE state = 'queued' ... RETURNING`` inside an immediate transaction, so two workers never
get the same job. A running job carries its worker's id and a heartbeat; only that worker can
finish it (``finish``/``fail`` match the worker and the attempt), so a worker presumed dead
that wakes up cannot record a second completion. The reaper puts the jobs of workers whose
heartbeat stopped back in the queue (``requeue_stale``), up to ``max_attempts`` claims a job.

Every change is committed before the call returns: killing the server or a worker with
SIGKILL loses no job (a committed row survives; a running one is re-queued by the reaper).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError

JOB_KINDS: tuple[str, ...] = ("train", "evaluate", "score", "sweep")
STATES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
MAX_ATTEMPTS = 3  # claims of one job before a job whose workers keep dying is failed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    error TEXT,
    log_path TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
"""


@dataclass(frozen=True)
class Job:
    """One row of the job table."""

    id: str
    kind: str
    params: dict[str, Any]
    state: str
    attempts: int
    worker: str | None
    heartbeat_at: float | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: dict[str, Any] | None
    error: str | None
    log_path: str | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def _job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], kind=row["kind"], params=json.loads(row["params"]), state=row["state"],
               attempts=row["attempts"], worker=row["worker"], heartbeat_at=row["heartbeat_at"],
               cancel_requested=bool(row["cancel_requested"]), created_at=row["created_at"],
               started_at=row["started_at"], finished_at=row["finished_at"],
               result=json.loads(row["result"]) if row["result"] else None, error=row["error"],
               log_path=row["log_path"])


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobQueue:
    """The job table at ``path`` (created on first use). Each call opens its own connection,
    so one object can be shared by threads and a forked process opens its own."""

    def __init__(self, path: str | os.PathLike, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the job database {self.path}: {exc}") from exc
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA synchronous=FULL")  # a committed job survives a power cut, not only a kill
        con.execute("PRAGMA busy_timeout=30000")
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """An immediate transaction: the write lock is taken first, so read-then-write is atomic."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ---- the API's side -------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], job_id: str | None = None) -> Job:
        """Queue a job (``params`` already validated by the caller); returns it."""
        if kind not in JOB_KINDS:
            raise UserError(f"unknown job kind {kind!r}; one of {', '.join(JOB_KINDS)}")
        job_id = job_id or uuid.uuid4().hex[:16]
        with self._write() as con:
            seq = con.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            con.execute("INSERT INTO jobs (id, seq, kind, params, state, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                        (job_id, seq, kind, json.dumps(params, sort_keys=True), time.time()))
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        from pipelines.serve.catalog import NotFound

        with self._connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return _job(row)

    def list(self, state: str | None = None, kind: str | None = None, limit: int = 500) -> list[Job]:
        """Jobs, newest first."""
        if state is not None and state not in STATES:
            raise UserError(f"unknown job state {state!r}; one of {', '.join(STATES)}")
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if state:
            query, args = query + " AND state = ?", [*args, state]
        if kind:
            query, args = query + " AND kind = ?", [*args, kind]
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY seq DESC LIMIT ?", (*args, int(limit))).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._connect() as con:
            rows = con.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {s: 0 for s in STATES} | {r[0]: r[1] for r in rows}

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one is asked to stop (its worker kills
        it at the next heartbeat and records it cancelled); a finished one is left as it is."""
        self.get(job_id)
        with self._write() as con:
            con.execute("UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'",
                        (time.time(), job_id))
            con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'", (job_id,))
        return self.get(job_id)

    # ---- the workers' side ---------------------------------------------------------------------
    def claim(self, worker: str, kinds: tuple[str, ...] = JOB_KINDS) -> Job | None:
        """The oldest queued job, now running under ``worker``; None when the queue is empty.
        Each claim is recorded (``claims``): a job is claimed once per attempt, by one worker."""
        now = time.time()
        marks = ",".join("?" * len(kinds))
        with self._write() as con:
            row = con.execute(
                f"UPDATE jobs SET state = 'running', worker = ?, heartbeat_at = ?, started_at = ?, "
                f"attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' "
                f"AND kind IN ({marks}) ORDER BY seq LIMIT 1) AND state = 'queued' RETURNING *",
                (worker, now, now, *kinds)).fetchone()
            if row is None:
                return None
            con.execute("INSERT INTO claims (job_id, attempt, worker, claimed_at) VALUES (?, ?, ?, ?)",
                        (row["id"], row["attempts"], worker, now))
        return _job(row)

    def heartbeat(self, job: Job, worker: str) -> str:
        """Renew ``worker``'s claim on ``job``: "ok", "cancel" (stop it: a DELETE asked), or
        "lost" (the claim is gone: the reaper re-queued it; stop without recording anything)."""
        with self._write() as con:
            row = con.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND worker = ? AND state = 'running' "
                              "AND attempts = ? RETURNING cancel_requested",
                              (time.time(), job.id, worker, job.attempts)).fetchone()
        if row is None:
            return "lost"
        return "cancel" if row[0] else "ok"

    def _close(self, job: Job, worker: str, state: str, result: dict[str, Any] | None, error: str | None) -> bool:
        with self._write() as con:
            cur = con.execute("UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ? WHERE id = ? "
                              "AND worker = ? AND state = 'running' AND attempts = ?",
                              (state, json.dumps(result) if result is not None else None, error, time.time(),
                               job.id, worker, job.attempts))
            return cur.rowcount == 1

    def finish(self, job: Job, worker: str, result: dict[str, Any] | None = None) -> bool:
        """Record ``job`` done; False (nothing recorded) when ``worker`` no longer holds it."""
        return self._close(job, worker, "done", result, None)

    def fail(self, job: Job, worker: str, error: str) -> bool:
        return self._close(job, worker, "failed", None, error)

    def cancelled(self, job: Job, worker: str) -> bool:
        return self._close(job, worker, "cancelled", None, "cancelled on request")

    def release(self, job: Job, worker: str) -> bool:
        """Give a running job back to the queue (its worker is stopping); the attempt it used
        does not count toward ``max_attempts``."""
        with self._write() as con:
            cur = con.execute("UPDATE jobs SET state = 'queued', worker = NULL, heartbeat_at = NULL, "
                              "attempts = attempts - 1 WHERE id = ? AND worker = ? AND state = 'running' "
                              "AND attempts = ?", (job.id, worker, job.attempts))
            if cur.rowcount == 1:
                con.execute("DELETE FROM claims WHERE job_id = ? AND attempt = ?", (job.id, job.attempts))
            return cur.rowcount == 1

    def set_log_path(self, job_id: str, path: str) -> None:
        with self._write() as con:
            con.execute("UPDATE jobs SET log_path = ? WHERE id = ?", (path, job_id))

    def requeue_stale(self, stale_after_s: float) -> list[str]:
        """Jobs whose worker stopped heartbeating for ``stale_after_s``: back to the queue (or
        failed once a job has been claimed ``max_attempts`` times). Returns the job ids."""
        cutoff = time.time() - stale_after_s
        with self._write() as con:
            stale = con.execute("SELECT id, attempts, worker FROM jobs WHERE state = 'running' AND heartbeat_at < ?",
                                (cutoff,)).fetchall()
            for row in stale:
                if row["attempts"] >= self.max_attempts:
                    con.execute("UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ?",
                                (time.time(), f"its worker died {row['attempts']} times (last: {row['worker']})",
                                 row["id"]))
                else:
                    con.execute("UPDATE jobs SET state = 'queued', worker = NULL, heartbeat_at = NULL "
                                "WHERE id = ? AND state = 'running'", (row["id"],))
        return [r["id"] for r in stale]

    def requeue_dead_here(self) -> list[str]:
        """Running jobs whose worker ran on this machine and whose process is gone (a killed
        server or worker): back to the queue at once, without waiting for the heartbeat to go
        stale. Returns the job ids."""
        from pipelines.sweep.runner import pid_alive

        host = socket.gethostname()
        with self._connect() as con:
            rows = con.execute("SELECT jobs.id, jobs.attempts, workers.pid FROM jobs JOIN workers "
                               "ON jobs.worker = workers.id WHERE jobs.state = 'running' AND workers.host = ?",
                               (host,)).fetchall()
        dead = [r for r in rows if not pid_alive(int(r["pid"]))]
        requeued = []
        with self._write() as con:
            for row in dead:
                if row["attempts"] >= self.max_attempts:
                    cur = con.execute("UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ? "
                                      "AND state = 'running' AND attempts = ?",
                                      (time.time(), f"its worker died {row['attempts']} times", row["id"],
                                       row["attempts"]))
                else:
                    cur = con.execute("UPDATE jobs SET state = 'queued', worker = NULL, heartbeat_at = NULL "
                                      "WHERE id = ? AND state = 'running' AND attempts = ?",
                                      (row["id"], row["attempts"]))
                if cur.rowcount:
                    requeued.append(row["id"])
            for row in dead:
                con.execute("DELETE FROM workers WHERE host = ? AND pid = ?", (host, int(row["pid"])))
        return requeued

    def claims(self, job_id: str) -> list[dict[str, Any]]:
        """Every claim of a job: attempt, worker, time."""
        with self._connect() as con:
            rows = con.execute("SELECT attempt, worker, claimed_at FROM claims WHERE job_id = ? ORDER BY attempt",
                               (job_id,)).fetchall()
        return [dict(r) for r in rows]

    # ---- workers' liveness (for /healthz) -------------------------------------------------------------
    def worker_alive(self, worker: str) -> None:
        with self._write() as con:
            con.execute("INSERT INTO workers (id, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT(id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                        (worker, os.getpid(), socket.gethostname(), time.time(), time.time()))

    def live_workers(self, within_s: float) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM workers WHERE heartbeat_at >= ? ORDER BY started_at",
                               (time.time() - within_s,)).fetchall()
        return [dict(r) for r in rows]

    def worker_gone(self, worker: str) -> None:
        with self._write() as con:
            con.execute("DELETE FROM workers WHERE id = ?", (worker,))


def log_tail(path: str | os.PathLike | None, max_bytes: int = 8192) -> str:
    """The last ``max_bytes`` of a job's log (whole lines), "" when there is none yet."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text
