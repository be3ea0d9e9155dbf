"""Where sweep jobs run: the built-in local executor (one process per job) and Ray.

Both call :func:`pipelines.sweep.runner.run_job` for every job, so skipping finished
jobs, locking, failure records and resuming behave the same on a laptop and a cluster.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir, read_json_object
from pipelines.child_processes import die_with
from pipelines.sweep.options import ExecutorOptions
from pipelines.sweep.runner import JobFn, JobResult, run_job, write_failed
from pipelines.sweep.spec import Job

Reporter = Callable[[JobResult], None]

# Imported once by the fork server, so job processes start with them loaded.
# (A module missing here is skipped by the fork server, so the list is only an optimisation.)
PRELOAD = (
    "pipelines.sweep.runner", "pipelines.train", "pipelines.evaluate", "dis_eval.data",
    "dis_eval.metrics", "torch.utils.tensorboard",
)

# Child exit codes of the local executor: anything else (a signal, os._exit) is a crash.
_EXIT = {"done": 0, "failed": 3, "busy": 4, "skipped": 5}
_STATUS = {v: k for k, v in _EXIT.items()}


def _failed_message(run_dir: Path, fallback: str) -> str:
    info = read_json_object(RunDir(run_dir).failed)
    return info.get("error", fallback) if info is not None else fallback


class _Results:
    """One executor call's results, each passed to ``report`` as it comes."""

    def __init__(self, report: Reporter | None) -> None:
        self.items: list[JobResult] = []
        self.report = report

    def emit(self, res: JobResult) -> None:
        self.items.append(res)
        if self.report:
            self.report(res)

    def to_run(self, jobs: Sequence[Job], out_dir: Path) -> list[Job]:
        """The jobs not finished yet; each finished one is emitted as skipped."""
        todo = []
        for job in jobs:
            if RunDir(out_dir / job.name).is_finished():
                self.emit(JobResult(job.name, "skipped", attempts=0))
            else:
                todo.append(job)
        return todo


def _child_main(
    job: Job, run_dir: str, job_fn: JobFn, token: str, options: ExecutorOptions, gpu: str | None,
    sweep_pid: int,
) -> None:
    """Entry point of a local job process; its exit code carries the job's status."""
    die_with(sweep_pid)  # no job outlives its sweep (its parent is the fork server, not the sweep)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before torch is imported by the job
    threads = max(1, (os.cpu_count() or 1) // options.n_jobs) if options.n_jobs > 1 else None
    if threads:
        # N concurrent jobs share the cores (torch may be preloaded: set it directly too).
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    if options.job_logs:
        fd = os.open(RunDir(run_dir).job_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    # Ctrl-C reaches the job too: run_job releases the lock and re-raises, leaving the job
    # pending with its checkpoint (the parent stops the sweep).
    result = run_job(job, Path(run_dir), job_fn, token, options.heartbeat_s)
    sys.exit(_EXIT[result.status])  # normal exit: finalizers release what the job created


def run_local(
    jobs: Sequence[Job],
    out_dir: Path,
    job_fn: JobFn,
    token: str,
    options: ExecutorOptions,
    report: Reporter | None = None,
) -> list[JobResult]:
    """Run ``jobs`` with at most ``options.n_jobs`` at a time, each in its own process.

    A job's Python error is recorded by the job itself; a process that dies without a
    status (killed by a signal, out of memory) is started again up to ``options.max_retries``
    times (the job resumes from its checkpoint) and then recorded as failed. Job output
    goes to ``RUN/job.log`` when several jobs run at once (``options.log_to_files`` default).
    """
    # A fork server (started once, single-threaded, modules preloaded) forks each job: no
    # fork of a parent holding threads or CUDA state, and no per-job import of torch.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(sorted({job_fn.__module__, *PRELOAD}))
    gpus = _visible_gpus()
    gpu_load = dict.fromkeys(gpus, 0)  # running jobs per GPU: each job goes to the least loaded
    results = _Results(report)
    emit = results.emit
    queue: deque[tuple[Job, int]] = deque((job, 1) for job in results.to_run(jobs, out_dir))
    running: dict[Any, tuple[Any, Job, int, float, str | None]] = {}
    try:
        while queue or running:
            while queue and len(running) < options.n_jobs:
                job, attempt = queue.popleft()
                run_dir = out_dir / job.name
                run_dir.mkdir(parents=True, exist_ok=True)
                gpu = min(gpu_load, key=gpu_load.__getitem__) if gpu_load else None
                proc = ctx.Process(
                    target=_child_main,
                    args=(job, str(run_dir), job_fn, token, options, gpu, os.getpid()),
                    name=f"sweep:{job.name}",
                )
                proc.start()
                if gpu is not None:
                    gpu_load[gpu] += 1
                running[proc.sentinel] = (proc, job, attempt, time.time(), gpu)
            ready = multiprocessing.connection.wait(list(running))
            for sentinel in ready:
                proc, job, attempt, t0, gpu = running.pop(sentinel)
                proc.join()
                if gpu is not None:
                    gpu_load[gpu] -= 1
                run_dir = out_dir / job.name
                wall = time.time() - t0
                status = _STATUS.get(proc.exitcode)
                if status == "done" and not RunDir(run_dir).is_finished():
                    status = None  # e.g. the job called sys.exit(0) midway: not a result
                if status == "failed":
                    emit(JobResult(job.name, "failed", wall, _failed_message(run_dir, "failed"), attempt))
                elif status == "busy":
                    emit(JobResult(job.name, "busy", wall, "held by another live process", 0))
                elif status is not None:
                    emit(JobResult(job.name, status, wall, attempts=attempt))
                else:
                    why = _describe_exit(proc.exitcode)
                    if attempt <= options.max_retries:
                        queue.appendleft((job, attempt + 1))  # resume it next, from its checkpoint
                        if report:
                            report(JobResult(job.name, "retrying", wall, why, attempt))
                    else:
                        msg = f"job process {why} ({attempt} attempt(s))"
                        write_failed(run_dir, msg, attempts=attempt)
                        emit(JobResult(job.name, "failed", wall, msg, attempt))
    except BaseException:
        for proc, *_ in running.values():
            if proc.is_alive():
                proc.terminate()
        for proc, *_ in running.values():
            proc.join(timeout=30)
        raise
    return results.items


def _visible_gpus() -> list[str]:
    """CUDA device ids a job process may be pinned to (empty without CUDA): with several
    GPUs, ``--jobs N`` spreads the jobs over them instead of stacking them on GPU 0."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in env.split(",") if d.strip()] if env else []
    return ids or [str(i) for i in range(torch.cuda.device_count())]


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code} without reporting a result"


# ----------------------------------------------------------------------------- Ray


def _ray_job(job: Job, run_dir: str, job_fn: JobFn, token: str, heartbeat_s: float) -> dict[str, Any]:
    """Body of the Ray task (a plain function so the local executor's runner is reused)."""
    return run_job(job, Path(run_dir), job_fn, token, heartbeat_s).as_dict()


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray: pip install 'dis-eval[ray]'") from None
    return ray


def run_ray(
    jobs: Sequence[Job],
    out_dir: Path,
    job_fn: JobFn,
    token: str,
    options: ExecutorOptions,
    report: Reporter | None = None,
) -> list[JobResult]:
    """Run ``jobs`` as Ray tasks (``ray.remote`` with ``options.max_retries`` for lost workers).

    Connects to ``options.address`` (``auto``, ``ray://host:10001``, ``host:6379``), uses an
    already initialised Ray, or starts a local instance. ``options.cpus_per_job`` CPUs per
    job, and one GPU when the cluster has GPUs (``options.gpus_per_job`` overrides), CPU
    otherwise. ``out_dir`` must be on storage every worker sees at the same path;
    ``DIS_EVAL_DATA`` is passed on to the workers when this call starts or connects Ray. A
    Python error in a job is recorded by the job and not retried (it would fail again); a
    worker lost mid-job is retried by Ray, and the retry resumes from the job's checkpoint.
    """
    ray = import_ray()
    address, max_retries = options.address, options.max_retries
    started_here = False
    if not ray.is_initialized():
        # The dashboard is only chosen when starting a local instance.
        kwargs: dict[str, Any] = {"address": address} if address else {"include_dashboard": False}
        if os.environ.get("DIS_EVAL_DATA"):
            # Workers find the prepared data set where the driver was told it is.
            kwargs["runtime_env"] = {"env_vars": {"DIS_EVAL_DATA": os.environ["DIS_EVAL_DATA"]}}
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise UserError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        started_here = True
    try:
        gpus_per_job = options.gpus_per_job
        if gpus_per_job is None:
            gpus_per_job = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        task = ray.remote(
            num_cpus=options.cpus_per_job, num_gpus=gpus_per_job,
            max_retries=max_retries, retry_exceptions=False,
        )(_ray_job)
        results = _Results(report)
        emit = results.emit
        refs: dict[Any, Job] = {}
        starts: dict[Any, float] = {}
        for job in results.to_run(jobs, out_dir):
            run_dir = out_dir / job.name
            run_dir.mkdir(parents=True, exist_ok=True)
            ref = task.remote(job, str(run_dir.resolve()), job_fn, token, options.heartbeat_s)
            refs[ref] = job
            starts[ref] = time.time()
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                job = refs[ref]
                try:
                    emit(JobResult(**ray.get(ref)))
                except ray.exceptions.RayError as exc:
                    # Retries are spent (lost workers) or the task could not run at all.
                    msg = f"Ray task failed after {max_retries} retries: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    write_failed(out_dir / job.name, msg, attempts=max_retries + 1)
                    emit(JobResult(job.name, "failed", time.time() - starts[ref], msg, max_retries + 1))
        return results.items
    finally:
        if started_here:
            ray.shutdown()
