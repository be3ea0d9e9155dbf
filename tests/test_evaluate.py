"""`dis-eval evaluate` / `dis-eval score` and ``evaluate_run``: metrics.json, merging, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dis_eval.config.evaluation import EvalConfig
from dis_eval.data.factors import all_classes
from pipelines.cli import main
from pipelines.evaluate import evaluate_run

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
FAST = ["--set", "factor_vae.num_train=200", "--set", "factor_vae.num_eval=100",
        "--set", "factor_vae.num_variance_estimate=500", "--set", "mig.num_train=1000"]
FAST_SETTINGS = {"factor_vae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500},
                 "mig": {"num_train": 1000}}
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def gt_codes(tmp_path_factory):
    path = tmp_path_factory.mktemp("codes") / "gt.npz"
    np.savez(path, codes=all_classes().astype(np.float32))
    return path


def _json_out(capsys):
    return json.loads(capsys.readouterr().out)


def test_score_cli_writes_and_merges(gt_codes, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["score", str(gt_codes), "--metrics", "factor_vae,mig", *FAST, "--json", "--out", str(out)]) == 0
    res = _json_out(capsys)
    assert res["headline"]["factor_vae"] == 1.0  # the factors themselves
    assert res["representation"] == "mean" and res["protocol"] == "full" and res["seed"] == 0
    assert res["data"]["rows"] == 737280 and res["settings"]["factor_vae"]["num_train"] == 200
    assert set(res["timings"]["metrics_s"]) == {"factor_vae", "mig"}
    assert main(["score", str(gt_codes), "--metrics", "irs", "--set", "irs.num_train=500", "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert set(merged["scores"]) == {"factor_vae", "mig", "irs"}  # earlier scores kept
    assert merged["evaluations"]["irs"]["representation"] == "mean"
    assert "scikit-learn" in merged["versions"]


def test_score_rows_and_repeats(tmp_path, capsys):
    rs = np.random.RandomState(0)
    rows = np.sort(rs.choice(737280, 20000, replace=False))
    codes = all_classes()[rows].astype(np.float32) + 0.05 * rs.randn(20000, 5).astype(np.float32)
    path = tmp_path / "c.npz"
    np.savez(path, codes=codes[::-1], rows=rows[::-1])  # any order: matched by index
    assert main(["score", str(path), "--metrics", "mig", *FAST, "--repeats", "3", "--seed", "7", "--json"]) == 0
    res = _json_out(capsys)
    assert res["data"]["rows"] == 20000 and res["protocol"] == "subset"
    sp = res["spread"]["mig"]["discrete_mig"]
    assert sp["n"] == 3 and sp["std"] >= 0 and res["seed"] == 7


@pytest.mark.parametrize("content,message", [
    ({"codes": np.zeros((10, 3))}, "rows but the data set has"),
    ({"codes": np.full((737280, 2), np.nan, dtype=np.float32)}, "NaN"),
    ({"other": np.zeros(3)}, "no 'codes'"),
    ({"codes": np.zeros((3, 2)), "rows": np.array([1, 2, 2])}, "repeated"),
    ({"codes": np.array([[1.0], "x"], dtype=object)}, "object array (a pickle)"),
])
def test_score_bad_codes_one_line_error(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    assert main(["score", str(path), "--metrics", "mig"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_score_against_own_factors(tmp_path, capsys):
    """`score --factors`: codes scored against a user's own factor classes (a 6 x 5 grid, each
    combination in 20 rows), no dSprites involved."""
    rs = np.random.RandomState(0)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(5), indexing="ij"), -1).reshape(-1, 2)
    factors = np.repeat(grid, 20, axis=0)
    np.savez(tmp_path / "factors.npz", factors=factors, factor_names=np.array(["size", "hue"]))
    np.savez(tmp_path / "good.npz", codes=factors + 0.05 * rs.randn(*factors.shape))
    np.savez(tmp_path / "noise.npz", codes=rs.randn(len(factors), 2))
    small = ["--set", "mig.num_train=400", "--set", "factor_vae.num_train=300", "--set", "factor_vae.num_eval=100",
             "--set", "factor_vae.num_variance_estimate=300", "--set", "factor_vae.batch_size=32"]
    scores = {}
    for name in ("good", "noise"):
        assert main(["score", str(tmp_path / f"{name}.npz"), "--factors", str(tmp_path / "factors.npz"),
                     "--metrics", "factor_vae,mig", *small, "--json"]) == 0
        res = _json_out(capsys)
        assert res["data"]["rows"] == 600 and res["data"]["source"].endswith("factors.npz")
        scores[name] = res["headline"]
    assert scores["good"]["factor_vae"] == 1.0 and scores["good"]["mig"] > 0.8
    assert scores["noise"]["factor_vae"] < 0.8 and scores["noise"]["mig"] < 0.1
    # one code per factor row, else a one-line error
    np.savez(tmp_path / "short.npz", codes=rs.randn(10, 2))
    assert main(["score", str(tmp_path / "short.npz"), "--factors", str(tmp_path / "factors.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "10 code rows" in err and "\n" not in err
    assert main(["score", str(tmp_path / "good.npz"), "--factors", str(tmp_path / "factors.npz"),
                 "--subset", "authors"]) == 2
    assert "--factors replaces dSprites" in capsys.readouterr().err


def test_evaluate_encoder_module_function(tmp_path, capsys):
    mod = tmp_path / "enc.py"
    mod.write_text(
        "import torch\n"
        "def encode(x):\n"
        "    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing='ij')\n"
        "    m = x[:, 0].sum(dim=(1, 2)).clamp(min=1)\n"
        "    cx = (x[:, 0] * xs).sum(dim=(1, 2)) / m\n"
        "    cy = (x[:, 0] * ys).sum(dim=(1, 2)) / m\n"
        "    return torch.stack([cx, cy, m / 100], dim=1)\n")
    saved = tmp_path / "codes.npz"
    out = tmp_path / "m.json"
    assert main(["evaluate", "--encoder", f"{mod}:encode", "--data", str(FIXTURE), "--metrics", "factor_vae,mig",
                 *FAST, "--json", "--out", str(out), "--save-codes", str(saved), "--device", "cpu"]) == 0
    res = _json_out(capsys)
    # centre of mass encodes posX/posY (and area ~ scale): well above chance
    assert res["headline"]["factor_vae"] > 0.5
    assert res["timings"]["encode_s"] > 0 and res["encode"]["rows_encoded"] == 3000
    npz = np.load(saved)
    assert npz["codes"].shape == (3000, 3) and npz["rows"].shape == (3000,)
    # the saved codes score identically through `score`
    assert main(["score", str(saved), "--data", str(FIXTURE), "--metrics", "factor_vae,mig", *FAST, "--json"]) == 0
    again = _json_out(capsys)
    assert again["scores"] == res["scores"]


def test_evaluate_errors(capsys, tmp_path):
    assert main(["evaluate"]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert main(["score", "x.npz", "--metrics", "mig", "--set", "mig=3"]) == 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from dis_eval.config.train import TrainConfig
    from pipelines.train import train

    cfg = TrainConfig.load(ROOT / "pipelines" / "configs" / "tiny_cpu.yaml",
                           [f"data={FIXTURE}", "steps=3", "checkpoint_every=3", "log_every=1"])
    run_dir = tmp_path_factory.mktemp("runs") / "echo"
    return train(cfg, run_dir, progress=False)


def test_evaluate_run_mean_then_sample_merges(tiny_run):
    res = evaluate_run(tiny_run, EvalConfig(metrics=("factor_vae", "mig"), seed=1, settings=FAST_SETTINGS,
                                            device="cpu"))
    on_disk = json.loads((Path(tiny_run) / "metrics.json").read_text())
    assert on_disk["scores"] == res["scores"] and set(res["headline"]) == {"factor_vae", "mig"}
    assert on_disk["representation"] == "mean" and on_disk["protocol"] == "full"
    assert on_disk["encoder"]["family"] == "echo" and on_disk["seed"] == 1
    res2 = evaluate_run(tiny_run, EvalConfig(metrics=("mig",), representation="sample",
                                             settings={"mig": FAST_SETTINGS["mig"]}, device="cpu", repeats=2))
    on_disk = json.loads((Path(tiny_run) / "metrics.json").read_text())
    assert set(on_disk["scores"]) == {"factor_vae", "mig"}
    assert on_disk["evaluations"]["mig"]["representation"] == "sample"
    assert on_disk["evaluations"]["factor_vae"]["representation"] == "mean"
    assert "mig" in res2["spread"]


def test_evaluate_run_paper_preset(tiny_run):
    res = evaluate_run(tiny_run, EvalConfig(preset="paper", metrics=("mig",), settings={"mig": {"num_train": 640}},
                                            device="cpu"))
    assert res["representation"] == "sample" and res["protocol"] == "full" and res["preset"] == "paper"
    assert res["settings"]["mig"]["batch_size"] == 64 and res["settings"]["mig"]["num_train"] == 640


def test_evaluate_run_subset_protocols(tmp_path):
    """A run trained on a dependent subset: scored on its rows by default, or on the full grid."""
    from dis_eval.config.train import TrainConfig
    from pipelines.train import train

    cfg = TrainConfig.load(ROOT / "pipelines" / "configs" / "tiny_cpu.yaml",
                           [f"data={FIXTURE}", "subset=authors", "steps=2", "checkpoint_every=2", "log_every=1"])
    run = train(cfg, tmp_path / "sub", progress=False)
    small = {"mig": {"num_train": 300}}
    res = evaluate_run(run, EvalConfig(metrics=("mig",), settings=small, device="cpu"))
    assert res["protocol"] == "subset" and res["data"]["subset"] == "authors"
    assert res["data"]["rows"] == 432 and res["trained_subset"] == "authors"
    full = evaluate_run(run, EvalConfig(metrics=("mig",), protocol="full", settings=small, device="cpu"))
    assert full["protocol"] == "full" and full["data"]["rows"] == 3000 and full["data"]["subset"] is None


def test_lazy_encoding_same_scores_fewer_rows():
    """Encoding on demand gives the very scores of encoding every row up front."""
    from dis_eval.data import DataSpec, load_data
    from pipelines.evaluate import evaluate_encoder

    data = load_data(DataSpec(str(FIXTURE)))

    def enc(x):
        return torch.stack([x.mean(dim=(1, 2, 3)), x[:, 0, :32].mean(dim=(1, 2)), x[:, 0, :, :32].mean(dim=(1, 2))], 1)

    small = {"mig": {"num_train": 200}, "factor_vae": {"num_train": 50, "num_eval": 20, "num_variance_estimate": 100}}
    mig_only = EvalConfig(metrics=("mig",), settings={"mig": small["mig"]}, device="cpu").resolved()
    lazy, lc = evaluate_encoder(enc, data, mig_only, lazy=True)
    full, _ = evaluate_encoder(enc, data, mig_only, lazy=False)
    assert lazy["scores"] == full["scores"]
    assert 0 < lc.info["rows_encoded"] <= 200 < len(data)  # MIG's 200 draws, not all 3,000 rows
    two = EvalConfig(metrics=("factor_vae", "mig"), settings=small, device="cpu").resolved()
    both, lc2 = evaluate_encoder(enc, data, two)
    full2, _ = evaluate_encoder(enc, data, two, lazy=False)
    assert both["scores"] == full2["scores"]
    assert lc2.info["rows_encoded"] == int(lc2.done.sum()) <= len(data)  # each row at most once
