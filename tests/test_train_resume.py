"""Exact resumption on the CPU: interrupted + resumed == uninterrupted, bit for bit (torch.equal on
every tensor of the model, optimisers, discriminator; same logged metrics)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import pipelines.train.engine as engine
from dis_eval.config.train import TrainConfig
from dis_eval.models import MODELS
from pipelines.train import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")
TC_KEY = {"factor_vae": ["gamma=5"], "echo_tc": ["lambda=5"], "vae_tc": ["lambda=5"]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _overrides(model: str, steps: int, every: int = 3) -> list[str]:
    over = [f"data={FIXTURE}", "device=cpu", "batch_size=8", f"steps={steps}", f"checkpoint_every={every}",
            "log_every=2"]
    return over + (["d_max=8"] if MODELS[model][0] == "echo" else [])


def _assert_same_tensors(a: Any, b: Any, where: str = "") -> None:
    """torch.equal on every tensor of two nested state structures; equality for the rest."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _assert_same_run(ref: Path, other: Path) -> None:
    _assert_same_tensors(torch.load(ref / "model.pt", weights_only=True),
                         torch.load(other / "model.pt", weights_only=True), "model.pt")
    ca = torch.load(ref / "checkpoint.pt", weights_only=True)
    cb = torch.load(other / "checkpoint.pt", weights_only=True)
    for key in ("step", "model", "optimizer", "discriminator", "disc_optimizer", "rng"):
        if key in ca or key in cb:
            _assert_same_tensors(ca[key], cb[key], key)
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


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path: Path) -> None:
    model = "echo_tc"
    # Few checkpoints: with the 6 x 1000 discriminator and its Adam state each is ~70 MB.
    over = _overrides(model, 40, every=10) + TC_KEY[model]
    cfg = TrainConfig.load(CONFIGS / f"{model}.yaml", over)
    ref = train(cfg, tmp_path / "ref", progress=False)

    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c",
           "import sys, torch; torch.set_num_threads(1); from pipelines.cli import main; sys.exit(main())",
           "train", str(CONFIGS / f"{model}.yaml"), *over, "--run-dir", str(run), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        time.sleep(0.05)  # land somewhere after the first checkpoint, mid-run
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model.pt").exists(), "the run finished before the kill: make it longer"
    killed_at = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert 10 <= killed_at < 40
    train(None, run, resume=True, progress=False)
    _assert_same_run(ref, run)
