"""TrainConfig: typing, overrides, validation errors (one line, before training), shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dis_eval.config.train import TrainConfig
from dis_eval.errors import UserError
from dis_eval.models import MODELS
from pipelines.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"


def test_shipped_configs_exist_and_parse() -> None:
    for name in MODELS:
        cfg = TrainConfig.load(CONFIGS / f"{name}.yaml")
        assert cfg.model == name
        assert cfg.lr == 1e-4 and cfg.batch_size == 64 and cfg.latents == 10
    echo = TrainConfig.load(CONFIGS / "echo.yaml").to_dict()
    assert echo["d_max"] == 64 and echo["effective_echo_terms"] == 63
    assert echo["echo_clip"] == pytest.approx(0.7622, abs=5e-5)
    assert TrainConfig.load(CONFIGS / "factor_vae.yaml").disc_betas == (0.5, 0.9)
    assert TrainConfig.load(CONFIGS / "echo_tc.yaml").disc_betas == (0.5, 0.999)
    TrainConfig.load(CONFIGS / "tiny_cpu.yaml")


def test_overrides_are_typed() -> None:
    cfg = TrainConfig.load(CONFIGS / "echo.yaml",
                           ["beta=4", "lr=1e-3", "steps=1_000", "channels_last=false",
                            "disc_betas=0.5,0.999", "subset=authors", "seed=3"])
    assert cfg.beta == 4.0 and isinstance(cfg.beta, float)
    assert cfg.lr == 1e-3 and cfg.steps == 1000 and cfg.channels_last is False
    assert cfg.disc_betas == (0.5, 0.999) and cfg.subset == "authors" and cfg.seed == 3
    cfg = TrainConfig.load(CONFIGS / "echo_tc.yaml", ["lambda=10"])
    assert cfg.lambda_tc == 10.0


def test_d_max_equal_to_batch_is_valid_and_sums_b_minus_1_terms() -> None:
    cfg = TrainConfig.from_dict({"model": "echo", "batch_size": 32, "d_max": 32})
    d = cfg.to_dict()
    assert d["effective_echo_terms"] == 31 and d["d_max"] == 32
    assert TrainConfig.from_dict({"model": "echo", "batch_size": 32, "d_max": 8}).to_dict()["effective_echo_terms"] == 8
    assert TrainConfig.from_dict({"model": "echo", "batch_size": 32}).to_dict()["d_max"] == 32


@pytest.mark.parametrize(("raw", "needle"), [
    ({"model": "echo", "bogus": 1}, "unknown config key 'bogus'"),
    ({"model": "echo", "betta": 1}, "did you mean 'beta'"),
    ({"model": "echo", "beta": -1}, "beta must be"),
    ({"model": "echo", "batch_size": 16, "d_max": 17}, "d_max must be in 1..batch_size"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"model": "echo", "data": "/no/such/file.npz"}, "not found"),
    ({"model": "factor_vae"}, "factor_vae needs gamma"),
    ({"model": "factor_vae", "gamma": 10, "beta": 2}, "use model=vae_tc"),
    ({"model": "echo_tc"}, "needs lambda"),
    ({"model": "echo", "lambda": 3}, "use model=echo_tc"),
    ({"model": "beta_vae", "d_max": 8}, "Echo models only"),
    ({"model": "echo", "steps": 2.5}, "steps must be int"),
    ({"model": "echo", "steps": 0}, "steps must be >= 1"),
    ({"model": "echo", "lr": "fast"}, "lr must be float"),
    ({"model": "echo", "device": "tpu"}, "device must be"),
    ({"model": "echo", "device": "cpu", "cuda_graph": True}, "cuda_graph needs a CUDA device"),
    ({"model": "echo", "disc_betas": [0.5]}, "disc_betas must be a list of 2"),
    ({"model": "echo", "batch_size": 1}, "batch_size must be >= 2"),
    ({"model": "echo", "echo_clip": 0.7}, "computed by the trainer"),
])
def test_invalid_configs_fail_with_one_line(raw: dict, needle: str) -> None:
    with pytest.raises(UserError) as info:
        TrainConfig.from_dict(raw)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_roundtrip_through_resolved_yaml(tmp_path: Path) -> None:
    cfg = TrainConfig.load(CONFIGS / "echo_tc.yaml", ["batch_size=16", "d_max=16"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    again = TrainConfig.load(path, allow_derived=True)
    assert again == cfg
    with pytest.raises(UserError):
        TrainConfig.load(path)  # derived keys are not user input


def test_cli_reports_config_errors_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = cli_main(["train", str(CONFIGS / "echo.yaml"), "d_max=65", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: d_max must be") and "\n" not in err
    assert not (tmp_path / "r").exists()
    rc = cli_main(["train", str(CONFIGS / "echo.yaml"), "data=/missing.npz", "--run-dir", str(tmp_path / "r")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = cli_main(["train", str(tmp_path / "nope.yaml")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = cli_main(["train", "--resume", str(tmp_path / "empty")])
    assert rc == 2 and "cannot resume" in capsys.readouterr().err


def test_fixture_is_available() -> None:
    assert FIXTURE.is_file()
