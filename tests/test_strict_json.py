"""Strict JSON everywhere: the main commands (train, evaluate, score, compare, plot, sweep, and
main --quick: the session's shared run, tests/conftest.py) on the test fixtures, then every
JSON file they wrote and every ``--json`` output is parsed by a reader that rejects the NaN /
Infinity tokens strict JSON readers refuse."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from dis_eval.data.factors import all_classes
from pipelines.cli import main
from tests.conftest import MainQuickRun

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
SMALL = ["--set", "factor_vae.num_train=64", "--set", "factor_vae.num_eval=32",
         "--set", "factor_vae.num_variance_estimate=256", "--set", "mig.num_train=256"]
SWEEP = f"""
name: strict-json
base:
  data: {FIXTURE}
  steps: 2
  batch_size: 16
  checkpoint_every: 2
  log_every: 1
  device: cpu
grid:
  model: [echo]
  seed: [0]
evaluation:
  metrics: [mig, factor_vae]
  seed: 0
  device: cpu
  settings:
    mig: {{num_train: 256}}
    factor_vae: {{num_train: 64, num_eval: 32, num_variance_estimate: 256}}
"""


def _reject(token: str) -> None:
    raise ValueError(f"non-standard JSON token {token}")


def strict_load(text: str) -> object:
    return json.loads(text, parse_constant=_reject)


def _run(argv: list[str]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    assert rc == 0, (argv, buf.getvalue()[-2000:])
    return buf.getvalue()


@pytest.mark.timeout(1200)
def test_every_json_written_is_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      main_quick: MainQuickRun) -> None:
    monkeypatch.setenv("DIS_EVAL_CACHE", str(tmp_path / "cache"))
    outputs: list[str] = []
    # main --quick (prepare, train, evaluate, figures, compare): the session's shared run, read only
    main_files = sorted(main_quick.work.rglob("*.json"))
    assert {"metrics.json", "summary.json", "manifest.json"} <= {p.name for p in main_files}
    # train + evaluate + plot + compare by their commands
    run = tmp_path / "runs" / "echo"
    _run(["train", str(ROOT / "pipelines" / "configs" / "tiny_cpu.yaml"), f"data={FIXTURE}", "steps=2",
          "checkpoint_every=2", "log_every=1", "--out", str(run), "--quiet"])
    outputs.append(_run(["evaluate", str(run), "--metrics", "factor_vae,mig", *SMALL, "--device", "cpu",
                         "--repeats", "2", "--json"]))
    _run(["plot", str(run), "--device", "cpu", "--rows", "500"])
    _run(["compare", str(tmp_path / "runs"), str(main_quick.out / "runs"), "--out", str(tmp_path / "cmp"),
          "--no-plots"])
    # score: codes whose one latent is constant (MIG's MI with it is 0; FactorVAE prunes it)
    codes = np.concatenate([all_classes().astype(np.float32), np.zeros((737_280, 1), np.float32)], axis=1)
    np.savez(tmp_path / "codes.npz", codes=codes)
    outputs.append(_run(["score", str(tmp_path / "codes.npz"), "--metrics", "factor_vae,mig", *SMALL,
                         "--json", "--out", str(tmp_path / "score.json")]))
    # sweep
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    _run(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "sweep"), "--jobs", "1"])

    files = sorted(tmp_path.rglob("*.json"))
    names = {p.name for p in files}
    assert {"metrics.json", "summary.json", "sweep_job.json", "score.json"} <= names
    files += main_files
    assert any(p.parent.name == "baselines" for p in files)
    for path in files:
        strict_load(path.read_text(encoding="utf-8"))
    for text in outputs:
        strict_load(text)
    # the sweep's job scored both conventions
    [job] = [p for p in (tmp_path / "sweep").rglob("metrics.json")]
    assert sorted(strict_load(job.read_text())["protocols"]) == ["dlib", "paper"]
