"""The run folder's lock (issue 17, item 3): one writer at a time, a heartbeat, takeover of a lock
left by a killed process, and two concurrent `dis-eval evaluate` runs that keep both results."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dis_eval.run_dir as run_dir_mod
from dis_eval.errors import UserError
from dis_eval.run_dir import LockHolder, RunDir
from pipelines.cli import main as cli
from tests.safety_helpers import (
    CHEAP_METRICS,
    REPO,
    TINY_CONFIG,
    CliWorker,
    cli_command,
    cli_env,
    tiny_overrides,
    train_tiny,
)

HOLD = ("import os, sys, time\nfrom dis_eval.run_dir import RunDir\n"
        "with RunDir(sys.argv[1]).lock(sys.argv[2]):\n"
        "    child = os.fork() if sys.argv[3] == 'fork' else 0\n"
        "    if child == 0 and sys.argv[3] == 'fork':\n        time.sleep(120); os._exit(0)\n"
        "    print(os.getpid(), child, flush=True)\n    time.sleep(120)\n")


def _hold(run: RunDir, purpose: str = "train", fork: bool = False) -> tuple[subprocess.Popen, int, int]:
    """A process holding ``run``'s lock (and, with ``fork``, a child that inherited it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path), purpose, "fork" if fork else "-"],
                            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, text=True)
    pid, child = map(int, proc.stdout.readline().split())
    return proc, pid, child


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_the_holder_record_names_pid_host_start_and_refreshes_its_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_dir_mod, "HEARTBEAT_S", 0.05)
    run = RunDir(tmp_path / "run")
    with run.lock("plot"):
        first = LockHolder.parse(run.lock_file.read_text())
        time.sleep(0.4)
        later = LockHolder.parse(run.lock_file.read_text())
        assert first is not None and later is not None
        assert (first.pid, first.host, first.purpose) == (os.getpid(), socket.gethostname(), "plot")
        assert later.started == first.started and later.heartbeat > first.heartbeat
    assert run.lock_file.read_text() == ""  # released normally: no record left


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_notice(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = RunDir(tmp_path / "run")
    proc, pid, _ = _hold(run)
    with pytest.raises(UserError, match=rf"being written by pid {pid} on .* \(train, since .*heartbeat"):
        with run.lock("evaluate", wait_s=1.0):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with run.lock("train"):
        err = capsys.readouterr().err
        assert f"took over the lock left by pid {pid}" in err and len(err.strip().splitlines()) == 1
        assert LockHolder.parse(run.lock_file.read_text()).pid == os.getpid()


def test_a_dead_holder_whose_lock_a_forked_child_still_pins_is_taken_over(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = RunDir(tmp_path / "run")
    proc, pid, child = _hold(run, fork=True)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with run.lock("train"):  # the child still holds the flock, but the pid it names is dead
            assert f"held by pid {pid}" in capsys.readouterr().err
            with pytest.raises(UserError, match=f"pid {os.getpid()}"):  # the new lock is real
                with run.lock("train"):
                    pass
    finally:
        _kill(child)


def test_a_stale_heartbeat_from_another_host_is_taken_over_and_a_fresh_one_is_not(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = RunDir(tmp_path / "run")
    proc, _, _ = _hold(run)
    try:
        now = time.time()
        fresh = {"pid": 1, "host": "elsewhere", "purpose": "train", "since": "then", "started": now - 9,
                 "heartbeat": now - 5}
        run.lock_file.write_text(json.dumps(fresh))  # the holder's next heartbeat is 10 s away
        with pytest.raises(UserError, match="pid 1 on elsewhere"):
            with run.lock("train"):
                pass
        run.lock_file.write_text(json.dumps({**fresh, "heartbeat": now - run_dir_mod.STALE_S - 60}))
        with run.lock("train"):
            assert "held by pid 1 on elsewhere" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("lock") / "run")


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[CliWorker, CliWorker]]:
    pair = (CliWorker(), CliWorker())
    yield pair
    for w in pair:
        w.close()


def test_two_concurrent_evaluates_keep_both_results_every_time(
        trained_run: Path, workers: tuple[CliWorker, CliWorker]) -> None:
    run = RunDir(trained_run)
    for rep in range(20):
        run.metrics.unlink(missing_ok=True)
        for worker, metric in zip(workers, CHEAP_METRICS, strict=True):
            worker.start(["evaluate", str(run.path), *CHEAP_METRICS[metric], "--seed", str(rep)])
        results = [w.result() for w in workers]
        assert [r["rc"] for r in results] == [0, 0], results
        metrics = run.read_metrics()
        assert sorted(metrics["headline"]) == sorted(CHEAP_METRICS), f"repetition {rep}: {metrics['headline']}"
        assert all(metrics["evaluations"][m]["seed"] == rep for m in CHEAP_METRICS)


def test_train_resume_while_another_process_trains_is_a_one_line_error(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(cli_command("train", str(TINY_CONFIG), *tiny_overrides(steps=100000, every=50000),
                                        "--out", str(out), "--quiet"),
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.yaml").exists():  # written under the lock, once training starts
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.1)
        assert cli(["train", "--resume", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"being written by pid {proc.pid}" in err and "(train, since" in err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


MERGER = ("import sys\nfrom dis_eval.run_dir import RunDir\nrun, tag = RunDir(sys.argv[1]), sys.argv[2]\n"
          "print('ready', flush=True); sys.stdin.readline()\n"
          "for i in range(60):\n"
          "    run.write_metrics({'scores': {f'{tag}{i}': {'v': i}}, 'headline': {f'{tag}{i}': float(i)}})\n")


def test_two_processes_merging_at_full_speed_lose_no_result(tmp_path: Path) -> None:
    """The merge itself under contention: two processes each merge 60 results back to back into
    one metrics.json (without the lock, read-merge-write races lose some)."""
    run = RunDir(tmp_path / "run")
    procs = [subprocess.Popen([sys.executable, "-c", MERGER, str(run.path), tag], cwd=REPO, env=cli_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # start both at once
        p.stdin.write("go\n")
        p.stdin.flush()
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert sorted(run.read_metrics()["headline"]) == sorted(f"{t}{i}" for t in "ab" for i in range(60))
