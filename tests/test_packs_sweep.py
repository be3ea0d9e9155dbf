"""Sweeps in packs: which jobs share a pack, the remembered fastest pack size, and a real small
sweep trained and scored in packs (each job an ordinary, finished run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dis_eval.errors import UserError
from dis_eval.run_dir import RunDir
from pipelines.sweep import run_sweep, sweep_status
from pipelines.sweep.options import ExecutorOptions
from pipelines.sweep.packs import best_pack_size, group_jobs, pack_folder, parse_pack
from pipelines.sweep.run import resolve_train_config
from pipelines.sweep.spec import expand_jobs, parse_sweep
from pipelines.train.pack import PackDir
from tests.sweep_helpers import FIXTURE

BASE = {"data": str(FIXTURE), "steps": 2, "batch_size": 8, "checkpoint_every": 2, "log_every": 1, "device": "cpu"}
EVAL = {"metrics": ["mig"], "device": "cpu", "settings": {"mig": {"num_train": 256, "batch_size": 16}}}


def _jobs(grid: dict[str, Any], include: list[dict[str, Any]] | None = None) -> list:
    raw = {"name": "p", "base": {**BASE, "model": "beta_vae"}, "grid": grid, "evaluation": EVAL}
    if include:
        raw["include"] = include
    return expand_jobs(parse_sweep(raw), resolve_train_config)


def test_jobs_differing_only_in_seed_and_weights_share_packs() -> None:
    jobs = _jobs({"beta": [1, 4], "seed": [0, 1, 2], "latents": [10, 6]})
    packs = group_jobs(jobs, 4)
    # latents changes the architecture: two groups of 6 (3 seeds x 2 betas), each cut 4 + 2.
    assert [len(p) for p in packs] == [4, 2, 4, 2]
    for p in packs:
        assert len({j.train_config["latents"] for j in p}) == 1
    assert sorted(j.name for p in packs for j in p) == sorted(j.name for j in jobs)
    assert [len(p) for p in group_jobs(jobs, 100)] == [6, 6]
    assert [len(p) for p in group_jobs(jobs, 1)] == [1] * 12
    # A model without a discriminator and one with cannot share a pack; gamma can vary.
    mixed = _jobs({"seed": [0, 1]}, include=[{"model": "beta_vae"}, {"model": "factor_vae", "gamma": [10, 20]}])
    groups = group_jobs(mixed, 8)
    assert sorted(len(g) for g in groups) == [2, 4]
    assert {j.train_config["model"] for j in groups[-1]} == {"factor_vae"}
    # Deterministic: the same packs (and pack folders) on a re-run.
    assert [[j.name for j in p] for p in group_jobs(jobs, 4)] == [[j.name for j in p] for p in packs]
    assert pack_folder(Path("/o"), packs[0]) == pack_folder(Path("/o"), group_jobs(jobs, 4)[0])


def test_pack_option_and_auto_size_is_probed_once_and_remembered(tmp_path: Path) -> None:
    assert parse_pack(None) is None and parse_pack("auto") == "auto" and parse_pack("8") == 8
    for bad in ("0", "x", "-1"):
        with pytest.raises(UserError):
            parse_pack(bad)
    from dis_eval.config.train import TrainConfig

    cfg = TrainConfig.from_dict(_jobs({"seed": [0]})[0].train_config, allow_derived=True)
    calls = []

    def fake_probe(c: Any, sizes: list[int]) -> dict[int, float]:
        calls.append(list(sizes))
        return {m: {1: 100.0, 2: 180.0, 4: 300.0, 8: 290.0}.get(m, 10.0) for m in sizes}

    cache = tmp_path / "cache" / "pack_sizes.json"
    assert best_pack_size(cfg, 3, cache, fake_probe) == 2  # at most the group's size
    assert best_pack_size(cfg, 64, cache, fake_probe) == 4
    assert best_pack_size(cfg, 64, cache, fake_probe) == 4
    assert best_pack_size(cfg, 5, cache, fake_probe) == 4
    assert calls == [[1, 2], [4, 8, 16, 32, 64]] and cache.is_file()  # each size probed once


def test_small_sweep_in_packs_writes_finished_run_folders(tmp_path: Path) -> None:
    spec = parse_sweep({"name": "packs", "base": {**BASE, "model": "beta_vae"},
                        "grid": {"beta": [1, 2], "seed": [0, 1]}, "evaluation": EVAL})
    out = tmp_path / "out"
    results = run_sweep(spec, out, ExecutorOptions(), pack=4, report=None)
    assert sorted(r.status for r in results) == ["done"] * 4
    jobs = expand_jobs(spec, resolve_train_config)
    pdir = PackDir(pack_folder(out, jobs))
    assert pdir.is_pack() and len(pdir.members()) == 4
    for job in jobs:
        run = RunDir(out / job.name)
        assert run.is_finished()
        cfg = run.read_config()
        assert (cfg.beta, cfg.seed) == (float(job.settings["beta"]), job.settings["seed"])
        assert run.read_summary()["pack"] == str(pdir.path)
    assert {r["state"] for r in sweep_status(out)} == {"done"}
    again = run_sweep(spec, out, ExecutorOptions(), pack=4, report=None)
    assert {r.status for r in again} == {"skipped"}
    with pytest.raises(UserError, match="local executor"):
        run_sweep(spec, out, ExecutorOptions(executor="ray"), pack=4, report=None)
