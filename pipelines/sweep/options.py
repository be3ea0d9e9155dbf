"""How a sweep's jobs run: ``ExecutorOptions``, validated once at the edge (``dis-eval sweep``
builds it from its flags) and handed to :func:`pipelines.sweep.run_sweep` and the executors.

Light on purpose (nothing but ``dis_eval.errors``): the command line reads its choices and
defaults from here while it builds the parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dis_eval.errors import UserError

EXECUTORS: tuple[str, ...] = ("local", "ray")
HEARTBEAT_S = 30.0  # seconds between the heartbeats of a running job's lock


@dataclass(frozen=True)
class ExecutorOptions:
    """Where and how a sweep's jobs run (the job function, config resolver and reporter stay
    arguments of the functions that take these options).

    Messages name the command line's flags, which set every field but ``heartbeat_s``,
    ``gpus_per_job`` and ``log_to_files``.
    """

    executor: str = "local"  # local (one process per job) | ray
    n_jobs: int = 1  # local: jobs at a time (--jobs)
    address: str | None = None  # ray: cluster address; None: an initialised Ray or a local instance
    max_retries: int = 2  # restarts of a job whose process/worker died (it resumes); errors are not retried
    heartbeat_s: float = HEARTBEAT_S  # seconds between a job lock's heartbeats
    cpus_per_job: float = 1.0  # ray: CPUs reserved per job
    gpus_per_job: float | None = None  # ray: GPUs per job; None: 1 when the cluster has GPUs, else 0
    log_to_files: bool | None = None  # local: job output to RUN/job.log; None: when n_jobs > 1
    skip_failed: bool = False  # leave jobs that failed before alone (not retried)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise UserError(f"unknown executor {self.executor!r}: use {' or '.join(EXECUTORS)}")
        if self.executor == "local" and self.address:
            raise UserError("--address is for --executor ray")
        if self.executor == "ray" and self.n_jobs != 1:
            raise UserError("--jobs is for the local executor; Ray runs as many jobs as the cluster fits")
        _at_least("--jobs", self.n_jobs, 1, whole=True)
        _at_least("--max-retries", self.max_retries, 0, whole=True)
        _at_least("--cpus-per-job", self.cpus_per_job, 0)
        if self.gpus_per_job is not None:
            _at_least("gpus_per_job", self.gpus_per_job, 0)
        if _number("heartbeat_s", self.heartbeat_s) <= 0:
            raise UserError(f"heartbeat_s must be more than 0, got {self.heartbeat_s}")

    @property
    def job_logs(self) -> bool:
        """Whether a local job's output goes to ``RUN/job.log`` (by default when several jobs
        run at once)."""
        return self.n_jobs > 1 if self.log_to_files is None else self.log_to_files

    def describe(self) -> str:
        """``local, 2 at a time`` / ``ray (auto)``: the executor as a sweep's first line says it."""
        if self.executor == "local":
            return f"local, {self.n_jobs} at a time"
        return f"ray ({self.address or 'local instance'})"


def _number(flag: str, value: Any, whole: bool = False) -> float:
    """``value`` when it is an integer (``whole``) or a number; a one-line error otherwise."""
    kind: type | tuple[type, ...] = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise UserError(f"{flag} must be {'an integer' if whole else 'a number'}, got {value!r}")
    return value


def _at_least(flag: str, value: Any, low: int, whole: bool = False) -> None:
    if _number(flag, value, whole) < low:
        raise UserError(f"{flag} must be at least {low}, got {value}")
