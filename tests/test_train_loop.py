"""The training loop on the real-image fixture: every family trains from its shipped config, lowers
its loss, is deterministic, writes a complete run folder, and stops cleanly on NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dis_eval.config.train import TrainConfig
from dis_eval.data import DataSpec, load_data
from dis_eval.errors import UserError
from dis_eval.models import MODELS, build_model, build_objective
from dis_eval.run_dir import RunDir
from pipelines.train import TrainingDiverged, train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")
TC_KEY = {"factor_vae": ["gamma=5"], "echo_tc": ["lambda=5"], "vae_tc": ["lambda=5"]}




def tiny(model: str, *extra: str) -> TrainConfig:
    """The model's shipped config, shrunk to a few CPU steps on the fixture."""
    over = [f"data={FIXTURE}", "device=cpu", "batch_size=16", "steps=6", "checkpoint_every=3",
            "log_every=2"]
    if MODELS[model][0] == "echo":
        over.append("d_max=16")
    return TrainConfig.load(CONFIGS / f"{model}.yaml", over + list(extra))


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("model", list(MODELS))
def test_short_training_lowers_the_loss(model: str, tmp_path: Path) -> None:
    cfg = tiny(model, "steps=25", "lr=1e-3", "checkpoint_every=25", "log_every=5")
    data = load_data(DataSpec(FIXTURE), device="cpu")
    x = data.images(torch.arange(0, 3000, 47))  # fixed batch of 64 real images

    def evaluate(net: torch.nn.Module, disc: torch.nn.Module | None) -> tuple[float, float]:
        obj = build_objective(cfg.model_spec, net, disc)
        with torch.no_grad():
            out = obj(x, torch.Generator().manual_seed(0))
        terms = dict(zip(obj.term_names, out.terms.tolist(), strict=True))
        return terms["reconstruction"], terms["loss"] - cfg.to_dict()["tc_weight"] * terms.get("tc", 0.0)

    torch.manual_seed(cfg.seed)  # the loop initialises the same way
    init, init_disc = build_model(cfg.model_spec)
    before = evaluate(init, init_disc)
    run = train(cfg, tmp_path / "run", progress=False)
    trained, saved_cfg = RunDir(run).load_model()
    after = evaluate(trained, init_disc)
    assert saved_cfg["model"] == model
    assert after[0] < 0.8 * before[0], (before, after)
    assert after[1] < before[1], (before, after)


def test_run_folder_contents_and_loading(tmp_path: Path) -> None:
    run = train(tiny("echo_tc"), tmp_path / "run", progress=False)
    for name in ("config.yaml", "checkpoint.pt", "model.pt", "summary.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["step"] == 6 and summary["step_unit"] == "batch"
    assert set(summary["final_losses"]) == {"loss", "reconstruction", "rate", "tc", "disc_loss", "disc_accuracy"}
    assert len(summary["rate_per_dim"]) == 10
    assert summary["rate_total"] == pytest.approx(sum(summary["rate_per_dim"]))
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 6 and "discriminator" in ckpt and "disc_optimizer" in ckpt
    model, cfg = RunDir(run).load_model("cpu")
    assert model.family == "echo" and cfg["effective_echo_terms"] == 15
    mean, aux = model.encode(torch.zeros(2, 1, 64, 64))
    assert mean.shape == aux.shape == (2, 10)
    with pytest.raises(UserError, match="already holds a run"):
        train(tiny("echo_tc"), run, progress=False)


def test_same_seed_same_result_different_seed_different(tmp_path: Path) -> None:
    a = _state(train(tiny("echo"), tmp_path / "a", progress=False))
    b = _state(train(tiny("echo"), tmp_path / "b", progress=False))
    c = _state(train(tiny("echo", "seed=1"), tmp_path / "c", progress=False))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nan_stops_with_step_and_term_and_keeps_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dis_eval.models.losses as losses

    real = losses.reconstruction_loss
    calls = {"n": 0}

    def poisoned(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        out = real(logits, x)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(losses, "reconstruction_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"non-finite reconstruction and loss at step 5") as info:
        train(tiny("beta_vae", "steps=8", "checkpoint_every=3", "log_every=10"), run, progress=False)
    assert "last good checkpoint (step 3)" in str(info.value)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "step 5" in summary["error"]
    assert not (run / "model.pt").exists()
