"""Exact resumption on the CPU: interrupted + resumed == uninterrupted, bit for bit (torch.equal on
every tensor of checkpoint.pt and model.pt: model, optimisers, discriminator, generator states;
same logged metrics), for every model family, at the thread count the tests run under.

- In process: a run interrupted by an exception at step 5 (checkpoint at 3), then resumed.
- SIGKILL: each family's run (tests.det_runner) kills itself with SIGKILL after step 3 in a fresh
  process at torch's default thread count, is resumed in another, and is compared with an
  uninterrupted run made at the default thread count (conftest's ``default_thread_runs``).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

import pipelines.train.engine as engine
from dis_eval.config.train import TrainConfig
from dis_eval.models import MODELS
from pipelines.train import train
from tests.conftest import run_det_runner, run_det_runners
from tests.det_runner import CHECKPOINT_EVERY, MODEL_NAMES, STEPS, assert_same_run, run_dir

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")
KILL_AT = 3  # tests.det_runner's runs: between the checkpoints at 2 and 4
TC_KEY = {"factor_vae": ["gamma=5"], "echo_tc": ["lambda=5"], "vae_tc": ["lambda=5"]}


def _overrides(model: str, steps: int, every: int = 3) -> list[str]:
    over = [f"data={FIXTURE}", "device=cpu", "batch_size=8", f"steps={steps}", f"checkpoint_every={every}",
            "log_every=2"]
    return over + (["d_max=8"] if MODELS[model][0] == "echo" else [])


def _assert_same_run(ref: Path, other: Path) -> None:
    assert_same_run(ref, other)
    sa = json.loads((ref / "summary.json").read_text())
    sb = json.loads((other / "summary.json").read_text())
    assert sa["status"] == sb["status"] == "done"
    assert sa["final_losses"] == sb["final_losses"]
    assert sa["rate_per_dim"] == sb["rate_per_dim"]


@pytest.mark.parametrize("model", list(MODELS))
def test_interrupted_and_resumed_equals_uninterrupted(model: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig.load(CONFIGS / f"{model}.yaml", _overrides(model, 7) + TC_KEY.get(model, []))
    ref = train(cfg, tmp_path / "ref", progress=False)

    # Interrupt at step 5, between the checkpoint of step 3 and the next one.
    real_update = engine.RunningStats.update

    def crashing(self: Any, terms: torch.Tensor, rate: torch.Tensor) -> None:
        real_update(self, terms, rate)
        if int(self.step) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine.RunningStats, "update", crashing)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(engine.RunningStats, "update", real_update)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 3
    assert not (tmp_path / "cut" / "model.pt").exists()
    train(None, tmp_path / "cut", resume=True, progress=False)
    _assert_same_run(ref, tmp_path / "cut")


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Every family's small run (tests.det_runner) SIGKILLed right after step KILL_AT, in a fresh
    process at torch's default thread count, then resumed (one more fresh process)."""
    assert CHECKPOINT_EVERY < KILL_AT < STEPS and KILL_AT % CHECKPOINT_EVERY
    out = tmp_path_factory.mktemp("killed")
    killed_at: dict[str, int] = {}
    # one process a family (each kills itself), started together
    runs = run_det_runners(out, [["--models", model, "--kill-at", str(KILL_AT)] for model in MODEL_NAMES])
    for model, done in zip(MODEL_NAMES, runs, strict=True):
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert not (out / model / "model.pt").exists()
        killed_at[model] = torch.load(out / model / "checkpoint.pt", weights_only=True)["step"]
    done = run_det_runner(out, "--resume")
    assert done.returncode == 0, done.stderr
    return out, killed_at


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_sigkill_then_resume_equals_uninterrupted_at_default_threads(
        model: str, killed_then_resumed: tuple[Path, dict[str, int]], default_thread_runs: Path) -> None:
    out, killed_at = killed_then_resumed
    # Killed between two checkpoints: the resumed run redid steps after the last one.
    assert killed_at[model] == CHECKPOINT_EVERY * (KILL_AT // CHECKPOINT_EVERY) < KILL_AT
    assert_same_run(run_dir(default_thread_runs, model, 0, 2), out / model)
