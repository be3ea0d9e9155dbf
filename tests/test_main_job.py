"""The main job end to end on the real-image fixture (a handful of steps), then the `plot` and
`compare` commands on its runs: every figure file is produced and non-empty, the comparison
table holds both runs, and runs without metrics are listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cli import main as cli
from tests.conftest import MainQuickRun

FIGURES = ("latent_vs_factor.png", "latent_vs_factor.pdf", "mi_heatmap.png", "mi_heatmap.pdf",
           "reconstructions.png", "reconstructions.pdf")


def _check_figures(folder: Path) -> None:
    for name in FIGURES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 1000, folder / name
    for ext in (".png", ".pdf", ".gif"):
        found = list(folder.glob(f"traversal_*{ext}"))
        assert found and all(p.stat().st_size > 1000 for p in found), (folder, ext)


@pytest.fixture(scope="module")
def main_out(main_quick: MainQuickRun) -> tuple[Path, str]:
    """The session's shared ``main --quick`` (tests/conftest.py): read only."""
    return main_quick.out, main_quick.stdout


@pytest.mark.timeout(300)
def test_main_job_writes_everything(main_out: tuple[Path, str]) -> None:
    out, stdout = main_out
    assert "[5/5] compare" in stdout and f"Everything is under {out.resolve()}" in stdout
    assert (out / "README.txt").read_text().startswith("dis-eval main job output")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["subset"].endswith("dependent_authors.h5")
    assert (out / "data" / "dependent_authors.h5").is_file()
    runs = sorted((out / "runs").iterdir())
    assert [r.name for r in runs] == ["echo_beta1_seed0", "vae_beta1_seed0"]
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert set(metrics["headline"]) == {"factor_vae", "mig"}
        assert metrics["protocol"] == "subset" and metrics["representation"] == "mean"
        assert json.loads((run / "summary.json").read_text())["step"] == 2
        _check_figures(run / "figures")
    table = pd.read_csv(out / "comparison" / "scores.csv")
    assert sorted(table["model"]) == ["beta_vae", "echo"] and list(table["n"]) == [1, 1]
    for run in runs:  # the table reports each run's own numbers (one seed: mean = value, no sd), per convention
        protocols = json.loads((run / "metrics.json").read_text())["protocols"]
        row = table[table["model"] == json.loads(json.dumps(_model(run)))].iloc[0]
        for conv in ("dlib", "paper"):
            head = protocols[conv]["headline"]
            assert row[f"{conv}:mig_mean"] == pytest.approx(head["mig"]) and pd.isna(row[f"{conv}:mig_sd"])
    assert (out / "comparison" / "table2.md").read_text().count("β = 1") == 1
    assert "none" in (out / "comparison" / "missing.txt").read_text()
    for name in ("scores_by_config.png", "score_vs_beta.pdf"):
        assert (out / "comparison" / name).stat().st_size > 1000


def _model(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["model"]


@pytest.mark.timeout(300)
def test_plot_and_compare_commands(main_out: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, _ = main_out
    run = out / "runs" / "echo_beta1_seed0"
    assert cli(["plot", str(run), "--out", str(tmp_path / "figs"), "--seed-images", "1", "--rows", "300"]) == 0
    _check_figures(tmp_path / "figs")
    # A run that never got scored is listed, not dropped.
    runs = tmp_path / "runs"
    shutil.copytree(out / "runs", runs)
    (runs / "vae_beta1_seed0" / "metrics.json").unlink()
    capsys.readouterr()
    assert cli(["compare", str(runs), "--out", str(tmp_path / "cmp"), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "vae_beta1_seed0: no scores" in printed
    assert "vae_beta1_seed0" in (tmp_path / "cmp" / "missing.txt").read_text()
    assert len(pd.read_csv(tmp_path / "cmp" / "scores.csv")) == 1


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["main", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "missing.npz"), "--quick"]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli(["compare", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["plot", str(tmp_path / "nothing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_echo_rate_floor_flags_untrained_echo(tmp_path: Path) -> None:
    """The main job warns when every Echo latent still sits at -log r (nothing transmitted)."""
    import json
    import math

    from pipelines.main_job import _echo_rate_floor

    floor = -math.log(0.7622)
    (tmp_path / "config.yaml").write_text("model: echo\necho_clip: 0.7622\n")
    (tmp_path / "summary.json").write_text(json.dumps({"rate_per_dim": [floor + 1e-5] * 10}))
    assert _echo_rate_floor(tmp_path) == pytest.approx(0.27155, abs=1e-4)
    (tmp_path / "summary.json").write_text(json.dumps({"rate_per_dim": [floor] * 9 + [2.5]}))
    assert _echo_rate_floor(tmp_path) is None
    (tmp_path / "config.yaml").write_text("model: beta_vae\n")  # no clip: not an Echo run
    assert _echo_rate_floor(tmp_path) is None
