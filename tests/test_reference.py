"""Reference results (docs/reference-results.md): the script's CPU mode end to end, the reader
and the collector on the tree it makes, the three-way table's arithmetic and labels, and the
"no reference run yet" wording while nothing is shipped."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from dis_eval.errors import UserError
from dis_eval.reference.paper import paper_value
from dis_eval.reference.plan import FIXTURE, REFERENCE_SWEEP, CpuMode, plan_sweep
from dis_eval.reference.results import (
    DEPENDENT,
    DLIB,
    INDEPENDENT,
    NO_REFERENCE_YET,
    PAPER,
    PROVENANCE_FILE,
    RUN_FILES,
    ScoreKey,
    data_kind,
    load_reference,
    protocol_label,
    protocol_name,
)
from dis_eval.reference.three_way import (
    FULL_LENGTH_STEPS,
    short_run_explanation,
    three_way_table,
    user_stats,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_reference.sh"
CPU_SCORES = ("factor_vae", "mig")


def _strict_json(path: Path) -> Any:
    def reject(token: str) -> None:
        raise AssertionError(f"{path} holds the non-JSON token {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def _script(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=ROOT)


# ----------------------------------------------------------------------------- CPU mode, end to end


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("reference") / "state"
    proc = _script("--cpu", "--out", str(out), "--jobs", "2",
                   env={"DIS_EVAL_CACHE": str(out.parent / "cache")})
    return out, proc


def _sweep_values(out: Path) -> dict[tuple[str, str, str], list[float]]:
    """(model, convention, score) -> values straight from the runs' metrics.json, by seed."""
    values: dict[tuple[str, str, str], list[float]] = {}
    for run in sorted((out / "sweep").iterdir()):
        if not (run / "metrics.json").is_file():
            continue
        model = yaml.safe_load((run / "config.yaml").read_text())["model"]
        metrics = _strict_json(run / "metrics.json")
        for conv, rec in metrics["protocols"].items():
            for score in CPU_SCORES:
                values.setdefault((model, conv, score), []).append(rec["headline"][score])
    return values


@pytest.mark.timeout(900)
def test_cpu_mode_plans_trains_scores_both_protocols_and_collects(cpu_run) -> None:
    out, proc = cpu_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sweep: every run done" in proc.stdout
    assert "collected 4 finished run(s)" in proc.stdout
    assert "4 reference run(s) in reference_beta1_cpu, 6 steps" in proc.stdout
    plan = yaml.safe_load((out / "sweep.yaml").read_text())
    assert plan["name"] == "reference_beta1_cpu" and plan["grid"]["seed"] == [0, 1]
    assert plan["base"]["data"] == str(FIXTURE) and plan["base"]["steps"] == 6
    from pipelines.sweep.packs import PACKS_DIR

    for run in (out / "sweep").iterdir():
        if run.is_dir() and run.name != PACKS_DIR:  # the packs' own folder holds no run
            metrics = _strict_json(run / "metrics.json")
            assert set(metrics["protocols"]) == {DLIB, PAPER}
            assert metrics["protocols"][PAPER]["representation"] == "sample"
            assert metrics["protocols"][DLIB]["representation"] == "mean"


@pytest.mark.timeout(900)
def test_reader_gives_mean_and_sd_over_seeds_per_model_score_and_protocol(cpu_run) -> None:
    out, proc = cpu_run
    assert proc.returncode == 0
    ref = load_reference(out / "collected")
    assert not ref.empty and not ref.problems
    assert sorted(r.name for r in ref.runs) == ["model=beta_vae__seed=0", "model=beta_vae__seed=1",
                                                 "model=echo__seed=0", "model=echo__seed=1"]
    assert {r.set_name for r in ref.runs} == {"reference_beta1_cpu"}
    stats = {(s.key.model, s.key.protocol, s.key.score): s for s in ref.stats()}
    raw = _sweep_values(out)
    assert set(stats) == set(raw) and len(raw) == 2 * 2 * len(CPU_SCORES)
    data = "independent, partial (dsprites_real_fixture, 3000 rows)"  # the fixture: never the paper's data
    for key, values in raw.items():
        stat = stats[key]
        assert stat.n == 2 and stat.steps == (6, 6) and stat.key.data == data
        assert stat.mean == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert stat.sd == pytest.approx(statistics.stdev(values), abs=1e-12)
        assert sorted(stat.seeds) == [0, 1]


@pytest.mark.timeout(900)
def test_collector_copies_no_weights_and_records_provenance(cpu_run) -> None:
    import torch

    out, proc = cpu_run
    assert proc.returncode == 0
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    for run_dir in sorted((out / "collected" / "reference_beta1_cpu").iterdir()):
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(RUN_FILES)  # no weights, no checkpoint
        src = out / "sweep" / run_dir.name
        assert (run_dir / "metrics.json").read_bytes() == (src / "metrics.json").read_bytes()
        assert (run_dir / "config.yaml").read_bytes() == (src / "config.yaml").read_bytes()
        prov = _strict_json(run_dir / PROVENANCE_FILE)
        summary = _strict_json(src / "summary.json")
        assert prov["set"] == "reference_beta1_cpu" and prov["run"] == run_dir.name
        assert prov["sweep"] == "reference_beta1_cpu"
        assert prov["device"] == "cpu" and prov["device_name"]
        assert prov["torch"] == torch.__version__ and prov["cuda"] == torch.version.cuda
        assert prov["versions"]["torch"] == torch.__version__ and "numpy" in prov["versions"]
        assert prov["steps_trained"] == 6 and prov["steps_config"] == 6 and prov["step_unit"] == "batch"
        assert prov["wall_s"] == summary["wall_s"] > 0 and prov["training_status"] == "done"
        assert prov["data"]["rows"] == 3000 and prov["data"]["is_full_grid"] is False
        if commit.returncode == 0:
            assert prov["commit"] == commit.stdout.strip() and isinstance(prov["dirty"], bool)
        else:
            assert prov["commit"] is None and prov["commit_undefined"]


@pytest.mark.timeout(900)
def test_running_the_script_again_continues_instead_of_retraining(cpu_run) -> None:
    out, proc = cpu_run
    assert proc.returncode == 0
    models = {p.name: p.stat().st_mtime_ns for p in (out / "sweep").glob("*/model.pt")}
    again = _script("--cpu", "--out", str(out), "--jobs", "2", env={"DIS_EVAL_CACHE": str(out.parent / "cache")})
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 jobs (4 already done)" in again.stdout and "collected 4 finished run(s)" in again.stdout
    assert models == {p.name: p.stat().st_mtime_ns for p in (out / "sweep").glob("*/model.pt")}


@pytest.mark.timeout(900)
def test_compare_writes_the_three_way_table(cpu_run, tmp_path: Path) -> None:
    from pipelines.compare import compare_runs

    out, proc = cpu_run
    assert proc.returncode == 0
    lines: list[str] = []
    outputs = compare_runs([out / "sweep"], tmp_path / "cmp", plots=False, log=lines.append)
    md = outputs.files["three_way_md"].read_text()
    csv_text = outputs.files["three_way_csv"].read_text()
    assert md in "\n".join(lines)  # the table is logged as written
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| model |")]
    for label in (protocol_label(DLIB), protocol_label(PAPER)):
        assert sum(f"| {label} |" in row for row in rows) == 4  # 2 models x the paper's 2 scores
    assert len(rows) == 8
    assert csv_text.splitlines()[0].startswith("model,data,score,protocol,your runs,reference runs,paper")
    if load_reference().empty:  # nothing shipped: said plainly, no reference number shown
        assert NO_REFERENCE_YET in md and md.count("no reference run yet") == 9  # 8 rows + the note


def _fake_run(path: Path, model: str, seed: int, step: int, steps: int, finished: bool) -> None:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(_config(model, seed, steps)))
    (path / "summary.json").write_text(json.dumps({"status": "done" if finished else "running", "step": step,
                                                   "steps": steps, "device": "cpu", "wall_s": 2.5}))
    if finished:
        (path / "model.pt").write_bytes(b"weights")
        (path / "metrics.json").write_text(json.dumps(_metrics({"mig": 0.1}, {"mig": 0.2})))


def _empty(path: Path) -> Path:
    path.mkdir()
    return path


def test_collector_names_runs_by_their_path_and_lists_unfinished_ones(tmp_path: Path) -> None:
    from dis_eval.reference.collect import collect_runs

    sweep = tmp_path / "sweep"  # a packed layout: members of two packs share folder names
    _fake_run(sweep / "echo-pack" / "seed0", "echo", 0, 10, 10, True)
    _fake_run(sweep / "vae-pack" / "seed0", "beta_vae", 0, 10, 10, True)
    _fake_run(sweep / "vae-pack" / "seed1", "beta_vae", 1, 4, 10, False)
    (sweep / "vae-pack" / "seed2").mkdir()
    (sweep / "vae-pack" / "seed2" / "sweep_job.json").write_text("{}")  # a job the sweep has not started
    report = collect_runs(sweep, "s", tmp_path / "out")
    assert report.collected == ["echo-pack__seed0", "vae-pack__seed0"]
    assert report.left == ["vae-pack__seed1: trained 4 of 10 steps; the next run of the script continues it",
                           "vae-pack__seed2: not started; the next run of the script continues it"]
    ref = load_reference(tmp_path / "out")
    assert [r.name for r in ref.runs] == ["echo-pack__seed0", "vae-pack__seed0"] and not ref.problems
    assert {r.provenance["steps_trained"] for r in ref.runs} == {10}
    assert not list((tmp_path / "out").rglob("model.pt"))
    for bad, msg in (((tmp_path / "none", "s"), "does not exist"), ((sweep, "../s"), "plain folder name"),
                     ((tmp_path / "out" / "s" / "echo-pack__seed0" / "x", "s"), "does not exist"),
                     ((_empty(tmp_path / "empty"), "s"), "no run folders")):
        with pytest.raises(UserError, match=msg):
            collect_runs(*bad, tmp_path / "dest")


# ----------------------------------------------------------------------------- the three-way table


def _metrics(dlib: dict[str, float], paper: dict[str, float] | None, subset: str | None = None) -> dict[str, Any]:
    """A metrics.json as `evaluate` writes it: the primary (dlib) record on top, both under protocols."""
    rec = {"headline": dlib, "representation": "mean", "protocol": "subset" if subset else "full",
           "convention": DLIB}
    protocols = {DLIB: rec}
    if paper is not None:
        protocols[PAPER] = {"headline": paper, "representation": "sample", "protocol": "full", "convention": PAPER}
    return {**rec, "protocols": protocols}


def _config(model: str, seed: int, steps: int, subset: str | None = None, beta: float = 1.0) -> dict[str, Any]:
    return {"model": model, "beta": beta, "tc_weight": 0.0, "subset": subset, "steps": steps, "seed": seed,
            "data": "dsprites"}


def _user_run(model: str, seed: int, dlib: dict[str, float], paper: dict[str, float] | None,
              steps: int = 3000, subset: str | None = None, beta: float = 1.0) -> SimpleNamespace:
    return SimpleNamespace(config=_config(model, seed, steps, subset, beta), metrics=_metrics(dlib, paper, subset),
                           summary={"step": steps}, seed=seed)


def _write_reference(root: Path, runs: list[tuple[str, int, dict[str, float], dict[str, float]]]) -> Path:
    for model, seed, dlib, paper in runs:
        d = root / "reference_beta1" / f"model={model}__seed={seed}"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(yaml.safe_dump(_config(model, seed, FULL_LENGTH_STEPS)))
        (d / "metrics.json").write_text(json.dumps(_metrics(dlib, paper)))
        (d / PROVENANCE_FILE).write_text(json.dumps({"steps_trained": FULL_LENGTH_STEPS, "device": "cuda",
                                                    "device_name": "NVIDIA H200"}))
    return root


@pytest.fixture
def reference_tree(tmp_path: Path) -> Path:
    return _write_reference(tmp_path / "ref", [
        ("echo", 0, {"factor_vae": 0.80, "mig": 0.10}, {"factor_vae": 0.82, "mig": 0.15}),
        ("echo", 1, {"factor_vae": 0.84, "mig": 0.12}, {"factor_vae": 0.86, "mig": 0.17}),
        ("echo", 2, {"factor_vae": 0.82, "mig": 0.14}, {"factor_vae": 0.84, "mig": 0.13}),
        ("beta_vae", 0, {"factor_vae": 0.60, "mig": 0.05}, {"factor_vae": 0.64, "mig": 0.07}),
    ])


def test_three_way_arithmetic_and_labels(reference_tree: Path) -> None:
    user = [_user_run("echo", 0, {"factor_vae": 0.50, "mig": 0.04}, {"factor_vae": 0.55, "mig": 0.05}),
            _user_run("echo", 1, {"factor_vae": 0.54, "mig": 0.06}, {"factor_vae": 0.57, "mig": 0.07})]
    table = three_way_table(user_stats(user), load_reference(reference_tree))
    rows = {(r.key.score, r.key.protocol): r for r in table.rows}
    assert set(rows) == {(s, p) for s in ("factor_vae", "mig") for p in (DLIB, PAPER)}
    r = rows[("factor_vae", DLIB)]
    assert r.user.mean == pytest.approx(0.52) and r.user.sd == pytest.approx(statistics.stdev([0.50, 0.54]))
    assert r.reference.mean == pytest.approx(0.82) and r.reference.sd == pytest.approx(0.02) and r.reference.n == 3
    assert r.paper == 0.83 == paper_value("echo", INDEPENDENT, "factor_vae")
    cells = r.cells(reference_empty=False)
    assert cells == {"model": "echo (beta 1)", "data": INDEPENDENT, "score": "factor_vae",
                     "protocol": "disentanglement_lib: mean codes, training rows",
                     "your runs": "0.52 ± 0.03 (n=2, 3,000 steps)",
                     "reference runs": "0.82 ± 0.02 (n=3, 300,000 steps)",
                     "paper": "0.83 (authors' protocol)"}
    paper_row = rows[("mig", PAPER)].cells(reference_empty=False)
    assert paper_row["protocol"] == "the authors': noisy sample, full grid"
    assert paper_row["reference runs"] == "0.15 ± 0.02 (n=3, 300,000 steps)" and paper_row["paper"] == "0.16 (authors' protocol)"
    md = table.markdown()
    assert "reference: 4 reference run(s) in reference_beta1, 300,000 steps, on NVIDIA H200." in md
    assert NO_REFERENCE_YET not in md
    rec = {(x["score"], x["protocol_name"]): x for x in table.records()}[("mig", DLIB)]
    assert rec["reference_mean"] == pytest.approx(0.12) and rec["reference_n"] == 3 and rec["paper_value"] == 0.16
    assert rec["user_steps"] == "3000" and rec["reference_steps"] == "300000"


def test_three_way_keeps_the_scores_compare_asks_for(reference_tree: Path) -> None:
    user = [_user_run("echo", 0, {"factor_vae": 0.5, "mig": 0.04}, {"factor_vae": 0.6, "mig": 0.05})]
    stats = user_stats(user, ["paper:mig", "factor_vae", "mig.discrete_mig"])
    assert sorted((s.key.score, s.key.protocol) for s in stats) == [
        ("factor_vae", DLIB), ("factor_vae", PAPER), ("mig", PAPER)]
    assert user_stats(user, []) == []


def test_three_way_never_puts_numbers_beside_other_data_or_settings(reference_tree: Path) -> None:
    user = [_user_run("echo", 0, {"mig": 0.03}, None, subset="authors"),  # the main job's data
            _user_run("echo", 0, {"mig": 0.20}, None, beta=4.0)]
    table = three_way_table(user_stats(user), load_reference(reference_tree))
    by = {(r.key.data, r.key.beta): r for r in table.rows}
    dep = by[(DEPENDENT, 1.0)]
    assert dep.reference is None and dep.paper == 0.11  # the paper's dependent column
    assert dep.cells(reference_empty=False)["reference runs"] == "no reference run of this setting"
    ind = by[(INDEPENDENT, 1.0)]  # the reference's own data, shown as its own row
    assert ind.user is None and ind.reference.mean == pytest.approx(0.12)
    assert ind.cells(reference_empty=False)["your runs"] == "no run of yours"
    b4 = by[(INDEPENDENT, 4.0)]
    assert b4.reference is None and b4.paper is None
    assert b4.cells(reference_empty=False)["paper"] == "not in the paper"
    assert len(table.rows) == 3  # no beta = 4 reference row invented, no paper-protocol row for dlib-only runs


def test_no_reference_yet_is_said_plainly(tmp_path: Path) -> None:
    empty = load_reference(tmp_path / "absent")
    assert empty.empty and empty.describe() == NO_REFERENCE_YET
    assert NO_REFERENCE_YET == ("no reference run yet: the GPU run is still to do "
                                "(scripts/reproduce_reference.sh; docs/reference-results.md)")
    user = [_user_run("echo", 0, {"factor_vae": 0.5}, {"factor_vae": 0.6})]
    table = three_way_table(user_stats(user), empty)
    md = table.markdown()
    assert md.splitlines()[-3] == f"- {NO_REFERENCE_YET}."
    for row in table.rows:
        assert row.reference is None and row.cells(reference_empty=True)["reference runs"] == "no reference run yet"
    assert all(r["reference_mean"] is None and r["reference_n"] == 0 for r in table.records())
    (tmp_path / "ref" / "reference_beta1").mkdir(parents=True)  # a set folder, no runs yet
    assert load_reference(tmp_path / "ref").describe() == NO_REFERENCE_YET


def test_the_package_says_what_it_ships() -> None:
    from dis_eval.reference.results import REFERENCE_DIR

    ref = load_reference()
    assert ref.root == REFERENCE_DIR and not ref.problems
    shipped = sorted(REFERENCE_DIR.glob("*/*/metrics.json")) if REFERENCE_DIR.is_dir() else []
    assert len(ref.runs) == len(shipped)
    if not shipped:
        assert ref.describe() == NO_REFERENCE_YET
    for run in ref.runs:  # shipped runs are full length and say where they ran
        assert run.steps == FULL_LENGTH_STEPS and run.provenance.get("device")


def test_an_incomplete_reference_run_is_listed_not_dropped(reference_tree: Path) -> None:
    (reference_tree / "reference_beta1" / "model=echo__seed=2" / PROVENANCE_FILE).unlink()
    ref = load_reference(reference_tree)
    assert len(ref.runs) == 3
    assert len(ref.problems) == 1 and ref.problems[0].endswith("model=echo__seed=2 lacks provenance.json")
    assert "unreadable reference run: " in three_way_table([], ref).markdown()


def test_protocol_names_and_data_kinds() -> None:
    assert protocol_name("mean", None, None) == DLIB == protocol_name("mean", "subset", "authors")
    assert protocol_name("sample", "full", "authors") == PAPER == protocol_name("sample", None, None)
    assert protocol_name("mean", "full", "authors") == "mean codes, full grid"
    assert protocol_name("sample", "subset", "authors") == "sample codes, subset rows"
    assert data_kind(None) == INDEPENDENT == data_kind("full")
    assert data_kind("authors") == DEPENDENT == data_kind("bins=8,drop=0.15,seed=42")
    assert data_kind("paper-text") == "dependent (paper-text)"
    fixture = {"data": {"is_full_grid": False, "source": "/x/fix.npz", "rows": 3000, "subset": None}}
    assert data_kind(None, fixture) == "independent, partial (fix, 3000 rows)"
    on_fixture = {"data": {"is_full_grid": False, "subset": "authors", "rows": 432},  # the subset's rows
                  "protocols": {PAPER: fixture}}  # the full protocol scored the whole (partial) source
    assert data_kind("authors", on_fixture) == "dependent (authors, partial source fix, 3000 rows)"
    assert data_kind("authors", {"data": {"is_full_grid": False, "subset": "authors"}}) == DEPENDENT
    key = ScoreKey("echo_tc", 1.0, 10.0, INDEPENDENT, PAPER, "mig")
    assert key.setting() == "echo_tc (beta 1, lambda 10)"


def test_short_run_explanation_and_the_main_job_readme() -> None:
    from pipelines.main_job import MainJobDefaults, _readme

    text = short_run_explanation(3000)
    assert text.startswith("A run of 3,000 steps has had 1 % of the paper's 300,000: Echo at beta 1")
    assert "only just switched on" in text and "not switched on yet" in short_run_explanation(8)
    assert short_run_explanation(8).startswith("A run of 8 steps has had 0.0027 % of the paper's 300,000:")
    assert short_run_explanation(300_000).startswith("A run of 300,000 steps is full length")
    assert text.count(". ") == 1 and text.endswith("disagrees with the paper.")  # two sentences
    readme = _readme(MainJobDefaults(), {"total_s": 1.0, "device": "cpu", "data": {"rows": 10, "source": "x"}},
                     [], None)
    flat = " ".join(readme.split())
    assert "Why these scores differ from the full-length reference" in readme and text in flat
    assert "three_way.md|csv" in readme
    assert f"Reference runs: {load_reference().describe()}." in flat


# ----------------------------------------------------------------------------- the plan and the script


def test_the_shipped_sweep_is_the_beta1_comparison_at_full_length() -> None:
    from pipelines.sweep import resolve_train_config
    from pipelines.sweep.spec import expand_jobs, load_sweep

    jobs = expand_jobs(load_sweep(REFERENCE_SWEEP), resolve_train_config)
    assert sorted(j.name for j in jobs) == sorted(f"model={m}__seed={s}" for m in ("echo", "beta_vae") for s in range(3))
    for job in jobs:
        c = job.train_config
        assert (c["beta"], c["tc_weight"], c["subset"], c["steps"], c["batch_size"], c["latents"], c["lr"]) == \
            (1.0, 0.0, None, 300_000, 64, 10, 1e-4)
        assert c["data"] == "dsprites"
        assert [name for name, _ in job.eval_config().plan()] == [DLIB, PAPER]  # both protocols
        assert {"factor_vae", "mig"} <= set(job.evaluation["metrics"]) and "dci" not in job.evaluation["metrics"]
        if c["model"] == "echo":
            assert c["d_max"] == 64


def test_plan_seeds_steps_and_cpu_mode() -> None:
    plan = plan_sweep(seeds=5)
    assert plan["grid"]["seed"] == [0, 1, 2, 3, 4] and plan["base"]["steps"] == 300_000
    short = plan_sweep(steps=25_000)
    assert short["base"]["steps"] == 25_000 and short["name"] == "reference_beta1_25000steps"
    cpu = plan_sweep(cpu=CpuMode())
    assert cpu["name"] == "reference_beta1_cpu" and cpu["grid"]["seed"] == [0, 1]
    assert cpu["base"]["device"] == "cpu" and cpu["base"]["steps"] == 6 and cpu["base"]["data"] == str(FIXTURE)
    assert cpu["evaluation"]["metrics"] == ["factor_vae", "mig"] and cpu["evaluation"]["device"] == "cpu"
    assert cpu["evaluation"]["settings"]["mig"] == {"num_train": 128}
    assert "representation" not in cpu["evaluation"] and "preset" not in cpu["evaluation"]
    for bad in (0, -1, True):
        with pytest.raises(UserError, match="--seeds must be an integer >= 1"):
            plan_sweep(seeds=bad)
    with pytest.raises(UserError, match="--steps must be an integer >= 1"):
        plan_sweep(steps=0)


def test_script_usage_errors_are_one_line() -> None:
    for args, msg in ((["--seeds", "0"], "error: --seeds must be a whole number >= 1"),
                      (["--bogus"], "error: unknown option --bogus (see --help)"),
                      (["--budget-minutes", "1", "--budget-seconds", "5"],
                       "error: give --budget-minutes or --budget-seconds, not both"),
                      (["--out"], "error: --out needs a value")):
        proc = _script(*args, timeout=60)
        assert proc.returncode == 2 and proc.stderr.strip() == msg and proc.stdout == ""
    assert "--budget-minutes M" in _script("--help", timeout=60).stdout


def test_script_without_cuda_asks_for_cpu_mode() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present here: the default mode would start the real GPU run")
    proc = _script(timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: no CUDA device here: the reference runs need a GPU "
                                   "(use --cpu for the smoke version)")


def test_script_budget_leaves_resumable_state_and_says_so(tmp_path: Path) -> None:
    proc = _script("--cpu", "--out", str(tmp_path / "s"), "--budget-seconds", "30", timeout=120)
    assert proc.returncode == 3  # budget reached: run the command again
    assert "budget: no time left for training (30 s, 60 s kept for the collection)" in proc.stdout
    assert "stopped by the budget; run this command again to continue" in proc.stdout
    assert not (tmp_path / "s" / "sweep").exists() and (tmp_path / "s" / "sweep.yaml").is_file()


@pytest.mark.timeout(600)
def test_a_budget_stop_interrupts_the_sweep_cleanly(tmp_path: Path) -> None:
    """A real stop: the sweep is SIGINTed mid-way (100,000 steps cannot finish in 15 s); every
    job is left pending (resumable), none failed, and nothing is collected."""
    out = tmp_path / "s"
    proc = _script("--cpu", "--out", str(out), "--steps", "100000", "--seeds", "1", "--budget-seconds", "75",
                   env={"DIS_EVAL_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "budget: the sweep may run" in proc.stdout and "stopped by the budget" in proc.stdout
    assert "0 done, 0 running, 0 failed, 2 pending" in proc.stdout
    assert not list(out.rglob("failed.json")) and not list(out.rglob("model.pt"))
    assert "collected 0 finished run(s)" in proc.stdout and "not collected (2):" in proc.stdout
    assert not (out / "collected" / "reference_beta1_cpu").exists()
