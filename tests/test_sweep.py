"""Sweep machinery with trivial job functions: grids, names, skip / fail / retry, locks."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from dis_eval.errors import UserError
from dis_eval.run_dir import SWEEP_LOCK_FILE, RunDir
from pipelines.sweep import ExecutorOptions, all_succeeded, prepare_out_dir, run_sweep, sweep_status
from pipelines.sweep.runner import HEARTBEAT_S, MANIFEST_FILE, JobLock, job_state, lock_is_live
from pipelines.sweep.spec import expand_jobs, format_value, parse_sweep, run_name
from tests.sweep_helpers import kill_once_job, marker_job, merge_resolver

pytestmark = pytest.mark.timeout(120)


def small_spec(**over):
    raw = {
        "name": "small",
        "base": {"steps": 10, "beta": 1},
        "grid": {"model": ["echo", "vae"], "seed": [0, 1]},
        "evaluation": {"metrics": ["mig"], "representation": "mean"},
    }
    raw.update(over)
    return parse_sweep(raw)


def names(jobs):
    return [j.name for j in jobs]


def run(spec, out, extra_set=None, job_fn=marker_job, **options):
    """``spec`` run into ``out`` with the trivial jobs; ``options`` are ``ExecutorOptions`` fields."""
    return run_sweep(spec, out, ExecutorOptions(**options), extra_set,
                     job_fn=job_fn, resolve=merge_resolver, report=None)


# ----------------------------------------------------------------------------- spec


def test_grid_is_a_cartesian_product_named_by_swept_settings():
    jobs = expand_jobs(small_spec(), merge_resolver)
    assert names(jobs) == [
        "model=echo__seed=0", "model=echo__seed=1", "model=vae__seed=0", "model=vae__seed=1",
    ]
    assert jobs[0].train_config == {"steps": 10, "beta": 1, "model": "echo", "seed": 0}
    assert jobs[0].settings == {"model": "echo", "seed": 0}
    assert jobs[0].evaluation["metrics"] == ["mig"]


def test_include_rows_cross_the_grid_and_coinciding_rows_run_once():
    # Table 2's shape: beta rows at lambda 0 and lambda rows at beta 1 share (1, 0).
    spec = small_spec(
        grid={"model": ["echo"]},
        include=[{"beta": [1, 2, 4], "tc_weight": 0}, {"beta": 1, "tc_weight": [0, 10]}],
    )
    assert names(expand_jobs(spec, merge_resolver)) == [
        "model=echo__beta=1__tc_weight=0",
        "model=echo__beta=2__tc_weight=0",
        "model=echo__beta=4__tc_weight=0",
        "model=echo__beta=1__tc_weight=10",
    ]


def test_named_alternatives_set_several_keys_and_name_by_label():
    spec = small_spec(grid={"data": {"full": {"subset": None}, "dependent": {"subset": "authors", "bins": 8}}})
    jobs = expand_jobs(spec, merge_resolver)
    assert names(jobs) == ["data=full", "data=dependent"]
    assert jobs[1].train_config["subset"] == "authors" and jobs[1].train_config["bins"] == 8


def test_same_resolved_config_under_two_names_runs_once():
    spec = small_spec(grid={"model": ["echo"]}, include=[{"beta": 1}, {"beta": 1, "steps_alias": None}])
    merged = []
    # merge_resolver keeps steps_alias, so these differ; a resolver filling defaults does not:
    jobs = expand_jobs(spec, lambda b, o: {k: v for k, v in merge_resolver(b, o).items() if v is not None}, merged=merged)
    assert names(jobs) == ["model=echo__beta=1"]
    assert merged == [("model=echo__beta=1__steps_alias=none", "model=echo__beta=1")]


def test_names_are_filesystem_safe_unique_and_stable():
    assert format_value(1e-4) == "0.0001" and format_value(10.0) == "10" and format_value(None) == "none"
    assert run_name({"beta": 1, "seed": 0}) == "beta=1__seed=0"
    a = run_name({"data": "tests/data/x.npz"})
    b = run_name({"data": "tests-data/x.npz"})
    assert "/" not in a and a != b and a == run_name({"data": "tests/data/x.npz"})
    assert len(run_name({f"k{i}": "v" * 30 for i in range(20)})) <= 200


@pytest.mark.parametrize(
    "over, needle",
    [
        ({"grid": {"seed": 3}}, "grid.seed must be a list"),
        ({"grid": {"seed": []}}, "empty list"),
        ({"grid": {"seed": [0, 0]}}, "listed twice"),
        ({"set": {"seed": 1}}, "both fixed under `set:` and swept"),
        ({"bogus": 1}, "unknown key(s) bogus"),
        ({"evaluation": {"representation": "noisy"}}, "evaluation: representation 'noisy' is not one of mean"),
        ({"evaluation": {"metrics": ["mgi"]}}, "evaluation: unknown metric(s) mgi"),
        ({"evaluation": {"settings": {"mig": {"num_trian": 1}}}}, "evaluation: unknown setting(s) num_trian"),
        ({"evaluation": {"preset": "papr"}}, "evaluation: unknown preset 'papr'"),
        ({"evaluation": {"repeats": 0}}, "evaluation: repeats must be an integer >= 1"),
        ({"evaluation": {"metric": ["mig"]}}, "evaluation: unknown key(s) metric"),
        ({"evaluation": ["mig"]}, "`evaluation:` must be a mapping"),
        ({"include": [{"seed": [2]}]}, "already sweeps"),
    ],
)
def test_bad_sweep_files_fail_with_one_line(over, needle):
    with pytest.raises(UserError) as err:
        small_spec(**over)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_jobs_record_the_evaluation_resolved():
    from dis_eval.config.evaluation import EvalConfig
    from dis_eval.metrics import PRESETS

    # EvalConfig's rules: a preset fills what the block leaves open; settings of a metric that
    # is not scored are checked but not applied.
    spec = small_spec(evaluation={"preset": "paper", "metrics": ["mig"], "seed": 3,
                                  "settings": {"mig": {"num_bins": 30}, "dci": {"num_train": 64}}})
    ev = expand_jobs(spec, merge_resolver)[0].evaluation
    assert (ev["metrics"], ev["representation"], ev["protocol"], ev["seed"]) == (["mig"], "sample", "full", 3)
    assert ev["settings"] == {"mig": {**PRESETS["paper"]["settings"]["mig"], "num_bins": 30}}
    # No preset, no representation: both conventions, stored as chosen so that the job scores both.
    default = EvalConfig.from_dict(expand_jobs(small_spec(evaluation=None), merge_resolver)[0].evaluation)
    assert [name for name, _ in default.plan()] == ["dlib", "paper"]


def test_a_bad_grid_value_fails_the_whole_sweep_before_anything_runs(tmp_path):
    spec = small_spec(grid={"model": ["echo"], "beta": [1, -2]})
    with pytest.raises(UserError, match=r"job model=echo__beta=-2: beta must be >= 0"):
        run(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_set_overrides_the_base_but_not_a_swept_key():
    spec = small_spec()
    assert expand_jobs(spec, merge_resolver, {"steps": 99})[0].train_config["steps"] == 99
    with pytest.raises(UserError, match="--set seed"):
        expand_jobs(spec, merge_resolver, {"seed": 5})


def test_sweep_file_base_resolves_relative_to_the_file(tmp_path):
    from pipelines.sweep.spec import load_sweep

    (tmp_path / "base.yaml").write_text("steps: 7\nbeta: 2\n")
    (tmp_path / "s.yaml").write_text("base: base.yaml\ngrid: {seed: [0]}\n")
    spec = load_sweep(tmp_path / "s.yaml")
    assert spec.base == {"steps": 7, "beta": 2} and spec.name == "s"


def test_the_spec_docstring_example_is_a_valid_sweep_file():
    import textwrap

    import yaml

    from dis_eval.metrics import PRESETS
    from pipelines.sweep import resolve_train_config
    from pipelines.sweep import spec as spec_module

    block = spec_module.__doc__.split("::\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    spec = parse_sweep(yaml.safe_load(textwrap.dedent("\n".join(lines))))
    jobs = expand_jobs(spec, resolve_train_config)
    assert len(jobs) == (3 + 2) * 2 * 3  # include rows x dataset x seed
    assert jobs[0].name == "model=echo__beta=1__dataset=full__seed=0"
    tc = {j.name: j.train_config for j in jobs}["model=echo_tc__beta=1__lambda=20__dataset=dependent__seed=2"]
    assert (tc["lambda_tc"], tc["subset"], tc["steps"], tc["d_max"]) == (20, "authors", 100_000, 64)
    assert jobs[0].evaluation["settings"]["mig"] == PRESETS["paper"]["settings"]["mig"]
    assert spec.notes.startswith("lambda 10 and 20")


# ----------------------------------------------------------------------------- local executor


def calls(out: Path, name: str) -> int:
    return len((out / name / "calls.log").read_text().splitlines())


def test_local_sweep_runs_every_job_and_a_rerun_skips_finished_ones(tmp_path):
    out = tmp_path / "out"
    results = run(small_spec(), out)
    assert [r.status for r in results] == ["done"] * 4 and all_succeeded(results)
    assert {r["state"] for r in sweep_status(out)} == {"done"}
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert [j["name"] for j in manifest["jobs"]] == names(expand_jobs(small_spec(), merge_resolver))
    job_file = json.loads(RunDir(out / "model=vae__seed=1").sweep_job.read_text())
    assert job_file["train_config"]["model"] == "vae" and job_file["sweep"] == "small"
    assert not list(out.glob(f"*/{SWEEP_LOCK_FILE}"))  # locks released

    again = run(small_spec(), out)
    assert [r.status for r in again] == ["skipped"] * 4 and all_succeeded(again)
    assert all(calls(out, n) == 1 for n in names(expand_jobs(small_spec(), merge_resolver)))


def test_a_failing_job_is_recorded_and_does_not_stop_the_others(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(grid={"model": ["echo", "vae"], "behaviour": ["ok", "fail"]})
    results = {r.name: r for r in run(spec, out)}
    assert not all_succeeded(results.values())
    assert [n for n, r in results.items() if r.status == "failed"] == [
        "model=echo__behaviour=fail", "model=vae__behaviour=fail",
    ]
    assert sum(r.status == "done" for r in results.values()) == 2
    failed = json.loads(RunDir(out / "model=echo__behaviour=fail").failed.read_text())
    assert failed["error"] == "RuntimeError: deliberate failure of model=echo__behaviour=fail"
    assert any("deliberate failure" in line for line in failed["traceback_tail"])
    states = {r["name"]: r["state"] for r in sweep_status(out)}
    assert sorted(states.values()) == ["done", "done", "failed", "failed"]

    # A re-run retries only the failed ones (the done ones are not called again) ...
    rerun = {r.name: r.status for r in run(spec, out)}
    assert rerun["model=echo__behaviour=ok"] == "skipped" and rerun["model=echo__behaviour=fail"] == "failed"
    assert calls(out, "model=echo__behaviour=ok") == 1 and calls(out, "model=echo__behaviour=fail") == 2
    # ... unless told to leave them alone.
    assert {r.status for r in run(spec, out, skip_failed=True)} == {"skipped"}
    assert calls(out, "model=echo__behaviour=fail") == 2


def test_a_killed_job_process_is_retried_and_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(grid={"behaviour": ["kill_once", "ok"]})
    results = {r.name: r for r in run(spec, out, job_fn=kill_once_job, max_retries=1)}
    assert results["behaviour=kill_once"].status == "done" and results["behaviour=kill_once"].attempts == 2
    assert calls(out, "behaviour=kill_once") == 2
    assert json.loads(RunDir(out / "behaviour=kill_once").metrics.read_text())["resumed_from"] == 5
    assert results["behaviour=ok"].status == "done"


def test_a_job_killed_more_often_than_allowed_is_failed(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(grid={"behaviour": ["kill_once"]})
    (res,) = run(spec, out, job_fn=kill_once_job, max_retries=0)
    assert res.status == "failed" and "SIGKILL" in res.error
    assert job_state(out / "behaviour=kill_once")[0] == "failed"
    # The next invocation resumes it from the checkpoint the killed process left.
    (res,) = run(spec, out, job_fn=kill_once_job, max_retries=0)
    assert res.status == "done"
    assert json.loads(RunDir(out / "behaviour=kill_once").model.read_text())["resumed_from"] == 5


def test_parallel_jobs_run_at_the_same_time(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(base={"sleep": 3.0})
    results = run(spec, out, n_jobs=4)
    assert all_succeeded(results) and len(results) == 4
    intervals = [json.loads(RunDir(out / r.name).metrics.read_text())["interval"] for r in results]
    # All four were running at one moment: the last start precedes the first end.
    assert max(a for a, _ in intervals) < min(b for _, b in intervals)
    assert RunDir(out / "model=echo__seed=0").job_log.is_file()  # output kept per job


def test_a_changed_config_does_not_silently_reuse_old_runs(tmp_path):
    out = tmp_path / "out"
    run(small_spec(), out)
    with pytest.raises(UserError, match=r"already holds runs of other settings.*steps: 10 -> 20"):
        run(small_spec(), out, extra_set={"steps": 20})


def test_runs_recorded_with_the_same_evaluation_written_differently_are_reused(tmp_path):
    from dis_eval.metrics import PRESETS

    out = tmp_path / "out"
    paper = {"preset": "paper", "metrics": ["factor_vae", "mig"]}
    spec = small_spec(evaluation=paper)
    run(spec, out)
    # As sweeps recorded jobs before the evaluation was typed: six keys, the counts spelled out.
    for job in expand_jobs(spec, merge_resolver):
        job_file = RunDir(out / job.name).sweep_job
        record = json.loads(job_file.read_text())
        record["evaluation"] = {
            "metrics": ["factor_vae", "mig"], "representation": "sample", "protocol": "full", "seed": 0,
            "settings": {m: PRESETS["paper"]["settings"][m] for m in ("factor_vae", "mig")}, "device": None,
        }
        record["fingerprint"] = "0123456789abcdef"
        job_file.write_text(json.dumps(record))
    assert {r.status for r in run(spec, out)} == {"skipped"}
    assert json.loads(job_file.read_text())["evaluation"]["preset"] == "paper"  # rewritten
    with pytest.raises(UserError, match=r"other settings: .*\(differs in representation: 'sample' -> 'mean'\)"):
        run(small_spec(evaluation={**paper, "representation": "mean"}), out)


@pytest.mark.parametrize("subset, protocol, shared", [
    (None, None, True), (None, "full", True), ("authors", None, True), ("authors", "subset", True),
    ("authors", "full", False),
])
def test_the_real_job_loads_its_data_once_and_scores_on_it_when_the_rows_agree(
        tmp_path, monkeypatch, subset, protocol, shared):
    import pipelines.evaluate
    import pipelines.train
    from dis_eval.config.evaluation import EvalConfig
    from pipelines.sweep import resolve_train_config, runner
    from pipelines.sweep.spec import Job

    data, seen = object(), {}
    monkeypatch.setattr(runner, "load_training_data", lambda cfg: seen.setdefault("loads", []).append(cfg) or data)
    monkeypatch.setattr(pipelines.train, "train", lambda cfg, run, **kw: seen.update(train=kw))
    monkeypatch.setattr(pipelines.evaluate, "evaluate_run",
                        lambda run, config, data=None: seen.update(eval=(run.path, config, data)))
    job = Job("j", {}, resolve_train_config({"model": "echo", "subset": subset, "device": "cpu"}, {}),
              EvalConfig(protocol=protocol, metrics=("mig",)).resolved().as_dict())
    runner.train_and_evaluate(job, tmp_path)
    assert [cfg.subset for cfg in seen["loads"]] == [subset]
    assert seen["train"] == {"resume": False, "progress": False, "data": data}
    run_path, config, eval_data = seen["eval"]
    assert run_path == tmp_path and config == job.eval_config() and config.metrics == ("mig",)
    assert eval_data is (data if shared else None)

    # A trained run (interrupted while scored) is only scored: evaluate_run loads its rows.
    seen.clear()
    RunDir(tmp_path).model.write_text("")
    runner.train_and_evaluate(job, tmp_path)
    assert set(seen) == {"eval"} and seen["eval"][2] is None


# ----------------------------------------------------------------------------- locks and status


def test_lock_held_by_a_live_process_makes_the_job_busy_and_stale_locks_are_taken_over(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(grid={"seed": [0, 1]})
    prepare_out_dir(spec, expand_jobs(spec, merge_resolver), out)
    now = time.time()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "token": "other", "started": now,
              "heartbeat": now, "stale_after": 60}
    RunDir(out / "seed=0").sweep_lock.write_text(json.dumps(holder))
    stale = {**holder, "heartbeat": now - 3600}
    RunDir(out / "seed=1").sweep_lock.write_text(json.dumps(stale))
    assert job_state(out / "seed=0")[0] == "running" and job_state(out / "seed=1")[0] == "pending"
    results = run(spec, out)
    assert {r.name: r.status for r in results} == {"seed=0": "busy", "seed=1": "done"}
    assert not all_succeeded(results)
    status = {r["name"]: r for r in sweep_status(out)}
    assert status["seed=0"]["state"] == "running" and status["seed=0"]["pid"] == os.getpid()


def test_lock_liveness_rules():
    now = time.time()
    me = {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": now, "stale_after": 10}
    assert lock_is_live(me, now)
    assert not lock_is_live({**me, "heartbeat": now - 11}, now)  # stale heartbeat
    assert not lock_is_live({**me, "pid": 2**22 + 12345}, now)  # dead pid on this host
    assert lock_is_live({**me, "host": "elsewhere", "pid": 2**22 + 12345}, now)  # other host: heartbeat only
    assert not lock_is_live(None) and not lock_is_live({"pid": 1}, now)


def test_heartbeat_keeps_a_lock_fresh_and_release_removes_it(tmp_path):
    lock_file = RunDir(tmp_path).sweep_lock
    lock = JobLock(tmp_path, token="t", heartbeat_s=0.05)
    assert lock.acquire()
    first = json.loads(lock_file.read_text())["heartbeat"]
    time.sleep(0.3)
    assert json.loads(lock_file.read_text())["heartbeat"] > first
    other = JobLock(tmp_path, token="u", heartbeat_s=0.05)
    assert not other.acquire() and other.holder["token"] == "t"
    again = JobLock(tmp_path, token="t", heartbeat_s=0.05)  # a retry by the same invocation
    assert again.acquire()
    lock.release()  # the superseded holder does not delete the new holder's lock
    assert lock_file.exists()
    again.release()
    assert not lock_file.exists()


def test_status_reports_every_state(tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "out"
    spec = small_spec(grid={"behaviour": ["ok", "fail", "later"]})
    run(spec, out)
    later = RunDir(out / "behaviour=later")
    later.model.unlink()
    later.metrics.unlink()
    later.checkpoint.write_text("{}")
    assert main(["sweep", "--status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 jobs: 1 done, 0 running, 1 failed, 1 pending" in text
    assert "RuntimeError: deliberate failure" in text and "resumes from its checkpoint" in text
    assert main(["sweep", "--status", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["done", "failed", "pending"]
    assert main(["sweep", "--status", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("options, error", [
    ({"executor": "slurm"}, "unknown executor 'slurm': use local or ray"),
    ({"address": "auto"}, "--address is for --executor ray"),
    ({"executor": "ray", "n_jobs": 2}, "--jobs is for the local executor; Ray runs as many jobs as the cluster fits"),
    ({"n_jobs": 0}, "--jobs must be at least 1, got 0"),
    ({"n_jobs": 2.5}, "--jobs must be an integer, got 2.5"),
    ({"max_retries": -1}, "--max-retries must be at least 0, got -1"),
    ({"executor": "ray", "cpus_per_job": -1.0}, "--cpus-per-job must be at least 0, got -1.0"),
    ({"executor": "ray", "gpus_per_job": -1}, "gpus_per_job must be at least 0, got -1"),
    ({"heartbeat_s": 0}, "heartbeat_s must be more than 0, got 0"),
])
def test_executor_options_are_validated_once_with_one_line_errors(options, error):
    with pytest.raises(UserError) as err:
        ExecutorOptions(**options)
    assert str(err.value) == error


def test_executor_options_defaults_and_summary():
    default = ExecutorOptions()
    assert (default.executor, default.n_jobs, default.address, default.max_retries, default.cpus_per_job,
            default.gpus_per_job, default.skip_failed) == ("local", 1, None, 2, 1.0, None, False)
    assert default.heartbeat_s == HEARTBEAT_S and not default.job_logs and ExecutorOptions(n_jobs=3).job_logs
    assert not ExecutorOptions(n_jobs=3, log_to_files=False).job_logs
    assert default.describe() == "local, 1 at a time"
    assert ExecutorOptions(executor="ray").describe() == "ray (local instance)"
    assert ExecutorOptions(executor="ray", address="auto").describe() == "ray (auto)"


@pytest.mark.parametrize("flags, options", [
    ([], ExecutorOptions()),
    (["--jobs", "3", "--max-retries", "0", "--skip-failed"], ExecutorOptions(n_jobs=3, max_retries=0, skip_failed=True)),
    (["--executor", "ray", "--address", "auto", "--cpus-per-job", "2"],
     ExecutorOptions(executor="ray", address="auto", cpus_per_job=2.0)),
])
def test_the_command_line_builds_the_options_from_its_flags(tmp_path, monkeypatch, flags, options):
    import pipelines.sweep.run
    from pipelines.cli import main

    seen = []
    monkeypatch.setattr(pipelines.sweep.run, "run_sweep", lambda *args, **kw: seen.append((args, kw)) or [])
    assert main(["sweep", "table2_cpu_small", "--out", str(tmp_path / "out"), *flags, "--set", "steps=3"]) == 0
    assert seen == [(("table2_cpu_small", str(tmp_path / "out"), options, {"steps": 3}), {})]


@pytest.mark.parametrize("flags, error", [
    (["--address", "auto"], "--address is for --executor ray"),
    (["--executor", "ray", "--jobs", "0"], "--jobs is for the local executor; Ray runs as many jobs as the cluster fits"),
    (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--max-retries", "-1"], "--max-retries must be at least 0, got -1"),
])
def test_bad_executor_flags_fail_before_anything_is_written(tmp_path, capsys, flags, error):
    from pipelines.cli import main

    assert main(["sweep", "table2_cpu_small", "--out", str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err == f"error: {error}\n"
    assert not (tmp_path / "out").exists()


def test_ray_executor_without_ray_installed_is_a_one_line_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(UserError) as err:
        run(small_spec(), tmp_path / "out", executor="ray")
    assert str(err.value) == "the ray executor needs Ray: pip install 'dis-eval[ray]'"


def test_names_follow_the_order_the_file_declares_keys():
    raw = {"base": {}, "include": [{"model": ["echo"], "beta": [2]}], "grid": {"seed": [0]}}
    assert names(expand_jobs(parse_sweep(raw), merge_resolver)) == ["model=echo__beta=2__seed=0"]
    raw = {"base": {}, "grid": {"seed": [0]}, "include": [{"model": ["echo"], "beta": [2]}]}
    assert names(expand_jobs(parse_sweep(raw), merge_resolver)) == ["seed=0__model=echo__beta=2"]


# ----------------------------------------------------------------------------- shipped sweeps


@pytest.mark.parametrize("name, n_jobs", [("table2", 240), ("table2_cpu_small", 24)])
def test_shipped_table2_sweeps_resolve_and_score_like_the_authors(name, n_jobs):
    from dis_eval.metrics import PRESETS
    from pipelines.sweep import resolve_train_config
    from pipelines.sweep.spec import load_sweep

    spec = load_sweep(name)
    merged = []
    jobs = expand_jobs(spec, resolve_train_config, merged=merged)
    assert len(jobs) == n_jobs and not merged
    by_name = {j.name: j for j in jobs}
    first = by_name["model=echo__beta=1__dataset=full__seed=0"].train_config
    assert first["tc_weight"] == 0 and first["subset"] is None and first["family"] == "echo"
    dep = by_name["model=vae_tc__beta=1__lambda=10__dataset=dependent__seed=1"].train_config
    assert dep["subset"] == "authors" and dep["lambda_tc"] == 10 and dep["family"] == "vae"
    if name == "table2":
        assert {j.train_config["steps"] for j in jobs} == {300_000}
        assert {j.train_config["seed"] for j in jobs} == set(range(10))
        betas = {j.train_config["beta"] for j in jobs if j.train_config["tc_weight"] == 0}
        lambdas = {j.train_config["tc_weight"] for j in jobs if j.train_config["beta"] == 1}
        assert betas == {1, 2, 4} and lambdas == {0, 10, 20, 50}
    # The authors' evaluation, named once (the paper preset) and expanded into every job:
    # Echo/VAE sample, full grid, FactorVAE and MIG at counts in multiples of 64.
    assert spec.evaluation.preset == "paper" and not spec.evaluation.settings
    paper = PRESETS["paper"]
    for job in jobs:
        ev = job.evaluation
        assert (ev["representation"], ev["protocol"], ev["seed"]) == ("sample", "full", 0)
        assert ev["metrics"] == ["factor_vae", "mig"] == paper["metrics"]
        assert ev["settings"] == {m: paper["settings"][m] for m in ev["metrics"]}
    assert "ASSUMED" in spec.notes


def test_list_shows_the_jobs_without_running_or_writing(tmp_path, capsys):
    from pipelines.cli import main

    assert main(["sweep", "table2", "--out", str(tmp_path / "t2"), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sweep table2: 240 jobs -> {tmp_path / 't2'}" and lines[1].startswith("notes: ")
    assert lines[2].split() == ["pending", "model=echo__beta=1__dataset=full__seed=0"]
    assert len(lines) == 242 and not (tmp_path / "t2").exists()


SWEEP_PROCESS = """
import sys
from pathlib import Path
from pipelines.sweep import ExecutorOptions, run_sweep
from pipelines.sweep.spec import parse_sweep
from tests.sweep_helpers import marker_job, merge_resolver
spec = parse_sweep({"name": "long", "base": {"steps": 10, "sleep": 600}, "grid": {"seed": [0, 1]},
                    "evaluation": {"metrics": ["mig"]}})
run_sweep(spec, Path(sys.argv[1]), ExecutorOptions(n_jobs=2), None, job_fn=marker_job,
          resolve=merge_resolver, report=None)
"""


def _running(pid: int) -> bool:
    """Process ``pid`` exists and is not a zombie (ended, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_job_processes_die_with_their_sweep(tmp_path):
    """SIGKILL of a sweep ends its job processes too (they are the fork server's children, not
    the sweep's): a re-run, or the service's next attempt, must not find them still running."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP_PROCESS, str(out)], cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 60
        while len(calls := list(out.glob("*/calls.log"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(c.read_text().split()[0]) for c in calls]
        assert len(pids) == 2 and all(_running(p) for p in pids)
    finally:
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
    deadline = time.monotonic() + 20
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [p for p in pids if _running(p)]
    for p in alive:  # do not leave them behind even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not alive, f"job processes {alive} outlived their SIGKILLed sweep"
