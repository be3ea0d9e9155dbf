"""The service's job queue under faults: concurrent claims from several processes, a worker
SIGKILLed mid-training whose job another worker finishes from the checkpoint, the server
SIGKILLed and restarted without losing a job, and cancelling."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dis_eval.run_dir import RunDir
from pipelines.serve.queue import JobQueue
from pipelines.serve.settings import ServeSettings
from pipelines.serve.worker import spawn_worker

pytestmark = pytest.mark.timeout(400)
ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def fast_settings(root: Path, **kw) -> ServeSettings:
    return ServeSettings(root=root, poll_s=0.2, heartbeat_s=0.5, stale_after_s=6.0, reaper_s=0.5, **kw)


# ---- claims --------------------------------------------------------------------------------------

CLAIMER = """
import sys, time
from pipelines.serve.queue import JobQueue
q = JobQueue(sys.argv[1])
me = sys.argv[2]
while not __import__('os').path.exists(sys.argv[3]):
    time.sleep(0.01)
n = 0
while True:
    job = q.claim(me)
    if job is None:
        break
    with open(sys.argv[4], 'a') as fh:      # what this worker ran, one line a job
        fh.write(job.id + '\\n')
    time.sleep(0.002)
    assert q.finish(job, me, {'by': me})
    n += 1
print(n)
"""


def test_two_worker_processes_claim_each_job_exactly_once(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "jobs.sqlite3")
    ids = [queue.submit("evaluate", {"n": i}).id for i in range(150)]
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(queue.path), f"w{i}", str(go), str(tmp_path / f"ran{i}")],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for i in range(2)]
    time.sleep(1.0)
    go.touch()  # both start claiming at once
    counts = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    ran = [(tmp_path / f"ran{i}").read_text().split() if (tmp_path / f"ran{i}").exists() else [] for i in range(2)]
    assert sum(counts) == 150 and sorted(ran[0] + ran[1]) == sorted(ids)  # each job ran once, none twice
    assert not set(ran[0]) & set(ran[1])
    for job_id in ids:
        job = queue.get(job_id)
        assert job.state == "done" and job.attempts == 1
        assert [c["attempt"] for c in queue.claims(job_id)] == [1]
        assert job.result == {"by": job.worker}
    assert queue.claim("late") is None


def test_only_the_claiming_worker_records_a_result_and_stale_jobs_are_requeued(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "jobs.sqlite3", max_attempts=2)
    job = queue.submit("train", {"x": 1})
    first = queue.claim("a")
    assert first is not None and first.id == job.id and queue.claim("b") is None
    time.sleep(0.05)
    assert queue.requeue_stale(0.01) == [job.id]          # a's heartbeat is too old
    assert queue.heartbeat(first, "a") == "lost"           # a learns it lost the job ...
    assert not queue.finish(first, "a", {"late": True})    # ... and cannot record it done
    second = queue.claim("b")
    assert second is not None and second.attempts == 2
    assert queue.finish(second, "b", {"ok": True})
    assert queue.get(job.id).result == {"ok": True}
    assert [(c["attempt"], c["worker"]) for c in queue.claims(job.id)] == [(1, "a"), (2, "b")]
    # a job whose workers keep dying fails after max_attempts claims, with the reason
    other = queue.submit("train", {"x": 2})
    for _ in range(2):
        assert queue.claim("c") is not None
        time.sleep(0.02)
        queue.requeue_stale(0.01)
    assert queue.get(other.id).state == "failed" and "died 2 times" in queue.get(other.id).error


def test_cancel_queued_and_running(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "jobs.sqlite3")
    a, b = queue.submit("train", {}), queue.submit("train", {})
    assert queue.cancel(a.id).state == "cancelled"
    assert queue.claim("w").id == b.id  # the cancelled job is never claimed
    running = queue.get(b.id)
    assert queue.cancel(b.id).state == "running" and queue.heartbeat(running, "w") == "cancel"
    assert queue.cancelled(running, "w") and queue.get(b.id).state == "cancelled"
    assert queue.cancel(b.id).state == "cancelled"  # a finished job stays as it is


# ---- real workers, real jobs -----------------------------------------------------------------------

STEPS = 30
TRAIN = {"config": "tiny_cpu", "overrides": {"steps": STEPS, "checkpoint_every": 5, "log_every": 5, "batch_size": 8}}


def test_worker_killed_mid_training_job_is_finished_by_another_from_its_checkpoint(tmp_path: Path) -> None:
    from pipelines.serve.jobs import parse_train

    settings = fast_settings(tmp_path)
    queue = JobQueue(settings.db_path)
    job = queue.submit("train", parse_train({**TRAIN, "name": "killed"}, settings))
    run = RunDir(tmp_path / "killed")
    a = spawn_worker(settings, "worker-a")
    try:
        wait_for(lambda: run.checkpoint.is_file(), 120, "the first checkpoint")
        a.send_signal(signal.SIGKILL)
        a.wait()
    finally:
        if a.poll() is None:
            a.kill()
    from dis_eval.models.checkpoint import load_checkpoint

    step_at_kill = int(load_checkpoint(run.checkpoint)["step"])
    assert 0 < step_at_kill < STEPS
    assert queue.get(job.id).state == "running"  # nobody has noticed yet
    time.sleep(1.0)
    assert not run.is_trained()  # the training process died with its worker
    b = spawn_worker(settings, "worker-b")
    try:
        done = wait_for(lambda: queue.get(job.id).final and queue.get(job.id), 300, "the job to finish")
    finally:
        b.send_signal(signal.SIGTERM)
        b.wait(timeout=30)
    assert done.state == "done", done.error
    assert [(c["attempt"], c["worker"]) for c in queue.claims(job.id)] == [(1, "worker-a"), (2, "worker-b")]
    summary = run.read_summary()
    assert summary["status"] == "done" and summary["step"] == STEPS
    log = Path(done.log_path).read_text()
    assert "attempt 2 by worker worker-b" in log and f"train --resume {run.path}" in log
    assert done.result == {"run": "killed", "status": "done", "step": STEPS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, port: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--root", str(root), "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _up(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_server_sigkill_loses_no_job_and_a_restart_finishes_them(tmp_path: Path) -> None:
    import httpx

    port = _free_port()
    server = _serve(tmp_path, port, workers=1)
    try:
        wait_for(lambda: _up(port), 60, "the server")
        base = f"http://127.0.0.1:{port}"
        posted = [httpx.post(f"{base}/api/jobs", json={"kind": "train", "params": {**TRAIN, "name": f"r{i}"}},
                             timeout=30) for i in range(2)]
        assert [r.status_code for r in posted] == [201, 201], posted[0].text
        ids = [r.json()["id"] for r in posted]
        wait_for(lambda: RunDir(tmp_path / "r0").checkpoint.is_file(), 120, "r0's first checkpoint")
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
    queue = JobQueue(tmp_path / ".dis-eval-service.sqlite3")
    assert {queue.get(i).state for i in ids} <= {"running", "queued"}  # both still there, neither done
    time.sleep(1.0)  # the worker and its training died with the server
    assert not RunDir(tmp_path / "r0").is_trained()
    server = _serve(tmp_path, port, workers=1)
    try:
        wait_for(lambda: all(queue.get(i).final for i in ids), 300, "both jobs after the restart", step=0.5)
        states = {i: queue.get(i) for i in ids}
        assert all(j.state == "done" for j in states.values()), {i: j.error for i, j in states.items()}
        assert len(queue.claims(ids[0])) == 2 and "train --resume" in Path(states[ids[0]].log_path).read_text()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["jobs"]["done"] == 2 and health["workers"] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
    for i in range(2):
        assert json.loads(RunDir(tmp_path / f"r{i}").summary.read_text())["step"] == STEPS


def test_deleting_a_running_job_stops_its_process(tmp_path: Path) -> None:
    from pipelines.serve.jobs import parse_train

    settings = fast_settings(tmp_path)
    queue = JobQueue(settings.db_path)
    long = {**TRAIN, "overrides": {**TRAIN["overrides"], "steps": 100_000}, "name": "long"}
    job = queue.submit("train", parse_train(long, settings))
    worker = spawn_worker(settings, "worker-c")
    try:
        wait_for(lambda: RunDir(tmp_path / "long").checkpoint.is_file(), 120, "training to be under way")
        assert queue.cancel(job.id).state == "running"  # asked; the worker stops it at its next heartbeat
        stopped = wait_for(lambda: queue.get(job.id).final and queue.get(job.id), 60, "the cancellation")
        assert stopped.state == "cancelled" and stopped.error == "cancelled on request"
        lock = RunDir(tmp_path / "long").lock_file
        with open(lock, "a+") as fh:  # the training process is gone: its folder lock is free
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert worker.poll() is None  # the worker itself carries on
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert not RunDir(tmp_path / "long").is_trained()


@pytest.mark.slow
def test_ray_executor_runs_a_submission_as_a_ray_task(tmp_path: Path) -> None:
    """``--executor ray``: the worker claims and heartbeats; the job's steps run as a Ray task
    (here on a local instance the job's driver starts)."""
    import io

    import numpy as np

    pytest.importorskip("ray")
    from pipelines.serve.uploads import accept_submission
    from pipelines.serve.worker import run_worker

    fixture = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
    settings = ServeSettings(root=tmp_path, executor="ray", data_files=(str(fixture),), poll_s=0.2, heartbeat_s=0.5)
    buf = io.BytesIO()
    np.savez(buf, codes=np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32))
    buf.seek(0)
    queue = JobQueue(settings.db_path)
    fields = {"kind": "codes", "data": fixture.name, "metrics": "mig", "set": "mig.num_train=128,mig.batch_size=16"}
    job = queue.submit("score", accept_submission(settings, fields, buf, "c.npz", "rayjob"), job_id="rayjob")
    assert run_worker(settings, "ray-worker", max_jobs=1) == 1
    done = queue.get(job.id)
    assert done.state == "done", (done.error, Path(done.log_path).read_text()[-2000:])
    log = Path(done.log_path).read_text()
    assert "pipelines.serve.worker ray" in log and "the job's steps ran as one Ray task (done)" in log
    metrics = json.loads((settings.submissions_dir / "rayjob" / "metrics.json").read_text())
    assert done.result["headline"]["mig"] == metrics["headline"]["mig"]


def test_a_train_job_resumes_only_the_run_it_started(tmp_path: Path) -> None:
    from dis_eval.errors import UserError
    from pipelines.serve.jobs import job_steps, parse_train

    settings = fast_settings(tmp_path)
    params = parse_train({**TRAIN, "name": "mine"}, settings)
    first = job_steps("train", params, settings, "j", attempt=1)
    assert first[0][3:5] == ["train", str(Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "tiny_cpu.yaml")]
    RunDir(tmp_path / "mine").write_config({"model": "echo"})  # the folder now holds a run
    with pytest.raises(UserError, match="already holds a run that this job did not start"):
        job_steps("train", params, settings, "j", attempt=1)
    assert job_steps("train", params, settings, "j", attempt=2)[0][3:] == ["train", "--resume", str(tmp_path / "mine"), "--quiet"]


def test_two_real_workers_run_each_submission_once(tmp_path: Path) -> None:
    import io

    import numpy as np

    from pipelines.serve.uploads import accept_submission

    fixture = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
    settings = fast_settings(tmp_path, data_files=(str(fixture),))
    queue = JobQueue(settings.db_path)
    fields = {"kind": "codes", "data": fixture.name, "metrics": "mig", "set": "mig.num_train=128,mig.batch_size=16"}
    ids = []
    for i in range(4):
        buf = io.BytesIO()
        np.savez(buf, codes=np.random.default_rng(i).normal(size=(3000, 3)).astype(np.float32))
        buf.seek(0)
        ids.append(queue.submit("score", accept_submission(settings, fields, buf, "c.npz", f"job{i}"), job_id=f"job{i}").id)
    workers = [spawn_worker(settings, f"real-{k}") for k in "ab"]
    try:
        wait_for(lambda: all(queue.get(i).final for i in ids), 400, "every job", step=0.5)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)
    for job_id in ids:
        job = queue.get(job_id)
        assert job.state == "done", job.error
        claims = queue.claims(job_id)
        assert len(claims) == 1 and claims[0]["worker"] in ("real-a", "real-b")
        log = Path(job.log_path).read_text()
        assert log.count("pipelines.cli score") == 1 and log.count("--- done") == 1  # ran once, to completion
        metrics = json.loads((settings.submissions_dir / job_id / "metrics.json").read_text())
        assert job.result["headline"] == metrics["headline"]


# ---- SIGTERM ---------------------------------------------------------------------------------------

def test_sigterm_while_the_stop_event_is_held_does_not_hang() -> None:
    """The worker's SIGTERM handler runs in the main thread, possibly while that thread's
    ``stop.wait`` holds the event's lock (seen: an idle worker hung for good on SIGTERM). Called
    with the lock held, the handler must return and the event be set once the lock is free."""
    import threading

    from pipelines.serve.worker import sigterm_sets

    stop = threading.Event()
    handler = sigterm_sets(stop)
    with stop._cond:  # what an interrupted Event.wait holds
        handler(signal.SIGTERM, None)
        assert not stop.is_set()
    assert stop.wait(10)


def test_run_worker_gives_the_sigterm_handler_back(tmp_path: Path) -> None:
    """A worker run in a caller's main thread (tests, an embedding program) restores the caller's
    SIGTERM handler when it returns: processes forked later must still die on SIGTERM."""
    from pipelines.serve.worker import run_worker

    before = signal.getsignal(signal.SIGTERM)
    assert run_worker(fast_settings(tmp_path), "short-lived", max_jobs=0) == 0
    assert signal.getsignal(signal.SIGTERM) is before
