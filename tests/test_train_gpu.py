"""CUDA paths of the training loop (skipped without a GPU): eager and CUDA-graph steps agree,
the counter-keyed draws advance identically under graph replay, resume re-captures, torch.compile runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pipelines.train.loop as train_loop
from dis_eval.config.train import TrainConfig
from pipelines.train import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")


def cuda_cfg(model: str, *extra: str) -> TrainConfig:
    over = [f"data={FIXTURE}", "device=cuda", "steps=40", "checkpoint_every=20", "log_every=10"]
    over += {"factor_vae": ["gamma=10"], "echo_tc": ["lambda=5"], "vae_tc": ["lambda=5"]}.get(model, [])
    return TrainConfig.load(CONFIGS / f"{model}.yaml", over + list(extra))


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize("model", ["echo_tc", "beta_vae"])
def test_cuda_graph_matches_eager(model: str, tmp_path: Path) -> None:
    eager = train(cuda_cfg(model), tmp_path / "eager", progress=False)
    graph = train(cuda_cfg(model, "cuda_graph=true"), tmp_path / "graph", progress=False)
    se, sg = _summary(eager), _summary(graph)
    assert se["status"] == sg["status"] == "done"
    ce = torch.load(eager / "checkpoint.pt", weights_only=True)
    cg = torch.load(graph / "checkpoint.pt", weights_only=True)
    # The draws are keyed by the device-side step counter: replays advance it as eager steps do.
    assert ce["step"] == cg["step"] == 40 and _summary(graph)["cuda_graph"] is True
    for k, v in se["final_losses"].items():
        assert sg["final_losses"][k] == pytest.approx(v, rel=0.05, abs=0.05), k
    # Same start; each Adam update moves a weight by about lr at most, so two runs whose
    # kernels differ slightly (TF32, algorithm choice) stay within 2 * steps * lr.
    for k, v in ce["model"].items():
        assert (v - cg["model"][k]).abs().max().item() <= 2 * 40 * 1e-4, k


def test_cuda_graph_resume_recaptures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = train(cuda_cfg("echo", "cuda_graph=true"), tmp_path / "ref", progress=False)
    real = train_loop._log_reconstructions

    def cut(writer, model, data, positions, step):  # noqa: ANN001
        if step == 40:
            raise KeyboardInterrupt
        return real(writer, model, data, positions, step)

    monkeypatch.setattr(train_loop, "_log_reconstructions", cut)
    with pytest.raises(KeyboardInterrupt):
        train(cuda_cfg("echo", "cuda_graph=true"), tmp_path / "cut", progress=False)
    monkeypatch.setattr(train_loop, "_log_reconstructions", real)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 20
    train(None, tmp_path / "cut", resume=True, progress=False)
    a = torch.load(ref / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 40
    for k, v in _summary(ref)["final_losses"].items():
        assert _summary(tmp_path / "cut")["final_losses"][k] == pytest.approx(v, rel=0.05, abs=0.05), k


def test_compile_with_cuda_graph_trains(tmp_path: Path) -> None:
    run = train(cuda_cfg("factor_vae", "compile=true", "cuda_graph=true"), tmp_path / "c", progress=False)
    s = _summary(run)
    assert s["status"] == "done"
    assert all(torch.isfinite(torch.tensor(v)) for v in s["final_losses"].values())
