"""Pack training end to end: `dis-eval train --seeds` and list-valued loss weights write ordinary
run folders, a diverged member is retired while the others finish, and a pack killed with SIGKILL
resumes bit-identically to the uninterrupted pack (CPU)."""

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

import pipelines.train.pack as pack_mod
from dis_eval.config.train import TrainConfig
from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir
from pipelines.cli import main
from pipelines.train.pack import (
    PackDir,
    check_packable,
    expand_members,
    member_name,
    parse_seeds,
    split_weight_lists,
    train_pack,
    varied_keys,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")
BASE = [f"data={FIXTURE}", "device=cpu", "batch_size=8", "log_every=2"]


def test_member_lists_and_names() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ("3-1", "a", "1,1", "-2"):
        with pytest.raises(UserError):
            parse_seeds(bad)
    plain, lists = split_weight_lists(["beta=1,2,4", "lambda=5,10", "adam_betas=0.9,0.99", "steps=3"])
    assert plain == ["adam_betas=0.9,0.99", "steps=3"]
    assert lists == {"beta": [1.0, 2.0, 4.0], "lambda_tc": [5.0, 10.0]}
    base = TrainConfig.load(CONFIGS / "beta_vae.yaml", BASE)
    cfgs = expand_members(base, [0, 1], {"beta": [1.0, 2.0]})
    assert [(c.beta, c.seed) for c in cfgs] == [(1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1)]
    assert [member_name(c, varied_keys(cfgs)) for c in cfgs] == ["beta1-seed0", "beta1-seed1", "beta2-seed0",
                                                                  "beta2-seed1"]
    assert member_name(cfgs[0], varied_keys(cfgs[:2])) == "seed0"
    with pytest.raises(UserError, match="differ only"):
        check_packable([cfgs[0], cfgs[1].replace(lr=1e-3)])
    with pytest.raises(UserError, match="same run"):
        check_packable([cfgs[0], cfgs[0]])


def test_cli_pack_writes_ordinary_run_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pack"
    rc = main(["train", str(CONFIGS / "beta_vae.yaml"), *BASE, "steps=3", "checkpoint_every=2", "beta=1,2",
               "--seeds", "0-1", "--run-dir", str(out), "--no-progress"])
    assert rc == 0
    names = ["beta1-seed0", "beta1-seed1", "beta2-seed0", "beta2-seed1"]
    assert PackDir(out).member_names() == names
    for name in names:
        run = RunDir(out / name)
        cfg = run.read_config()
        assert (cfg.beta, cfg.seed) == (float(name[4]), int(name[-1]))
        assert run.read_summary()["status"] == "done"
        model, saved = run.load_model()
        assert saved["seed"] == cfg.seed
        ckpt = torch.load(run.checkpoint, weights_only=True)
        assert ckpt["step"] == 3 and set(ckpt["optimizer"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
        assert any(run.tb.iterdir())
    assert "beta2-seed1: done" in capsys.readouterr().out
    assert main(["train", "--resume", str(out / "beta1-seed0")]) == 2
    assert "member of the pack" in capsys.readouterr().err
    assert main(["train", str(CONFIGS / "beta_vae.yaml"), *BASE, "--seeds", "0-1", "--run-dir", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err


def test_member_resumed_alone_matches_pack_member(tmp_path: Path) -> None:
    """A member's checkpoint.pt is a single run's: continuing it alone gives the pack member's
    next steps (same random streams) up to fp32 summation order."""
    cfgs = expand_members(TrainConfig.load(CONFIGS / "echo.yaml", [*BASE, "d_max=8", "steps=4", "checkpoint_every=4"]),
                          [0, 1], {})
    train_pack(cfgs, tmp_path / "short", progress=False)
    longer = [c.replace(steps=6) for c in cfgs]
    train_pack(longer, tmp_path / "long", progress=False)
    run = RunDir(tmp_path / "short" / "seed1")
    # Turn the short member into a 6-step run and continue it alone.
    cfg = run.read_config().replace(steps=6)
    d = cfg.to_dict()
    d["device_used"] = "cpu"
    run.write_config(d)
    ck = torch.load(run.checkpoint, weights_only=True)
    ck["config"] = d
    torch.save(ck, run.checkpoint)
    run.model.unlink()
    from pipelines.train import train

    train(None, run.path, resume=True, progress=False)
    a = torch.load(run.model, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "long" / "seed1" / "model.pt", weights_only=True)["state_dict"]
    worst = max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)) for k in b)
    assert worst < 1e-4


def test_diverged_member_is_retired_others_finish_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    over = [*BASE, "steps=6", "checkpoint_every=3", "gamma=5"]
    cfgs = expand_members(TrainConfig.load(CONFIGS / "factor_vae.yaml", over), [0, 1, 2], {})
    train_pack(cfgs, tmp_path / "clean", progress=False)

    real_build = pack_mod.build_pack_training

    def sick_build(*args: Any, **kwargs: Any) -> Any:
        t = real_build(*args, **kwargs)
        if int(t.stats.step) == 0:
            real_step = t.run_step

            def step() -> None:  # member 1's weights turn NaN before step 5
                if int(t.stats.step) == 4:
                    with torch.no_grad():
                        t.model.decoder.fc[0].weight[1].fill_(float("nan"))
                real_step()

            t.run_step = step
        return t

    monkeypatch.setattr(pack_mod, "build_pack_training", sick_build)
    train_pack(cfgs, tmp_path / "sick", progress=False)
    bad = RunDir(tmp_path / "sick" / "seed1").read_summary()
    assert bad["status"] == "failed" and bad["step"] == 5
    assert "non-finite" in bad["error"] and "step 5" in bad["error"] and "retired" in bad["error"]
    assert not (tmp_path / "sick" / "seed1" / "model.pt").exists()
    kept = torch.load(tmp_path / "sick" / "seed1" / "checkpoint.pt", weights_only=True)
    assert kept["step"] == 3 and all(torch.isfinite(v).all() for v in kept["model"].values())
    for name in ("seed0", "seed2"):
        a = torch.load(tmp_path / "clean" / name / "model.pt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "sick" / name / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
        sa = json.loads((tmp_path / "clean" / name / "summary.json").read_text())
        sb = json.loads((tmp_path / "sick" / name / "summary.json").read_text())
        assert sa["status"] == sb["status"] == "done" and sa["final_losses"] == sb["final_losses"]


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main())", *args]


def test_sigkill_pack_then_resume_is_bit_identical(tmp_path: Path) -> None:
    # Every run in a subprocess with the same environment: same thread count as the reference.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    train_args = ["train", str(CONFIGS / "echo_tc.yaml"), *BASE, "d_max=8", "lambda=5", "steps=24",
                  "checkpoint_every=6", "--seeds", "0-1", "--no-progress"]
    subprocess.run(_cli([*train_args, "--run-dir", str(tmp_path / "ref")]), cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli([*train_args, "--run-dir", str(run)]), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (run / "pack_checkpoint.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no pack checkpoint within 300 s"
            time.sleep(0.01)
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = torch.load(run / "pack_checkpoint.pt", weights_only=True)["step"]
    assert 6 <= killed_at < 24 and not (run / "seed0" / "model.pt").exists()
    subprocess.run(_cli(["train", "--resume", str(run), "--no-progress"]), cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    for name in ("seed0", "seed1"):
        for f in ("model.pt", "checkpoint.pt"):
            a = torch.load(tmp_path / "ref" / name / f, weights_only=True)
            b = torch.load(run / name / f, weights_only=True)
            _same(a, b, f"{name}/{f}")
        sa = json.loads((tmp_path / "ref" / name / "summary.json").read_text())
        sb = json.loads((run / name / "summary.json").read_text())
        assert sa["final_losses"] == sb["final_losses"] and sa["rate_per_dim"] == sb["rate_per_dim"]


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            if k not in ("wall_s", "last"):
                _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for x, y in zip(a, b, strict=True):
            _same(x, y, where)
    else:
        assert a == b, where
