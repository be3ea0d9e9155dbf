"""End to end: the real job (train, then evaluate) through ``dis-eval sweep`` with the local
executor and with Ray (a local instance started here, once for the module: starting Ray
costs 10-20 s on a 2-core machine), and ``dis-eval compare`` over both outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dis_eval.results import discover_runs, group_runs
from dis_eval.run_dir import RunDir
from pipelines.cli import main
from pipelines.sweep import ExecutorOptions, all_succeeded, run_sweep, sweep_status
from pipelines.sweep.spec import parse_sweep
from tests.sweep_helpers import kill_once_job, merge_resolver, write_small_real_sweep

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]
JOBS = ["model=echo__seed=0", "model=echo__seed=1", "model=beta_vae__seed=0", "model=beta_vae__seed=1"]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep_local")
    sweep = write_small_real_sweep(folder)
    out = folder / "out"
    rc = main(["sweep", str(sweep), "--out", str(out), "--jobs", "2"])
    return sweep, out, rc


def test_local_sweep_trains_and_scores_every_job(local_sweep):
    _, out, rc = local_sweep
    assert rc == 0
    for name in JOBS:
        run = RunDir(out / name)
        assert run.model.is_file() and run.checkpoint.is_file()
        metrics = json.loads(run.metrics.read_text())
        assert set(metrics["headline"]) == {"mig", "factor_vae"}
        assert 0.0 <= metrics["headline"]["mig"] <= 1.0 and 0.0 <= metrics["headline"]["factor_vae"] <= 1.0
        assert metrics["settings"]["mig"]["num_train"] == 256
        summary = json.loads(run.summary.read_text())
        assert summary["status"] == "done" and summary["step"] == 4
    runs = {r.path.name: r for r in discover_runs([out])}
    assert sorted(runs) == sorted(JOBS)
    assert runs["model=beta_vae__seed=1"].config["model"] == "beta_vae"
    assert runs["model=beta_vae__seed=1"].config["seed"] == 1


def test_status_and_rerun_of_a_finished_sweep(local_sweep, capsys):
    sweep, out, _ = local_sweep
    capsys.readouterr()
    assert main(["sweep", "--status", str(out)]) == 0
    assert "4 jobs: 4 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out
    mtimes = {n: RunDir(out / n).metrics.stat().st_mtime_ns for n in JOBS}
    assert main(["sweep", str(sweep), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 jobs (4 already done)" in text and "0 done, 4 already done, 0 failed" in text
    assert mtimes == {n: RunDir(out / n).metrics.stat().st_mtime_ns for n in JOBS}


@pytest.mark.parametrize("old, new, error", [
    ("seed: [0, 1]", "seed: [0, -1]", "sweep 'e2e-small', job model=echo__seed=-1: seed must be >= 0, got -1"),
    ("num_train: 256", "num_trian: 256",
     "sweep file {sweep}, evaluation: unknown setting(s) num_trian for metric mig; known: "),
])
def test_a_bad_value_fails_up_front_with_one_line(tmp_path, capsys, old, new, error):
    sweep = write_small_real_sweep(tmp_path)
    sweep.write_text(sweep.read_text().replace(old, new))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " + error.format(sweep=sweep)) and "\n" not in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Workers import the job functions of tests/ by name: give them the repo on their path.
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
    )
    yield ray
    ray.shutdown()


def test_ray_sweep_retries_a_killed_worker_and_records_a_failing_job(local_ray, tmp_path):
    out = tmp_path / "out"
    spec = parse_sweep({
        "name": "ray-small",
        "base": {"steps": 10},
        "grid": {"model": ["echo", "vae"], "behaviour": ["kill_once", "fail"]},
    })

    results = {r.name: r for r in run_sweep(
        spec, out, ExecutorOptions(executor="ray", max_retries=2),
        job_fn=kill_once_job, resolve=merge_resolver, report=None,
    )}
    assert not all_succeeded(results.values())
    for model in ("echo", "vae"):
        run_dir = out / f"model={model}__behaviour=kill_once"
        # Killed once by SIGKILL mid-job, retried by Ray, resumed from the checkpoint.
        assert results[run_dir.name].status == "done"
        assert len((run_dir / "calls.log").read_text().splitlines()) == 2
        assert json.loads(RunDir(run_dir).metrics.read_text())["resumed_from"] == 5
        # A Python error is recorded once, not retried, and stops nothing else.
        bad = out / f"model={model}__behaviour=fail"
        assert results[bad.name].status == "failed"
        assert results[bad.name].error == f"RuntimeError: deliberate failure of {bad.name}"
        assert len((bad / "calls.log").read_text().splitlines()) == 1
    states = {r["name"]: r["state"] for r in sweep_status(out)}
    assert sorted(states.values()) == ["done", "done", "failed", "failed"]
    # A re-run skips finished jobs and runs only the failed ones again.
    again = {r.name: r.status for r in run_sweep(
        spec, out, ExecutorOptions(executor="ray"), job_fn=kill_once_job, resolve=merge_resolver, report=None,
    )}
    assert again == {n: ("skipped" if "kill_once" in n else "failed") for n in states}


def test_ray_runs_the_real_small_sweep_and_compare_reads_both_executors(local_ray, local_sweep, tmp_path):
    """The same sweep on Ray as with the local executor: same layout, one comparison table."""
    from pipelines.compare import compare_runs

    sweep, local_out, _ = local_sweep
    ray_out = tmp_path / "ray"
    assert main(["sweep", str(sweep), "--out", str(ray_out), "--executor", "ray"]) == 0
    names = sorted(p.name for p in ray_out.iterdir() if p.is_dir())
    assert names == sorted(["model=echo__seed=0", "model=echo__seed=1",
                            "model=beta_vae__seed=0", "model=beta_vae__seed=1"])
    for name in names:
        assert RunDir(ray_out / name).is_finished()

    runs = discover_runs([ray_out, local_out])
    assert len(runs) == 8 and all(r.has_scores for r in runs)
    grouped = group_runs(runs)
    # Two configurations (echo, beta_vae), each with 2 seeds x 2 executors.
    assert sorted(len(members) for _, members in grouped.groups) == [4, 4]
    lines: list[str] = []
    outputs = compare_runs([ray_out, local_out], tmp_path / "cmp", plots=False, log=lines.append)
    assert (tmp_path / "cmp" / "scores.csv").is_file() and not outputs.missing
    assert "8 run(s), 8 with scores, 2 configuration(s)" in lines[0]
