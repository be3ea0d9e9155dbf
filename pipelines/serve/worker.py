"""Worker processes: claim a job, run its command lines in child processes, heartbeat, record
the outcome; and the reaper, which puts the jobs of dead workers back in the queue.

A worker is one process (``run_worker``); ``dis-eval serve --workers N`` starts N of them.
Each job step runs in a child process (``dis-eval train`` ...) whose output goes to the job's
log; the child is killed when its worker dies (``pipelines.child_processes``; a sweep job's own
job processes with it), so a job never runs on without a worker that heartbeats for it. Every worker also reaps: a job whose heartbeat is
older than ``stale_after_s`` is re-queued (``JobQueue.requeue_stale``), and its next attempt
resumes (a training job from its checkpoint: see ``jobs.job_steps``).

``--executor ray``: the worker still claims and heartbeats, and the job's steps run as a Ray
task (``ray_steps``) on the cluster; a sweep job goes to the sweep's own Ray executor
(``dis-eval sweep --executor ray``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError
from pipelines.child_processes import die_with_parent
from pipelines.serve.queue import Job, JobQueue, new_worker_id
from pipelines.serve.settings import ServeSettings


def _last_error(log: Path) -> str | None:
    """The last ``error: ...`` line a dis-eval command wrote to the log (its one-line message)."""
    from pipelines.serve.queue import log_tail

    lines = [ln for ln in log_tail(log, 16384).splitlines() if ln.startswith("error: ")]
    return lines[-1][len("error: "):] if lines else None


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class StepOutcome:
    DONE, FAILED, CANCELLED, LOST, STOPPED = "done", "failed", "cancelled", "lost", "stopped"


def _run_step(argv: list[str], log: Path, queue: JobQueue, job: Job, worker: str,
              settings: ServeSettings, stop: threading.Event) -> tuple[str, str | None]:
    """Run one command line to its end, heartbeating; (outcome, error). ``stop`` (the worker
    is shutting down) ends the step and gives the job back to the queue."""
    with open(log, "ab") as fh:
        fh.write(f"$ {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent, start_new_session=True, cwd=os.getcwd())
    next_beat = time.monotonic() + settings.heartbeat_s
    while True:
        try:
            code = proc.wait(timeout=min(settings.poll_s, settings.heartbeat_s))
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            if code == 0:
                return StepOutcome.DONE, None
            return StepOutcome.FAILED, _last_error(log) or f"{Path(argv[-1]).name if argv else 'step'}: {_describe_exit(code)}"
        if stop.is_set():
            _kill_group(proc)
            return StepOutcome.STOPPED, None
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + settings.heartbeat_s
            beat = queue.heartbeat(job, worker)
            if beat != "ok":
                _kill_group(proc)
                return (StepOutcome.CANCELLED if beat == "cancel" else StepOutcome.LOST), None


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group, SIGKILL it after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_job(queue: JobQueue, job: Job, worker: str, settings: ServeSettings,
            stop: threading.Event | None = None) -> str:
    """One attempt of a claimed job: its steps in order, then the recorded outcome."""
    stop = stop or threading.Event()
    from pipelines.serve.jobs import job_result, job_steps

    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = settings.logs_dir / f"{job.id}.log"
    queue.set_log_path(job.id, str(log))
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"--- attempt {job.attempts} by worker {worker} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    try:
        steps = job_steps(job.kind, job.params, settings, job.id, job.attempts)
        if settings.executor == "ray":
            steps = ray_wrap(job.kind, steps, settings)
    except UserError as exc:
        queue.fail(job, worker, str(exc))
        return StepOutcome.FAILED
    for argv in steps:
        outcome, error = _run_step(argv, log, queue, job, worker, settings, stop)
        if outcome == StepOutcome.STOPPED:
            queue.release(job, worker)
            _note(log, "worker stopped: job back in the queue")
            return outcome
        if outcome == StepOutcome.CANCELLED:
            queue.cancelled(job, worker)
            return outcome
        if outcome == StepOutcome.LOST:
            return outcome
        if outcome == StepOutcome.FAILED:
            queue.fail(job, worker, error or "failed")
            _note(log, f"failed: {error}")
            return outcome
    try:
        result = job_result(job.kind, job.params, settings, job.id)
    except UserError as exc:
        queue.fail(job, worker, str(exc))
        return StepOutcome.FAILED
    queue.finish(job, worker, result)
    _note(log, "done")
    return StepOutcome.DONE


def _note(log: Path, text: str) -> None:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"--- {text}\n")


def reap(queue: JobQueue, settings: ServeSettings) -> list[str]:
    """Re-queue the jobs of dead workers (idempotent; any process may): at once for a worker
    of this machine whose process is gone, else once its heartbeat is ``stale_after_s`` old."""
    return queue.requeue_dead_here() + queue.requeue_stale(settings.stale_after_s)


def run_worker(settings: ServeSettings, worker: str | None = None, stop: threading.Event | None = None,
               max_jobs: int | None = None) -> int:
    """Claim and run jobs until ``stop`` is set (or SIGTERM), ``max_jobs`` ran, or forever;
    reaps every ``reaper_s``. Returns the number of jobs run."""
    queue = JobQueue(settings.db_path)
    worker = worker or new_worker_id()
    stop = stop or threading.Event()
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, sigterm_sets(stop)) if on_main_thread else None
    ran, next_reap, next_alive = 0, 0.0, 0.0
    try:
        while not stop.is_set() and (max_jobs is None or ran < max_jobs):
            now = time.monotonic()
            if now >= next_alive:
                queue.worker_alive(worker)
                next_alive = now + settings.heartbeat_s
            if now >= next_reap:
                reap(queue, settings)
                next_reap = now + settings.reaper_s
            job = queue.claim(worker)
            if job is None:
                stop.wait(settings.poll_s)
                continue
            try:
                run_job(queue, job, worker, settings, stop)
            except Exception as exc:  # noqa: BLE001 - the worker's own failure ends this job, not the worker
                queue.fail(job, worker, f"the worker failed running it: {type(exc).__name__}: {exc}".splitlines()[0])
            ran += 1
    finally:
        queue.worker_gone(worker)
        if on_main_thread:  # the caller's handler back (a test process, a fork of it, ...)
            signal.signal(signal.SIGTERM, previous)
    return ran


def sigterm_sets(stop: threading.Event) -> Any:
    """A SIGTERM handler that sets ``stop`` from a new thread. Setting it in the handler itself
    could wait forever: the handler runs in the main thread, maybe while that thread's
    ``stop.wait`` holds the event's lock (seen: a worker hung on SIGTERM while idle)."""

    def handler(signum: int, frame: Any) -> None:
        threading.Thread(target=stop.set, name="sigterm", daemon=True).start()

    return handler


# ---- --executor ray ------------------------------------------------------------------------------

def ray_wrap(kind: str, steps: list[list[str]], settings: ServeSettings) -> list[list[str]]:
    """The steps of a job under ``--executor ray``: a sweep runs with the sweep's Ray executor;
    any other job's steps run as one Ray task (``python -m pipelines.serve.worker ray ...``)."""
    if kind == "sweep":
        extra = ["--executor", "ray"] + (["--address", settings.ray_address] if settings.ray_address else [])
        return [[*argv, *extra] for argv in steps]
    payload = json.dumps({"steps": steps, "address": settings.ray_address, "cwd": os.getcwd()})
    return [[sys.executable, "-m", "pipelines.serve.worker", "ray", payload]]


def _ray_task(steps: list[list[str]], cwd: str) -> dict[str, Any]:
    """On a Ray worker: run the steps in order; their output (tail) and the first failure's exit
    status."""
    output = ""
    for step in steps:
        argv = [sys.executable, *step[1:]]  # every step is a Python module run by this node's interpreter
        proc = subprocess.run(argv, cwd=cwd if os.path.isdir(cwd) else None, capture_output=True, text=True)
        output = (output + proc.stdout + proc.stderr)[-4000:]
        if proc.returncode != 0:
            return {"ok": False, "code": proc.returncode, "output": output}
    return {"ok": True, "code": 0, "output": output}


def ray_steps(payload: str) -> int:
    """The driver of one job on Ray: connect (or start a local instance), run the task, print
    its output; exit status 0 when every step succeeded."""
    from pipelines.sweep.executors import import_ray

    spec = json.loads(payload)
    ray = import_ray()
    kwargs: dict[str, Any] = {"address": spec["address"]} if spec.get("address") else {"include_dashboard": False}
    if os.environ.get("DIS_EVAL_DATA"):
        kwargs["runtime_env"] = {"env_vars": {"DIS_EVAL_DATA": os.environ["DIS_EVAL_DATA"]}}
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        print(f"error: cannot reach the Ray cluster at {spec.get('address')!r}: {exc}", file=sys.stderr)
        return 2
    try:
        out = ray.get(ray.remote(num_cpus=1, max_retries=2)(_ray_task).remote(spec["steps"], spec["cwd"]))
    finally:
        ray.shutdown()
    sys.stdout.write(out["output"])
    print(f"the job's steps ran as one Ray task ({'exit ' + str(out['code']) if not out['ok'] else 'done'})")
    return 0 if out["ok"] else (int(out["code"]) or 1)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.serve.worker ROOT [--worker-id ID]`` (a worker of ``dis-eval serve``)
    or ``... ray PAYLOAD`` (one job's Ray driver)."""
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ray"]:
        return ray_steps(argv[1])
    p = argparse.ArgumentParser(prog="python -m pipelines.serve.worker")
    p.add_argument("settings", help="the ServeSettings as JSON (written by dis-eval serve)")
    p.add_argument("--worker-id", default=None)
    p.add_argument("--max-jobs", type=int, default=None)
    args = p.parse_args(argv)
    try:
        settings = settings_from_json(args.settings)
        run_worker(settings, args.worker_id, max_jobs=args.max_jobs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def settings_to_json(settings: ServeSettings) -> str:
    """The settings a worker needs, as JSON for its command line (without the API's token:
    workers never serve HTTP)."""
    import dataclasses

    from pipelines.serve.settings import DEFAULT_HOST

    bare = dataclasses.replace(settings, host=DEFAULT_HOST, token=None)
    return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(bare).items()})


def settings_from_json(text: str) -> ServeSettings:
    return ServeSettings(**json.loads(text))


def spawn_worker(settings: ServeSettings, worker_id: str | None = None, max_jobs: int | None = None
                 ) -> subprocess.Popen:
    """A worker in its own process (``dis-eval serve`` starts N; tests start and kill them)."""
    argv = [sys.executable, "-m", "pipelines.serve.worker", settings_to_json(settings)]
    if worker_id:
        argv += ["--worker-id", worker_id]
    if max_jobs is not None:
        argv += ["--max-jobs", str(max_jobs)]
    return subprocess.Popen(argv, preexec_fn=die_with_parent, cwd=os.getcwd())


if __name__ == "__main__":
    sys.exit(main())
