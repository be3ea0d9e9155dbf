"""Scoring a pack: one grouped encoding pass for all members, then each member's metrics.json
holds the scores a single `evaluate` of that member gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dis_eval.config.evaluation import EvalConfig
from dis_eval.config.train import TrainConfig
from dis_eval.data import DataSpec, load_data
from dis_eval.encode import encode_data
from dis_eval.encode.grouped import encode_pack, stack_models
from dis_eval.errors import UserError
from dis_eval.models.spec import ModelSpec
from dis_eval.run_dir import RunDir
from pipelines.cli import main
from pipelines.evaluate import evaluate_run
from pipelines.evaluate.pack import evaluate_pack
from pipelines.train.pack import expand_members, train_pack

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")
SETTINGS = {"factor_vae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500},
            "mig": {"num_train": 1000}}
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = TrainConfig.load(ROOT / "pipelines" / "configs" / "echo.yaml",
                            [f"data={FIXTURE}", "device=cpu", "batch_size=8", "d_max=8", "steps=3",
                             "checkpoint_every=3", "log_every=1"])
    out = tmp_path_factory.mktemp("packs") / "pack"
    train_pack(expand_members(base, [0, 1, 2], {"beta": [1.0]}), out, progress=False)
    return out


def test_grouped_encoding_matches_each_model_alone(pack_dir: Path) -> None:
    data = load_data(DataSpec(FIXTURE), device="cpu")
    runs = [RunDir(pack_dir / f"seed{s}") for s in range(3)]
    models, cfgs = zip(*(r.load_model() for r in runs), strict=True)
    grouped = encode_pack(stack_models(list(models), [ModelSpec.from_config(c) for c in cfgs]), data, batch_size=700)
    for model, codes in zip(models, grouped, strict=True):
        alone = encode_data(model, data, batch_size=1024, device="cpu")
        assert codes.family == alone.family == "echo" and codes.d_max == alone.d_max
        np.testing.assert_allclose(codes.mean, alone.mean, rtol=0, atol=2e-6)
        np.testing.assert_allclose(codes.aux, alone.aux, rtol=0, atol=2e-6)


def test_pack_scores_equal_single_evaluations(pack_dir: Path, tmp_path: Path) -> None:
    config = EvalConfig(metrics=("factor_vae", "mig"), settings=SETTINGS, device="cpu")
    singles = {}
    for s in range(3):
        copy = tmp_path / f"seed{s}"
        shutil.copytree(pack_dir / f"seed{s}", copy)
        singles[s] = evaluate_run(copy, config)
    results = evaluate_pack([pack_dir], config)
    assert [r.name for r, _ in results] == ["seed0", "seed1", "seed2"]
    for s, (run, res) in enumerate(results):
        saved = run.read_metrics()
        assert saved["headline"] == res["headline"]
        assert saved["scores"].keys() == singles[s]["scores"].keys()
        for metric, block in singles[s]["headline"].items():
            assert saved["headline"][metric] == pytest.approx(block, abs=1e-6), (s, metric)
        assert saved["protocol"] == singles[s]["protocol"] and saved["data"] == singles[s]["data"]
        assert saved["encoder"]["run_dir"] == str(run.path)


def test_cli_scores_a_pack_and_refuses_mixed_architectures(pack_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(pack_dir), "--metrics", "mig", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert all(f"seed{s}" in out for s in range(3))
    other = TrainConfig.load(ROOT / "pipelines" / "configs" / "echo.yaml",
                             [f"data={FIXTURE}", "device=cpu", "batch_size=8", "d_max=8", "latents=4", "steps=1"])
    from pipelines.train import train

    odd = train(other, tmp_path / "odd", progress=False)
    assert main(["evaluate", str(pack_dir / "seed0"), str(odd), "--metrics", "mig", "--device", "cpu"]) == 2
    assert "architecture" in capsys.readouterr().err
    with pytest.raises(UserError, match="architecture"):
        evaluate_pack([pack_dir / "seed0", odd], EvalConfig(metrics=("mig",), device="cpu"))
