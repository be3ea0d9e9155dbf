"""One sweep job in its run folder: claim it, run it, record a failure, read its state back.

State lives in the run folder only (its files are named by ``dis_eval.run_dir.RunDir``), so
any process on any host sharing the storage (``dis-eval sweep --status``, a re-run, another
Ray worker) reads the same answer:

* **done**: the run is trained and scored (``RunDir.is_finished``);
* **running**: ``sweep_lock.json`` names a live holder (pid, host, token) whose heartbeat
  is fresh; a lock whose heartbeat is stale, or whose pid is gone on this host, is ignored;
* **failed**: ``failed.json`` holds the error and the traceback's tail;
* **pending** otherwise (an interrupted job keeps its checkpoint and resumes).

A job function ``job_fn(job, run_dir)`` does the work; the default,
:func:`train_and_evaluate`, trains (resuming a started run) and then scores the run. Tests
inject trivial ones.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dis_eval.atomic import atomic_create_json, atomic_write_json
from dis_eval.config.evaluation import EvalConfig
from dis_eval.run_dir import RunDir, read_json_object
from pipelines.sweep.options import HEARTBEAT_S
from pipelines.sweep.spec import Job

if TYPE_CHECKING:
    from dis_eval.config.train import TrainConfig

MANIFEST_FILE = "sweep.json"  # in the sweep's folder: the jobs and the evaluation
STALE_FACTOR = 4.0  # a heartbeat older than 4 intervals means the holder is gone

JobFn = Callable[[Job, Path], None]


@dataclass
class JobResult:
    """What happened to one job in this invocation."""

    name: str
    status: str  # "done" | "skipped" (already done) | "failed" | "busy" (held elsewhere)
    wall_s: float = 0.0
    error: str = ""
    attempts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- files


def write_json_atomic(path: Path, obj: Any) -> None:
    """Sweep state as JSON (sorted keys), atomically."""
    atomic_write_json(path, obj, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- liveness


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            # state is the field after the parenthesised command name
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def lock_is_live(info: dict[str, Any] | None, now: float | None = None) -> bool:
    """Whether a lock's holder is alive: fresh heartbeat, and a live pid when on this host."""
    if not info:
        return False
    now = time.time() if now is None else now
    try:
        age = now - float(info["heartbeat"])
        stale_after = float(info.get("stale_after", HEARTBEAT_S * STALE_FACTOR))
    except (KeyError, TypeError, ValueError):
        return False
    if age > stale_after:
        return False
    if info.get("host") == socket.gethostname():
        return pid_alive(int(info.get("pid", -1)))
    return True


def job_state(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """``(state, details)`` of a run directory: done / running / failed / pending."""
    details: dict[str, Any] = {}
    run = RunDir(run_dir)
    summary = run.read_summary()
    if isinstance(summary, dict) and "step" in summary:
        details["step"] = summary.get("step")
        details["steps"] = summary.get("steps")
    if run.is_finished():
        return "done", details
    lock = read_json_object(run.sweep_lock)
    if lock_is_live(lock):
        details.update(
            pid=lock.get("pid"), host=lock.get("host"), since=lock.get("started"),
            heartbeat_age_s=round(time.time() - float(lock["heartbeat"]), 1),
        )
        return "running", details
    failed = read_json_object(run.failed)
    if failed is not None:
        details["error"] = failed.get("error", "")
        return "failed", details
    if run.checkpoint.is_file():
        details["resumable"] = True
    return "pending", details


# ----------------------------------------------------------------------------- locking


class JobLock:
    """An exclusive, heartbeated claim on a run directory.

    ``token`` identifies one sweep invocation: a retry of the same job by the same
    invocation (a Ray retry after a lost worker, the local executor's retry after a
    crashed process) takes over its own lock even while the dead holder's heartbeat is
    still fresh; anyone else waits until the holder is gone.
    """

    def __init__(self, run_dir: Path, token: str, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path = RunDir(run_dir).sweep_lock
        self.token = token
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holder: dict[str, Any] | None = None
        self.nonce = uuid.uuid4().hex  # this attempt (a retry with the same token supersedes it)

    def _info(self, started: float) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": self.token,
            "nonce": self.nonce,
            "started": started,
            "heartbeat": time.time(),
            "stale_after": self.heartbeat_s * STALE_FACTOR,
        }

    def acquire(self) -> bool:
        """Claim the directory; False (``self.holder`` set) when another live process holds it."""
        started = time.time()
        if not atomic_create_json(self.path, self._info(started)):
            current = read_json_object(self.path)
            if current is None and time.time() - _mtime(self.path) < self.heartbeat_s * STALE_FACTOR:
                current = {"pid": None, "host": "?", "heartbeat": _mtime(self.path)}  # being written
            if isinstance(current, dict) and current.get("token") != self.token and lock_is_live(current):
                self.holder = current
                return False
            write_json_atomic(self.path, self._info(started))  # a stale lock, or our own earlier attempt
        self._thread = threading.Thread(target=self._beat, args=(started,), daemon=True)
        self._thread.start()
        return True

    def _beat(self, started: float) -> None:
        while not self._stop.wait(self.heartbeat_s):
            current = read_json_object(self.path)
            if isinstance(current, dict) and current.get("nonce") != self.nonce:
                return  # taken over (we were presumed dead): stop claiming it
            try:
                write_json_atomic(self.path, self._info(started))
            except OSError:
                pass  # a transient storage hiccup; the next beat retries

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = read_json_object(self.path)
        if isinstance(current, dict) and current.get("nonce") == self.nonce:
            self.path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# ----------------------------------------------------------------------------- running


def write_failed(run_dir: Path, error: str, tb: str = "", attempts: int | None = None) -> None:
    """Record a failure (error line and the traceback's last lines) in ``failed.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "error": error,
        "traceback_tail": tb.strip().splitlines()[-30:] if tb else [],
        "time": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    if attempts is not None:
        info["attempts"] = attempts
    write_json_atomic(RunDir(run_dir).failed, info)


def run_job(
    job: Job, run_dir: Path, job_fn: JobFn, token: str, heartbeat_s: float = HEARTBEAT_S
) -> JobResult:
    """Run ``job`` in ``run_dir`` unless it is done or held by a live process elsewhere.

    A Python exception from the job is recorded in ``failed.json`` and returned as a
    ``failed`` result (never raised), so one bad job cannot stop a sweep; an interrupt
    (Ctrl-C) is re-raised and leaves the job pending, resumable from its checkpoint.
    """
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    if run.is_finished():
        return JobResult(job.name, "skipped", attempts=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = JobLock(run_dir, token, heartbeat_s)
    if not lock.acquire():
        h = lock.holder or {}
        return JobResult(job.name, "busy", error=f"held by pid {h.get('pid')} on {h.get('host')}", attempts=0)
    t0 = time.time()
    try:
        run.failed.unlink(missing_ok=True)
        try:
            job_fn(job, run_dir)
        except Exception as exc:  # noqa: BLE001 - any job error is recorded, not raised
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            write_failed(run_dir, msg, traceback.format_exc())
            return JobResult(job.name, "failed", time.time() - t0, msg)
        if not run.is_finished():
            missing = [p.name for p in (run.model, run.metrics) if not p.is_file()]
            msg = f"the job finished without writing {', '.join(missing)}"
            write_failed(run_dir, msg)
            return JobResult(job.name, "failed", time.time() - t0, msg)
        return JobResult(job.name, "done", time.time() - t0)
    finally:
        lock.release()


def train_and_evaluate(job: Job, run_dir: Path) -> None:
    """The real job: train (resuming from its checkpoint when the run was started), then score
    the run into its metrics.

    The training data is loaded once, on the training device, and scored on too when the
    evaluation uses the rows the model was trained on (see :func:`scores_training_rows`);
    otherwise ``evaluate_run`` loads the full grid. Training writes the final weights last, so
    a run that has them is not trained again: a job interrupted during evaluation only re-scores.
    """
    from dis_eval.config.train import TrainConfig
    from pipelines.evaluate import evaluate_run
    from pipelines.train import train

    run = RunDir(run_dir)
    eval_config = job.eval_config()
    data = None
    if not run.is_trained():
        config = TrainConfig.from_dict(job.train_config, allow_derived=True)
        data = load_training_data(config)
        train(config, run, resume=run.is_run(), progress=False, data=data)
        if not scores_training_rows(eval_config, config.subset):
            data = None  # free it before the full grid is loaded
    evaluate_run(run, eval_config, data=data)


def load_training_data(config: TrainConfig) -> Any:
    """A training config's data (``TrainConfig.data`` and ``.subset``) on its training device."""
    from dis_eval.data import DataSpec, load_data
    from dis_eval.device import resolve_device

    return load_data(DataSpec(config.data, config.subset), device=resolve_device(config.device))


def scores_training_rows(eval_config: EvalConfig, trained_subset: str | None) -> bool:
    """Whether ``eval_config`` scores a run on the rows it was trained on: always for a run
    trained without a subset, and under the ``subset`` protocol for one trained on a subset."""
    return trained_subset is None or eval_config.protocol_for(trained_subset) == "subset"
