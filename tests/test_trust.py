"""Scores a reader can trust: both conventions side by side, warnings on inactive latents,
cached baselines, the two spreads kept apart, strict JSON and provenance on every score."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dis_eval.config.evaluation import EvalConfig
from dis_eval.data.factors import FACTOR_NAMES, all_classes
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
SMALL = {"factor_vae": {"num_train": 100, "num_eval": 50, "num_variance_estimate": 300},
         "mig": {"num_train": 640}}
SMALL_ARGS = [a for m, kv in SMALL.items() for k, v in kv.items() for a in ("--set", f"{m}.{k}={v}")]


def strict_load(text: str) -> object:
    """json.loads that rejects NaN / Infinity tokens."""
    def bad(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIS_EVAL_CACHE", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- the plan
def test_plan_both_conventions_by_default_one_when_chosen() -> None:
    plan = EvalConfig(settings=SMALL).plan()
    assert [n for n, _ in plan] == ["dlib", "paper"]
    dlib, paper = plan[0][1], plan[1][1]
    assert (dlib.representation, dlib.protocol, dlib.metrics[:2]) == ("mean", None, ("factor_vae", "mig"))
    assert len(dlib.metrics) == 8
    assert (paper.representation, paper.protocol, paper.metrics) == ("sample", "full", ("factor_vae", "mig"))
    assert paper.settings["factor_vae"]["num_train"] == 100  # --set applies to both
    assert paper.settings["mig"]["batch_size"] == 64  # the authors' batches
    # the protocol the user chose is dlib's; the authors' is always the full grid
    assert EvalConfig(protocol="subset").plan()[1][1].protocol == "full"
    assert [n for n, _ in EvalConfig(preset="dlib").plan()] == ["dlib"]
    assert [n for n, _ in EvalConfig(preset="paper").plan()] == ["paper"]
    assert [n for n, _ in EvalConfig(representation="sample").plan()] == ["custom"]
    assert [n for n, _ in EvalConfig(metrics=("mig",)).plan()] == ["dlib", "paper"]
    assert EvalConfig(metrics=("mig",)).plan()[1][1].metrics == ("mig",)


# ----------------------------------------------------------------------------- strict JSON
def test_strict_json_writer_nulls_with_reasons(tmp_path: Path) -> None:
    from dis_eval.atomic import atomic_write_json, strict_json_dumps

    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -math.inf}, "e": 1.5,
                             "f": float("nan"), "f_undefined": "no active latent"})
    got = strict_load(path.read_text())
    assert got["a"] is None and got["a_undefined"].startswith("not a number")
    assert got["b"] == [1.0, None] and got["b_undefined"] == "entry 1: +infinity when computed"
    assert got["c"] == {"d": None, "d_undefined": "-infinity when computed"}
    assert got["e"] == 1.5 and got["f_undefined"] == "no active latent"  # the writer's own reason kept
    assert strict_load(strict_json_dumps({"x": [float("nan")]}))["x"] == [None]


# ----------------------------------------------------------------------------- warnings
def test_inactive_latent_warnings() -> None:
    from dis_eval.metrics.activity import (
        INACTIVE_RATE_NATS,
        LatentActivity,
        inactive_warnings,
        rate_floor,
    )

    floor = rate_floor("echo", 0.7622)
    assert floor == pytest.approx(-math.log(0.7622))
    act = LatentActivity((floor + 1.0, floor + 0.001, floor + 2.0), floor, "test")
    assert act.inactive == [1] and act.threshold == INACTIVE_RATE_NATS
    scores = {"mig": {"top_latent_per_factor": [0, 1, 2, 1, 0]},
              "factor_vae": {"vote_latent_per_factor": [-1, 2, 1, 0, 0]}}
    ws = inactive_warnings(scores, act, FACTOR_NAMES)
    assert [(w["metric"], w["factor"], w["latent"]) for w in ws] == [
        ("mig", FACTOR_NAMES[1], 1), ("mig", FACTOR_NAMES[3], 1), ("factor_vae", FACTOR_NAMES[2], 1)]
    assert "inactive" in ws[0]["message"] and ws[0]["rate_above_floor_nats"] == pytest.approx(0.001)
    assert inactive_warnings(scores, None, FACTOR_NAMES) == []
    assert rate_floor("vae", None) == 0.0


def test_metrics_name_each_factors_best_latent() -> None:
    from dis_eval.metrics.mig import mig_from_codes

    rng = np.random.default_rng(0)
    classes = all_classes()[rng.choice(737_280, 3000, replace=False)]
    codes = np.concatenate([rng.normal(size=(3000, 1)), classes[:, ::-1].astype(float)], axis=1)
    res = mig_from_codes(codes, classes)
    assert res["top_latent_per_factor"] == [5, 4, 3, 2, 1]  # factor k sits in latent 5 - k
    assert len(res["top_mi_per_factor"]) == 5


# ----------------------------------------------------------------------------- score: baselines, provenance
def test_score_json_baselines_cached_and_provenance(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dis_eval.provenance import sha256_file

    path = tmp_path / "gt.npz"
    np.savez(path, codes=all_classes().astype(np.float32) + 0.0)
    argv = ["score", str(path), "--metrics", "factor_vae,mig", *SMALL_ARGS, "--json"]
    assert main(argv) == 0
    res = strict_load(capsys.readouterr().out)
    assert list(res["protocols"]) == ["dlib"] and "aux" in res["not_scored"]["paper"]
    base = res["baselines"]["factor_vae"]
    assert base["oracle"]["headline"] == 1.0 and base["random"]["headline"] < 0.5
    assert not base["oracle"]["cached"] and Path(base["oracle"]["file"]).parent == tmp_path / "cache" / "baselines"
    ev = res["evaluations"]["mig"]
    assert ev["codes_from"]["sha256"] == sha256_file(path)
    assert ev["metric_seeds"] == [0] and ev["variant"] == "disentanglement_lib" and ev["convention"] == "dlib"
    assert ev["settings"]["num_train"] == 640 and ev["representation"] == "mean" and ev["protocol"] == "full"
    assert set(ev["versions"]) >= {"numpy", "scikit-learn", "torch"} and "commit" in ev["code"]
    assert len(ev["data"]["rows_sha256"]) == 64 and ev["data"]["images_sha256"] is None
    assert main(argv) == 0  # the same key again: from the cache, same numbers
    again = strict_load(capsys.readouterr().out)
    assert again["baselines"]["factor_vae"]["oracle"]["cached"]
    assert again["baselines"]["mig"]["random"]["headline"] == res["baselines"]["mig"]["random"]["headline"]
    assert main([*argv[:-1], "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert "[dlib]" in out and "baselines" not in out and "[paper] not scored" in out


def test_baselines_depend_on_the_key(tmp_path: Path) -> None:
    from dis_eval.data import GroundTruthData
    from dis_eval.metrics.baselines import compute_baselines

    data = GroundTruthData.grid()
    a = compute_baselines(data, "mig", {"num_train": 640, "batch_size": 16, "num_bins": 20}, 0, 1, 4)
    b = compute_baselines(data, "mig", {"num_train": 640, "batch_size": 16, "num_bins": 20}, 0, 1, 6)
    assert a["oracle"]["file"] == b["oracle"]["file"] and b["oracle"]["cached"]  # oracle: no latent count
    assert a["random"]["file"] != b["random"]["file"] and not b["random"]["cached"]
    (Path(a["random"]["file"])).write_text('{"key": {}, "headline": 0.9}')  # a file of another key
    c = compute_baselines(data, "mig", {"num_train": 640, "batch_size": 16, "num_bins": 20}, 0, 1, 4)
    assert not c["random"]["cached"] and c["random"]["headline"] == a["random"]["headline"]


# ----------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def sub_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dis_eval.config.train import TrainConfig
    from pipelines.train import train

    cfg = TrainConfig.load(ROOT / "pipelines" / "configs" / "tiny_cpu.yaml",
                           [f"data={FIXTURE}", "subset=authors", "steps=2", "checkpoint_every=2", "log_every=1"])
    return Path(train(cfg, tmp_path_factory.mktemp("runs") / "sub", progress=False))


def test_evaluate_run_both_conventions_held_out_and_merge(sub_run: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["evaluate", str(sub_run), "--metrics", "factor_vae,mig", *SMALL_ARGS, "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[dlib] representation=mean protocol=subset" in printed
    assert "[paper] representation=sample protocol=full" in printed
    m = strict_load((sub_run / "metrics.json").read_text())
    dlib, paper = m["protocols"]["dlib"], m["protocols"]["paper"]
    assert m["scores"] == dlib["scores"] and m["representation"] == "mean" and m["protocol"] == "subset"
    assert dlib["data"]["rows"] == 432 and paper["data"]["rows"] == 3000  # the subset; the full (fixture) grid
    assert paper["settings"]["mig"]["batch_size"] == 64
    assert paper["evaluations"]["mig"]["codes_from"]["step"] == 2
    assert paper["activity"]["source"].startswith("summary.json")
    assert set(dlib["warnings"]) == {"factor_vae", "mig"}
    held = m["held_out"]
    assert (held["kept_rows"], held["dropped_rows"]) == (432, 2568)
    for part in ("kept", "dropped"):
        assert held[part]["reconstruction_nats"] > 0 and held[part]["rate_nats"] > 0
    assert held["scores"]["subset"]["rows"] == 432 and held["scores"]["full"]["rows"] == 3000
    assert set(held["scores"]["full"]["headline"]) == {"factor_vae", "mig"}
    # A later dlib-only evaluation of one metric keeps the authors' record and the other metric.
    assert main(["evaluate", str(sub_run), "--metrics", "mig", "--preset", "dlib", *SMALL_ARGS[-2:],
                 "--set", "mig.num_bins=10", "--device", "cpu", "--no-baselines"]) == 0
    m2 = strict_load((sub_run / "metrics.json").read_text())
    assert m2["protocols"]["paper"] == paper
    assert m2["protocols"]["dlib"]["settings"]["mig"]["num_bins"] == 10
    assert m2["protocols"]["dlib"]["scores"]["factor_vae"] == dlib["scores"]["factor_vae"]


# ----------------------------------------------------------------------------- compare: columns
def _run(root: Path, name: str, seed: int, dlib: dict, paper: dict | None, spread: float | None = None) -> None:
    import yaml

    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": "echo", "beta": 1.0, "seed": seed, "subset": None}))
    (run / "summary.json").write_text(json.dumps({"status": "done", "step": 10}))

    def record(conv: str, scores: dict, rep: str) -> dict:
        rec = {"convention": conv, "representation": rep, "protocol": "full",
               "scores": {"mig": {"discrete_mig": scores["mig"]}}, "headline": dict(scores),
               "baselines": {"mig": {"random": {"headline": 0.01}, "oracle": {"headline": 0.9}}}}
        if spread is not None:
            rec["spread"] = {"mig": {"discrete_mig": {"std": spread, "n": 5}}}
        return rec

    protocols = {"dlib": record("dlib", dlib, "mean")}
    if paper is not None:
        protocols["paper"] = record("paper", paper, "sample")
    (run / "metrics.json").write_text(json.dumps({**protocols["dlib"], "protocols": protocols}))


def test_compare_two_conventions_two_spreads_baselines(tmp_path: Path) -> None:
    from dis_eval import results

    _run(tmp_path, "a", 0, {"mig": 0.10}, {"mig": 0.02}, spread=0.03)
    _run(tmp_path, "b", 1, {"mig": 0.20}, {"mig": 0.04}, spread=0.04)
    _run(tmp_path, "c", 2, {"mig": 0.30}, None)
    out = results.write_comparison(results.discover_runs([tmp_path]), tmp_path / "cmp")
    assert out.scores == ["dlib:mig", "paper:mig"]
    row = out.table.iloc[0]
    assert row["n"] == 3 and row["dlib:mig_n"] == 3 and row["paper:mig_n"] == 2
    assert row["dlib:mig_mean"] == pytest.approx(0.2) and row["dlib:mig_sd"] == pytest.approx(0.1)  # training seeds
    assert row["dlib:mig_sd_metric"] == pytest.approx(math.sqrt((0.03**2 + 0.04**2) / 2))  # metric seeds, pooled
    assert row["dlib:mig_n_metric"] == 5
    assert row["dlib:mig_random"] == pytest.approx(0.01) and row["paper:mig_oracle"] == pytest.approx(0.9)
    md = out.files["md"].read_text()
    assert "dlib:mig sd over metric seeds" in md and "0.035 (n=5)" in md
    assert "dlib:mig random / oracle" in md and "0.01 / 0.90" in md
    assert "0.20 ± 0.10" in md
