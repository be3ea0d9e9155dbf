"""The run folder class: file names, metrics.json merging, and the writer's lock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir


def _result(metric: str, value: float) -> dict:
    return {"scores": {metric: {"v": value}}, "headline": {metric: value}, "representation": "mean"}


def test_write_metrics_merges_and_keeps_other_metrics(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.write_metrics(_result("mig", 0.1))
    merged = run.write_metrics(_result("factor_vae", 0.8))
    assert merged["headline"] == {"mig": 0.1, "factor_vae": 0.8}
    assert json.loads(run.metrics.read_text()) == merged
    assert not list(run.path.glob(".*.tmp-*"))  # no temporary file left behind


def test_a_training_holder_makes_evaluate_fail_at_once_naming_it(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with run.lock("train"):
        t0 = time.monotonic()
        with pytest.raises(UserError, match=r"being written by pid \d+ on .* \(train, since"):
            run.write_metrics(_result("mig", 0.1))
        assert time.monotonic() - t0 < 5  # no waiting behind a training run
        with pytest.raises(UserError, match="being written"):
            with run.lock("train"):
                pass
    run.write_metrics(_result("mig", 0.1))  # released


def test_a_second_evaluate_waits_for_the_first(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    held = threading.Event()

    def short_merge() -> None:
        with run.lock("evaluate"):
            held.set()
            time.sleep(0.5)

    worker = threading.Thread(target=short_merge)
    worker.start()
    held.wait(5)
    run.write_metrics(_result("mig", 0.1))  # waits (up to its limit), then merges
    worker.join()
    assert run.read_metrics()["headline"] == {"mig": 0.1}


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    code = ("import sys, time; from dis_eval.run_dir import RunDir\n"
            "with RunDir(sys.argv[1]).lock('train'):\n    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match="train"):
            run.write_metrics(_result("mig", 0.1))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run.write_metrics(_result("mig", 0.1))  # the operating system released the killed holder's lock
    assert run.read_metrics()["headline"] == {"mig": 0.1}
