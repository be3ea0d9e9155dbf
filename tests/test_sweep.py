"""Sweep machinery with trivial job functions: grids, names, skip / fail / retry, locks."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from dis_eval.errors import UserError
from pipelines.sweep import all_succeeded, prepare_out_dir, run_sweep, sweep_status
from pipelines.sweep_runner import LOCK_FILE, JobLock, job_state, lock_is_live
from pipelines.sweep_spec import expand_jobs, format_value, parse_sweep, run_name
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


def run(spec, out, **kw):
    kw.setdefault("job_fn", marker_job)
    kw.setdefault("resolve", merge_resolver)
    kw.setdefault("report", None)
    return run_sweep(spec, out, **kw)


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
        ({"evaluation": {"representation": "noisy"}}, "representation 'noisy'"),
        ({"evaluation": {"metrics": ["mig"], "settings": {"dci": {}}}}, "not in evaluation.metrics"),
        ({"include": [{"seed": [2]}]}, "already sweeps"),
    ],
)
def test_bad_sweep_files_fail_with_one_line(over, needle):
    with pytest.raises(UserError) as err:
        small_spec(**over)
    assert needle in str(err.value) and "\n" not in str(err.value)


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
    from pipelines.sweep_spec import load_sweep

    (tmp_path / "base.yaml").write_text("steps: 7\nbeta: 2\n")
    (tmp_path / "s.yaml").write_text("base: base.yaml\ngrid: {seed: [0]}\n")
    spec = load_sweep(tmp_path / "s.yaml")
    assert spec.base == {"steps": 7, "beta": 2} and spec.name == "s"


# ----------------------------------------------------------------------------- local executor


def calls(out: Path, name: str) -> int:
    return len((out / name / "calls.log").read_text().splitlines())


def test_local_sweep_runs_every_job_and_a_rerun_skips_finished_ones(tmp_path):
    out = tmp_path / "out"
    results = run(small_spec(), out)
    assert [r.status for r in results] == ["done"] * 4 and all_succeeded(results)
    assert {r["state"] for r in sweep_status(out)} == {"done"}
    manifest = json.loads((out / "sweep.json").read_text())
    assert [j["name"] for j in manifest["jobs"]] == names(expand_jobs(small_spec(), merge_resolver))
    job_file = json.loads((out / "model=vae__seed=1" / "sweep_job.json").read_text())
    assert job_file["train_config"]["model"] == "vae" and job_file["sweep"] == "small"
    assert not list(out.glob(f"*/{LOCK_FILE}"))  # locks released

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
    failed = json.loads((out / "model=echo__behaviour=fail" / "failed.json").read_text())
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
    assert json.loads((out / "behaviour=kill_once" / "metrics.json").read_text())["resumed_from"] == 5
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
    assert json.loads((out / "behaviour=kill_once" / "model.pt").read_text())["resumed_from"] == 5


def test_parallel_jobs_run_at_the_same_time(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(base={"sleep": 3.0})
    results = run(spec, out, n_jobs=4)
    assert all_succeeded(results) and len(results) == 4
    intervals = [json.loads((out / r.name / "metrics.json").read_text())["interval"] for r in results]
    # All four were running at one moment: the last start precedes the first end.
    assert max(a for a, _ in intervals) < min(b for _, b in intervals)
    assert (out / "model=echo__seed=0" / "job.log").is_file()  # output kept per job


def test_a_changed_config_does_not_silently_reuse_old_runs(tmp_path):
    out = tmp_path / "out"
    run(small_spec(), out)
    with pytest.raises(UserError, match=r"already holds runs of other settings.*steps: 10 -> 20"):
        run(small_spec(), out, extra_set={"steps": 20})


# ----------------------------------------------------------------------------- locks and status


def test_lock_held_by_a_live_process_makes_the_job_busy_and_stale_locks_are_taken_over(tmp_path):
    out = tmp_path / "out"
    spec = small_spec(grid={"seed": [0, 1]})
    prepare_out_dir(spec, expand_jobs(spec, merge_resolver), out)
    now = time.time()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "token": "other", "started": now,
              "heartbeat": now, "stale_after": 60}
    (out / "seed=0" / LOCK_FILE).write_text(json.dumps(holder))
    stale = {**holder, "heartbeat": now - 3600}
    (out / "seed=1" / LOCK_FILE).write_text(json.dumps(stale))
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
    lock = JobLock(tmp_path, token="t", heartbeat_s=0.05)
    assert lock.acquire()
    first = json.loads((tmp_path / LOCK_FILE).read_text())["heartbeat"]
    time.sleep(0.3)
    assert json.loads((tmp_path / LOCK_FILE).read_text())["heartbeat"] > first
    other = JobLock(tmp_path, token="u", heartbeat_s=0.05)
    assert not other.acquire() and other.holder["token"] == "t"
    again = JobLock(tmp_path, token="t", heartbeat_s=0.05)  # a retry by the same invocation
    assert again.acquire()
    lock.release()  # the superseded holder does not delete the new holder's lock
    assert (tmp_path / LOCK_FILE).exists()
    again.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_status_reports_every_state(tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "out"
    spec = small_spec(grid={"behaviour": ["ok", "fail", "later"]})
    run(spec, out)
    (out / "behaviour=later" / "model.pt").unlink()
    (out / "behaviour=later" / "metrics.json").unlink()
    (out / "behaviour=later" / "checkpoint.pt").write_text("{}")
    assert main(["sweep", "--status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 jobs: 1 done, 0 running, 1 failed, 1 pending" in text
    assert "RuntimeError: deliberate failure" in text and "resumes from its checkpoint" in text
    assert main(["sweep", "--status", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["done", "failed", "pending"]
    assert main(["sweep", "--status", str(tmp_path / "nothing")]) == 2


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
    from dis_eval.metrics import PAPER_PRESET
    from pipelines.sweep import check_evaluation, resolve_train_config
    from pipelines.sweep_spec import load_sweep

    spec = load_sweep(name)
    check_evaluation(spec)
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
    # The authors' evaluation: Echo/VAE sample, full grid, counts in multiples of 64.
    ev = spec.evaluation
    assert (ev.representation, ev.protocol) == (PAPER_PRESET["representation"], PAPER_PRESET["protocol"])
    assert list(ev.metrics) == PAPER_PRESET["metrics"]
    assert ev.settings == {m: PAPER_PRESET["settings"][m] for m in ev.metrics}
    assert "ASSUMED" in spec.notes


def test_list_shows_the_jobs_without_running_or_writing(tmp_path, capsys):
    from pipelines.cli import main

    assert main(["sweep", "table2", "--out", str(tmp_path / "t2"), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sweep table2: 240 jobs -> {tmp_path / 't2'}" and lines[1].startswith("notes: ")
    assert lines[2].split() == ["pending", "model=echo__beta=1__dataset=full__seed=0"]
    assert len(lines) == 242 and not (tmp_path / "t2").exists()
