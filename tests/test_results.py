"""Table arithmetic: grouping by configuration minus seed, mean/sd, Table-2 layout, missing runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dis_eval import results
from dis_eval.errors import UserError


def make_run(root: Path, name: str, config: dict, scores: dict | None, status: str = "done",
             representation: str = "mean", protocol: str = "subset") -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "summary.json").write_text(json.dumps({"status": status, "step": 10, "steps": 10}))
    if scores is not None:
        metrics = {
            "scores": {m: {"eval_accuracy" if m == "factor_vae" else "discrete_mig": v} for m, v in scores.items()},
            "headline": scores,
            "settings": {},
            "representation": representation,
            "protocol": protocol,
            "seed": 0,
            "data": {"source": "dsprites", "subset": config["subset"]},
            "timings": {},
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def cfg(family: str, beta: float, seed: int, tc: float = 0.0, subset: str | None = None) -> dict:
    """A config.yaml as dis_eval.config.train.TrainConfig.to_dict writes it (flat keys)."""
    model = {"echo": "echo", "vae": "beta_vae"}[family] if tc == 0 else f"{family}_tc"
    return {"model": model, "family": family, "beta": beta, "lambda_tc": tc or None, "tc_weight": tc,
            "latents": 10, "data": "dsprites", "subset": subset, "seed": seed, "steps": 100,
            "device": "cpu", "device_used": "cpu", "log_every": 10, "step_unit": "batch"}


@pytest.fixture()
def runs_root(tmp_path: Path) -> Path:
    # Echo beta=1: three seeds; VAE beta=1: two seeds; VAE beta=4: one seed scored, one unscored.
    make_run(tmp_path, "echo_b1_s0", cfg("echo", 1, 0), {"factor_vae": 0.80, "mig": 0.10})
    make_run(tmp_path, "echo_b1_s1", cfg("echo", 1, 1), {"factor_vae": 0.84, "mig": 0.20})
    make_run(tmp_path, "echo_b1_s2", cfg("echo", 1, 2), {"factor_vae": 0.85, "mig": 0.18})
    make_run(tmp_path, "vae_b1_s0", cfg("vae", 1, 0), {"factor_vae": 0.60, "mig": 0.05})
    make_run(tmp_path, "vae_b1_s1", cfg("vae", 1, 1), {"factor_vae": 0.70, "mig": 0.09})
    make_run(tmp_path, "vae_b4_s0", cfg("vae", 4, 0), {"factor_vae": 0.50, "mig": 0.30})
    make_run(tmp_path, "vae_b4_s1", cfg("vae", 4, 1), None, status="running")
    return tmp_path


def test_group_mean_sd(runs_root: Path) -> None:
    runs = results.discover_runs([runs_root])
    assert len(runs) == 7
    grouped = results.group_runs(runs)
    assert len(grouped.groups) == 3
    assert grouped.key_columns == ["model", "beta"]  # constant, execution and derived keys dropped
    table = results.score_table(grouped)
    echo = table[(table["model"] == "echo")].iloc[0]
    assert echo["n"] == 3 and echo["seeds"] == "0,1,2"
    assert echo["factor_vae_mean"] == pytest.approx(0.83)
    # sample sd (ddof=1) of 0.80, 0.84, 0.85
    assert echo["factor_vae_sd"] == pytest.approx(0.026457513, rel=1e-6)
    assert echo["mig_mean"] == pytest.approx(0.16)
    assert echo["mig_sd"] == pytest.approx(math.sqrt(((0.06) ** 2 + 0.04**2 + 0.02**2) / 2))
    vae1 = table[(table["model"] == "beta_vae") & (table["beta"] == 1)].iloc[0]
    assert vae1["factor_vae_mean"] == pytest.approx(0.65)
    assert vae1["factor_vae_sd"] == pytest.approx(math.sqrt(0.005))
    vae4 = table[(table["model"] == "beta_vae") & (table["beta"] == 4)].iloc[0]
    assert vae4["n"] == 1 and math.isnan(vae4["factor_vae_sd"])  # a single run has no sd


def test_missing_runs_listed_not_dropped(runs_root: Path) -> None:
    runs = results.discover_runs([runs_root])
    missing = results.missing_report(runs, ["factor_vae", "mig"])
    assert len(missing) == 1
    assert "vae_b4_s1" in missing[0] and "running" in missing[0]


def test_seed_only_difference_groups_but_representation_splits(tmp_path: Path) -> None:
    make_run(tmp_path, "a", cfg("echo", 1, 0), {"mig": 0.1}, representation="mean")
    make_run(tmp_path, "b", cfg("echo", 1, 1), {"mig": 0.3}, representation="mean")
    make_run(tmp_path, "c", cfg("echo", 1, 2), {"mig": 0.5}, representation="sample")
    grouped = results.group_runs(results.discover_runs([tmp_path]))
    assert grouped.key_columns == ["eval.representation"]
    table = results.score_table(grouped)
    assert list(table["n"]) == [2, 1]
    assert table["mig_mean"].tolist() == pytest.approx([0.2, 0.5])


def test_writers(runs_root: Path, tmp_path: Path) -> None:
    runs = results.discover_runs([runs_root])
    out = results.write_comparison(runs, tmp_path / "cmp")
    csv = pd.read_csv(out.files["csv"])
    assert len(csv) == 3 and "factor_vae_mean" in csv.columns
    md = out.files["md"].read_text()
    assert "0.83 ± 0.03" in md and "0.50" in md
    tex = out.files["tex"].read_text()
    assert r"0.83 $\pm$ 0.03" in tex and r"\toprule" in tex and "model" in tex
    assert "vae_b4_s1" in out.files["missing"].read_text()
    t2 = out.table2
    assert t2 is not None
    assert out.files["table2_md"].exists() and out.files["table2_tex"].exists()


def test_table2_layout(tmp_path: Path) -> None:
    for seed, (e, v) in enumerate([(0.83, 0.65), (0.85, 0.67)]):
        make_run(tmp_path, f"e_full_{seed}", cfg("echo", 1, seed), {"factor_vae": e, "mig": 0.16})
        make_run(tmp_path, f"v_full_{seed}", cfg("vae", 1, seed), {"factor_vae": v, "mig": 0.07})
        make_run(tmp_path, f"e_dep_{seed}", cfg("echo", 1, seed, subset="authors"), {"factor_vae": 0.70, "mig": 0.11})
        make_run(tmp_path, f"e_b4_{seed}", cfg("echo", 4, seed), {"factor_vae": 0.78, "mig": 0.18})
        make_run(tmp_path, f"e_tc_{seed}", cfg("echo", 1, seed, tc=10), {"factor_vae": 0.78, "mig": 0.30})
    runs = results.discover_runs([tmp_path])
    t2 = results.table2(runs)
    # beta rows first (lambda = 0), then lambda rows (beta = 1); beta=1/lambda=0 in both blocks.
    assert list(t2.index) == ["β = 1", "β = 4", "λ = 0", "λ = 10"]
    # The paper's nesting: data set (independent, dependent) > score > model.
    assert list(t2.columns) == [
        ("full", "factor_vae", "echo"), ("full", "factor_vae", "vae"), ("full", "mig", "echo"),
        ("full", "mig", "vae"), ("authors", "factor_vae", "echo"), ("authors", "mig", "echo"),
    ]
    assert t2.loc["β = 1", ("full", "factor_vae", "echo")] == "0.84 ± 0.01"
    assert t2.loc["λ = 0", ("full", "factor_vae", "vae")] == "0.66 ± 0.01"
    assert t2.loc["λ = 10", ("full", "mig", "echo")] == "0.30 ± 0.00"
    assert t2.loc["β = 4", ("full", "factor_vae", "vae")] == "–"  # no VAE beta=4 runs
    tex = results.table2_latex(results.table2(runs, latex=True))
    assert r"\multicolumn{4}{c}{full}" in tex and r"\multicolumn{2}{c}{factor\_vae}" in tex
    assert r"$\lambda$ = 10" in tex


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        results.discover_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run folders"):
        results.discover_runs([tmp_path / "empty"])
    run = make_run(tmp_path, "broken", cfg("echo", 1, 0), None)
    (run / "metrics.json").write_text("{not json")
    runs = results.discover_runs([run])
    missing = results.missing_report(runs)
    assert any("unreadable metrics.json" in m for m in missing)
    with pytest.raises(UserError, match="no scored runs"):
        results.table2(runs)


def test_mean_sd_helper() -> None:
    assert all(math.isnan(v) for v in results.mean_sd([]))
    assert results.mean_sd([2.0])[0] == 2.0 and math.isnan(results.mean_sd([2.0])[1])
    assert results.mean_sd([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2.0)))


def test_table2_keeps_protocols_apart(tmp_path: Path) -> None:
    """A subset-trained run scored on the full grid (the authors' protocol) gets its own column."""
    make_run(tmp_path, "sub", cfg("echo", 1, 0, subset="authors"), {"mig": 0.10})
    make_run(tmp_path, "full", cfg("echo", 1, 0, subset="authors"), {"mig": 0.20}, protocol="full")
    make_run(tmp_path, "indep", cfg("echo", 1, 0), {"mig": 0.30}, protocol="full")
    t2 = results.table2(results.discover_runs([tmp_path]), scores=("mig",))
    assert t2.loc["β = 1"].to_dict() == {("full", "mig", "echo"): "0.30", ("authors", "mig", "echo"): "0.10",
                                         ("authors (scored on full)", "mig", "echo"): "0.20"}
