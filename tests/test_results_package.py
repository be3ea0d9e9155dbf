"""The results package: cheap to import, every public name in place, outputs pinned byte for byte,
files written atomically, and the comparison entry point (pipelines.compare) end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dis_eval import results
from dis_eval.atomic import TEMP_MARK
from dis_eval.config.train import DERIVED_KEYS as TRAIN_DERIVED_KEYS
from tests.test_results import cfg, make_run

REPO = Path(__file__).resolve().parents[1]

# write_comparison's files for `fixture_runs`, as dis_eval/results.py wrote them before the split
# into a package: the tables, formats and Table 2 layout must not change - except, on purpose, the
# CSV's columns for the sd over metric seeds and the baselines (empty here: the fixture runs have
# neither) and the LaTeX caption naming the spread (training seeds).
EXPECTED: dict[str, str] = {
    'csv': (
        'model,beta,lambda_tc,subset,n,seeds,factor_vae_mean,factor_vae_sd,factor_vae_n,factor_vae_sd_metric,'
        'factor_vae_n_metric,factor_vae_random,factor_vae_oracle,mig_mean,mig_sd,mig_n,mig_sd_metric,mig_n_metric,'
        'mig_random,mig_oracle\n'
        'beta_vae,1,,,2,"0,1",0.6499999999999999,0.07071067811865474,2,,0,,,0.07,0.028284271247461894,2,,0,,\n'
        'beta_vae,4,,,1,0,0.5,,1,,0,,,0.3,,1,,0,,\n'
        'echo,1,,,2,"0,1",0.8200000000000001,0.02828427124746185,2,,0,,,0.15000000000000002,0.07071067811865477,2,,0,,\n'
        'echo,1,,authors,1,0,0.7,,1,,0,,,0.11,,1,,0,,\n'
        'echo_tc,1,10.0,,1,0,0.78,,1,,0,,,0.3,,1,,0,,\n'
    ),
    'md': (
        '| model | beta | lambda_tc | subset | n | factor_vae | mig |\n'
        '|---|---|---|---|---|---|---|\n'
        '| beta_vae | 1 |  |  | 2 | 0.65 ± 0.07 | 0.07 ± 0.03 |\n'
        '| beta_vae | 4 |  |  | 1 | 0.50 | 0.30 |\n'
        '| echo | 1 |  |  | 2 | 0.82 ± 0.03 | 0.15 ± 0.07 |\n'
        '| echo | 1 |  | authors | 1 | 0.70 | 0.11 |\n'
        '| echo_tc | 1 | 10 |  | 1 | 0.78 | 0.30 |\n'
    ),
    'tex': (
        '% mean ± sd over training seeds (n: runs)\n'
        '\\begin{tabular}{lllllll}\n'
        '\\toprule\n'
        'model & beta & lambda\\_tc & subset & n & factor\\_vae & mig \\\\\n'
        '\\midrule\n'
        'beta\\_vae & 1 &  &  & 2 & 0.65 $\\pm$ 0.07 & 0.07 $\\pm$ 0.03 \\\\\n'
        'beta\\_vae & 4 &  &  & 1 & 0.50 & 0.30 \\\\\n'
        'echo & 1 &  &  & 2 & 0.82 $\\pm$ 0.03 & 0.15 $\\pm$ 0.07 \\\\\n'
        'echo & 1 &  & authors & 1 & 0.70 & 0.11 \\\\\n'
        'echo\\_tc & 1 & 10 &  & 1 & 0.78 & 0.30 \\\\\n'
        '\\bottomrule\n'
        '\\end{tabular}\n'
    ),
    'table2_csv': (
        'data,full,full,full,full,authors,authors\n'
        'score,factor_vae,factor_vae,mig,mig,factor_vae,mig\n'
        'model,echo,vae,echo,vae,echo,echo\n'
        'setting,,,,,,\n'
        'β = 1,0.82 ± 0.03,0.65 ± 0.07,0.15 ± 0.07,0.07 ± 0.03,0.70,0.11\n'
        'β = 4,–,0.50,–,0.30,–,–\n'
        'λ = 0,0.82 ± 0.03,0.65 ± 0.07,0.15 ± 0.07,0.07 ± 0.03,0.70,0.11\n'
        'λ = 10,0.78,–,0.30,–,–,–\n'
    ),
    'table2_md': (
        '| setting | full / factor_vae / echo | full / factor_vae / vae | full / mig / echo | full / mig / vae | authors / factor_vae / echo | authors / mig / echo |\n'
        '|---|---|---|---|---|---|---|\n'
        '| β = 1 | 0.82 ± 0.03 | 0.65 ± 0.07 | 0.15 ± 0.07 | 0.07 ± 0.03 | 0.70 | 0.11 |\n'
        '| β = 4 | – | 0.50 | – | 0.30 | – | – |\n'
        '| λ = 0 | 0.82 ± 0.03 | 0.65 ± 0.07 | 0.15 ± 0.07 | 0.07 ± 0.03 | 0.70 | 0.11 |\n'
        '| λ = 10 | 0.78 | – | 0.30 | – | – | – |\n'
    ),
    'table2_tex': (
        '\\begin{tabular}{lcccccc}\n'
        '\\toprule\n'
        'setting & \\multicolumn{4}{c}{full} & \\multicolumn{2}{c}{authors} \\\\\n'
        ' & \\multicolumn{2}{c}{factor\\_vae} & \\multicolumn{2}{c}{mig} & factor\\_vae & mig \\\\\n'
        ' & echo & vae & echo & vae & echo & echo \\\\\n'
        '\\midrule\n'
        '$\\beta$ = 1 & 0.82 $\\pm$ 0.03 & 0.65 $\\pm$ 0.07 & 0.15 $\\pm$ 0.07 & 0.07 $\\pm$ 0.03 & 0.70 & 0.11 \\\\\n'
        '$\\beta$ = 4 & -- & 0.50 & -- & 0.30 & -- & -- \\\\\n'
        '$\\lambda$ = 0 & 0.82 $\\pm$ 0.03 & 0.65 $\\pm$ 0.07 & 0.15 $\\pm$ 0.07 & 0.07 $\\pm$ 0.03 & 0.70 & 0.11 \\\\\n'
        '$\\lambda$ = 10 & 0.78 & -- & 0.30 & -- & -- & -- \\\\\n'
        '\\bottomrule\n'
        '\\end{tabular}\n'
    ),
}


@pytest.fixture()
def fixture_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "echo_b1_s0", cfg("echo", 1, 0), {"factor_vae": 0.80, "mig": 0.10})
    make_run(root, "echo_b1_s1", cfg("echo", 1, 1), {"factor_vae": 0.84, "mig": 0.20})
    make_run(root, "vae_b1_s0", cfg("vae", 1, 0), {"factor_vae": 0.60, "mig": 0.05})
    make_run(root, "vae_b1_s1", cfg("vae", 1, 1), {"factor_vae": 0.70, "mig": 0.09})
    make_run(root, "vae_b4_s0", cfg("vae", 4, 0), {"factor_vae": 0.50, "mig": 0.30})
    make_run(root, "echo_tc_s0", cfg("echo", 1, 0, tc=10), {"factor_vae": 0.78, "mig": 0.30})
    make_run(root, "echo_dep_s0", cfg("echo", 1, 0, subset="authors"), {"factor_vae": 0.70, "mig": 0.11})
    make_run(root, "vae_b4_s1", cfg("vae", 4, 1), None, status="running")
    return root


def _python(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_import_is_cheap() -> None:
    """Importing the package (and reading runs) loads no pandas, matplotlib or torch."""
    _python(
        "import sys, dis_eval.results\n"
        "from dis_eval.results import discover_runs, group_runs\n"
        "import pipelines.compare\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'seaborn', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )


def test_public_names_resolve() -> None:
    for name in results.__all__:
        assert getattr(results, name) is not None, name
    assert sorted(dir(results)) == sorted(results.__all__)
    # A submodule never shadows a function of the same name on the package.
    import dis_eval.results.table2_layout  # noqa: F401

    assert callable(results.table2) and results.table2.__name__ == "table2"
    with pytest.raises(AttributeError):
        results.no_such_name  # noqa: B018


def test_derived_keys_are_the_trainers_plus_d_max() -> None:
    assert results.DERIVED_KEYS == (*TRAIN_DERIVED_KEYS, "d_max")


def test_outputs_unchanged(fixture_runs: Path, tmp_path: Path) -> None:
    out = results.write_comparison(results.discover_runs([fixture_runs]), tmp_path / "cmp")
    for name, text in EXPECTED.items():
        assert out.files[name].read_text(encoding="utf-8") == text, name
    assert out.scores == ["factor_vae", "mig"] and out.grouped is not None
    assert not list((tmp_path / "cmp").glob(f"*{TEMP_MARK}*"))


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", cfg("echo", 1, 0), {"mig": 0.2})
    (run / "summary.json").write_text("[1]")
    (run / "metrics.json").write_text("{")
    [loaded] = results.discover_runs([tmp_path])
    assert loaded.summary is None and loaded.metrics is None
    assert loaded.problems[0].startswith("unreadable metrics.json: ")
    assert loaded.problems[1] == "summary.json is not a JSON object"
    assert loaded.status == "no summary.json"
    assert results.missing_report([loaded])[-1].endswith(
        "no scores (metrics.json missing or empty; training status: no summary.json)")


def test_subset_spellings(tmp_path: Path) -> None:
    for i, subset in enumerate([None, "", "none", "full", "authors", "/x/my_subset.h5"]):
        make_run(tmp_path, f"r{i}", cfg("echo", 1, 0, subset=subset), {"mig": 0.1})
    labels = [results.data_label(r) for r in results.discover_runs([tmp_path])]
    assert labels == ["full", "full", "full", "full", "authors", "my_subset"]


def test_compare_runs_end_to_end(fixture_runs: Path, tmp_path: Path) -> None:
    from pipelines.compare import compare_runs

    lines: list[str] = []
    out_dir = tmp_path / "cmp"
    outputs = compare_runs([fixture_runs], out_dir, None, 2, plots=True, log=lines.append)
    assert lines[0] == "8 run(s), 7 with scores, 5 configuration(s)"
    assert any("vae_b4_s1" in line for line in lines)
    for name in ("scores_by_config_png", "scores_by_config_pdf", "score_vs_beta_png", "score_vs_lambda_pdf"):
        assert outputs.files[name].is_file(), name
    assert outputs.files["md"].read_text(encoding="utf-8") == EXPECTED["md"]
    assert not list(out_dir.glob(f"*{TEMP_MARK}*"))
