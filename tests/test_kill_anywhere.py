"""Kill anywhere, lose nothing (issue 17, item 4): `dis-eval prepare`, `train`, `evaluate`,
`sweep` and the main job are SIGKILLed after random delays; what they leave is checked and the
re-run (train: ``--resume``, the user's way) must give the uninterrupted run's result (harness:
tests/kill_harness.py).

CI runs one kill point per command (harness seed 0). A soak run takes more:
``DIS_EVAL_KILL_POINTS=N`` (harness seeds 0..N-1 per command), ``DIS_EVAL_KILL_CHAIN=K`` (each
point kills the command and then its re-runs K times before letting it finish), and
``DIS_EVAL_KILL_LOG=FILE`` writes every kill point (command, seed, delay, killed or not) as JSON.

The main job's uninterrupted run is the session's shared one (tests/conftest.py ``main_quick``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MainQuickRun, main_quick_command
from tests.kill_harness import KillPoint, Scenario, kill_and_check, run, time_it
from tests.safety_helpers import CHEAP_METRICS, FIXTURE, TINY_CONFIG, tiny_overrides, train_tiny

POINTS = int(os.environ.get("DIS_EVAL_KILL_POINTS", "1"))
CHAIN = int(os.environ.get("DIS_EVAL_KILL_CHAIN", "1"))
SEEDS = list(range(POINTS))
LOG: list[KillPoint] = []


@pytest.fixture(scope="module", autouse=True)
def kill_log() -> Iterator[None]:
    yield
    path = os.environ.get("DIS_EVAL_KILL_LOG")
    if path:
        Path(path).write_text(json.dumps([vars(k) for k in LOG], indent=1))


def _tensors(path: Path) -> dict[str, str]:
    """Every tensor of a model/checkpoint file, by content (bit-identical comparison)."""
    import hashlib

    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob.get("state_dict", blob.get("model"))
    return {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in state.items()}


def _scores(metrics_path: Path) -> dict[str, Any]:
    m = json.loads(metrics_path.read_text())
    return {"headline": m["headline"], "scores": m["scores"]}


def _check(scenario: Scenario, tmp_path: Path, reference: Any, seed: int) -> None:
    first = len(scenario.log)
    try:
        kill_and_check(scenario, tmp_path / f"kill{seed}", seed, reference, kills=CHAIN)
    finally:
        LOG.extend(scenario.log[first:])


def _reference(scenario: Scenario, tmp: Path) -> Any:
    """The uninterrupted run's result; sets the scenario's kill window to its duration."""
    if scenario.setup is not None:
        scenario.setup(tmp)
    scenario.max_delay_s = time_it(lambda: run(scenario.command(tmp))) * 1.1
    return scenario.result(tmp)


# ---- prepare ----------------------------------------------------------------------------------
def _subset_result(work: Path) -> Any:
    from dis_eval.data.dependent import read_subset

    s = read_subset(work / "data" / "subset.h5")
    return (s.recipe.describe(), s.indices.tobytes(), s.kept_fraction, s.total_correlation)


def _prepare_setup(work: Path) -> None:
    (work / "data").mkdir(parents=True, exist_ok=True)
    (work / "data" / "notes.txt").write_text("a file the command must not touch\n")
    run(["prepare", "dependent", "--preset", "paper-text", "--out", str(work / "data" / "subset.h5"), "--quiet"])


PREPARE = Scenario("prepare", lambda w: ["prepare", "dependent", "--preset", "authors", "--out",
                                         str(w / "data" / "subset.h5"), "--quiet"],
                   _subset_result, setup=_prepare_setup, rewrites=("data/subset.h5",))


@pytest.fixture(scope="module")
def prepare_reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _reference(PREPARE, tmp_path_factory.mktemp("prepare-ref"))


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_prepare(prepare_reference: Any, tmp_path: Path, seed: int) -> None:
    _check(PREPARE, tmp_path, prepare_reference, seed)


# ---- train ------------------------------------------------------------------------------------
def _train_scenario(model: str) -> Scenario:
    def command(w: Path) -> list[str]:
        return ["train", str(TINY_CONFIG), *tiny_overrides(model, steps=6, every=2), "--out", str(w / "run"), "--quiet"]

    def rerun(w: Path) -> list[str]:  # the user's way: resume a run folder, else start again
        return ["train", "--resume", str(w / "run"), "--quiet"] if (w / "run" / "config.yaml").exists() else command(w)

    def setup(w: Path) -> None:
        w.mkdir(parents=True, exist_ok=True)
        (w / "notes.txt").write_text("a file the command must not touch\n")

    return Scenario(f"train-{model}", command, lambda w: _tensors(w / "run" / "model.pt"), rerun=rerun,
                    setup=setup, rewrites=("run/*",))


TRAIN = {m: _train_scenario(m) for m in ("beta_vae", "factor_vae", "echo")}


@pytest.fixture(scope="module")
def train_references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model", list(TRAIN))
def test_kill_train(train_references: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
                    tmp_path: Path, model: str, seed: int) -> None:
    scenario = TRAIN[model]
    if model not in train_references:
        train_references[model] = _reference(scenario, tmp_path_factory.mktemp(f"train-ref-{model}"))
    _check(scenario, tmp_path, train_references[model], seed)


# ---- evaluate ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluate_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Any]:
    trained = train_tiny(tmp_path_factory.mktemp("eval-run") / "run", steps=2, every=2)
    run(["evaluate", str(trained), *CHEAP_METRICS["mig"]])  # an earlier evaluation that must be kept

    def setup(w: Path) -> None:
        shutil.copytree(trained, w / "run")

    scenario = Scenario("evaluate", lambda w: ["evaluate", str(w / "run"), *CHEAP_METRICS["unsupervised"]],
                        lambda w: _scores(w / "run" / "metrics.json"), setup=setup, rewrites=("run/metrics.json",))
    return scenario, _reference(scenario, tmp_path_factory.mktemp("eval-ref"))


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_evaluate(evaluate_case: tuple[Scenario, Any], tmp_path: Path, seed: int) -> None:
    scenario, reference = evaluate_case
    assert sorted(reference["headline"]) == ["mig", "unsupervised"]
    _check(scenario, tmp_path, reference, seed)


# ---- sweep ------------------------------------------------------------------------------------
SWEEP_FILE = f"""
name: kill-small
base:
  data: {FIXTURE}
  steps: 4
  batch_size: 16
  checkpoint_every: 2
  log_every: 2
  device: cpu
grid:
  model: [beta_vae]
  seed: [0, 1]
evaluation:
  metrics: [mig]
  device: cpu
  settings:
    mig: {{num_train: 300}}
"""


def _sweep_result(work: Path) -> Any:
    jobs = sorted(p.parent for p in (work / "sweep").rglob("model.pt"))
    return {str(j.relative_to(work)): (_tensors(j / "model.pt"), _scores(j / "metrics.json")) for j in jobs}


def _sweep_setup(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "sweep.yaml").write_text(SWEEP_FILE)


SWEEP = Scenario("sweep", lambda w: ["sweep", str(w / "sweep.yaml"), "--out", str(w / "sweep"), "--jobs", "1"],
                 _sweep_result, setup=_sweep_setup, rewrites=("sweep/*",))


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ref = _reference(SWEEP, tmp_path_factory.mktemp("sweep-ref"))
    assert len(ref) == 2
    return ref


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_sweep(sweep_reference: Any, tmp_path: Path, seed: int) -> None:
    _check(SWEEP, tmp_path, sweep_reference, seed)


# ---- the main job -----------------------------------------------------------------------------
def _main_result(work: Path) -> Any:
    runs = sorted((work / "out" / "runs").iterdir())
    return {r.name: (_tensors(r / "model.pt"), _scores(r / "metrics.json")) for r in runs}


MAIN = Scenario("main", main_quick_command, _main_result, rewrites=("out/*",))


@pytest.fixture(scope="module")
def main_reference(main_quick: MainQuickRun) -> Any:
    """The uninterrupted run: the session's shared main job (tests/conftest.py)."""
    MAIN.max_delay_s = main_quick.seconds * 1.1
    return _main_result(main_quick.work)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_main_job(main_reference: Any, tmp_path: Path, seed: int) -> None:
    _check(MAIN, tmp_path, main_reference, seed)
