"""Dependent-factor subsets: the authors' recipe reproduced exactly (docs/dependent-subsets.md)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dis_eval.data.dependent import (
    PRESETS,
    Recipe,
    build_subset,
    factor_bins,
    kept_cells,
    parse_recipe,
    read_subset,
    resolve_subset,
    search_seed,
    total_correlation,
    write_subset,
)
from dis_eval.data.factors import NUM_IMAGES, all_classes
from dis_eval.errors import UserError
from pipelines.cli import main


@pytest.mark.parametrize(
    ("bins", "kept", "fraction", "tc"),
    [(4, 124_800, 0.169, 1.440), (8, 104_960, 0.142, 1.491)],
)
def test_spec_table_rows(bins: int, kept: int, fraction: float, tc: float) -> None:
    s = build_subset(Recipe(bins, 0.15, 42))
    assert s.num_kept == kept
    assert round(s.kept_fraction, 3) == fraction
    assert round(s.total_correlation, 3) == tc


def test_presets() -> None:
    assert PRESETS["authors"] == {"bins": 8, "drop": 0.15, "seed": 42}
    assert PRESETS["paper-text"] == {"bins": 4, "drop": 0.15, "seed": 42}
    assert build_subset(parse_recipe("authors")).num_kept == 104_960
    assert build_subset(parse_recipe("paper-text")).num_kept == 124_800
    r = parse_recipe("bins=4, drop=0.15 ,seed=42")
    assert (r.bins, r.drop, r.seed) == (4, 0.15, 42)
    with pytest.raises(UserError):
        parse_recipe("bins=4,colour=2")


def test_bins_and_draw_order() -> None:
    assert factor_bins(6, 4, False).tolist() == [0, 0, 1, 1, 2, 3]
    assert np.bincount(factor_bins(40, 4, False)).tolist() == [10] * 4
    assert factor_bins(3, 4, True).tolist() == [0, 1, 2]
    assert factor_bins(6, 8, False).tolist() == list(range(6))
    # an independent literal transcription: one rand() per bin pair, nested loops, per image test
    import itertools

    rs = np.random.RandomState(5)
    nb = [3, 4, 4, 4, 4]
    per_factor = [factor_bins(3, 4, True)] + [factor_bins(s, 4, False) for s in (6, 40, 32, 32)]
    dropped = {}
    for i in range(5):
        for j in range(i + 1, 5):
            for a, b in itertools.product(range(nb[i]), range(nb[j])):
                dropped[(i, j, a, b)] = rs.rand() < 0.3
    classes = all_classes()[::97]
    binned = np.stack([per_factor[k][classes[:, k]] for k in range(5)], 1)
    expect = np.array([not any(dropped[(i, j, r[i], r[j])] for i, j in itertools.combinations(range(5), 2)) for r in binned])
    keep = kept_cells(Recipe(4, 0.3, 5))
    got = keep[tuple(binned.T)]
    assert np.array_equal(got, expect)


def test_tc_definition() -> None:
    # the full grid is independent: TC 0; one shape only drops shape's entropy and the count alike
    assert abs(total_correlation(np.arange(NUM_IMAGES))) < 1e-9
    assert abs(total_correlation(np.arange(245_760))) < 1e-9
    # two rows differing in two factors: TC = 2 log 2 - log 2 = log 2
    assert total_correlation(np.array([0, 245_760 + 1])) == pytest.approx(np.log(2))


def test_recipe_that_keeps_nothing() -> None:
    with pytest.raises(UserError, match="keeps no rows"):
        build_subset(Recipe(4, 1.0, 0))


def test_h5_roundtrip_and_attributes(tmp_path: Path) -> None:
    s = build_subset(parse_recipe("authors"))
    path = tmp_path / "a.h5"
    write_subset(path, s)
    with h5py.File(path) as f:
        assert f.attrs["bins"] == 8 and f.attrs["seed"] == 42 and f.attrs["drop"] == 0.15
        assert f.attrs["kept_fraction"] == pytest.approx(104_960 / NUM_IMAGES)
        assert f.attrs["total_correlation_nats"] == pytest.approx(1.4914, abs=1e-4)
        assert np.array_equal(f["classes"][()], all_classes()[s.indices])
    back = read_subset(path)
    assert np.array_equal(back.indices, s.indices) and back.recipe.name == "authors"
    assert np.array_equal(resolve_subset(str(path)).indices, s.indices)
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def test_seed_search_hits_targets() -> None:
    s = search_seed(4, 0.15, target_fraction=0.15, target_tc=1.49, seeds=range(300))
    assert abs(s.kept_fraction - 0.15) < 0.02 and abs(s.total_correlation - 1.49) < 0.1
    # the reported statistics are those of the rebuilt subset
    again = build_subset(Recipe(4, 0.15, s.recipe.seed))
    assert again.num_kept == s.num_kept and again.total_correlation == pytest.approx(s.total_correlation)


def test_cli_dependent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "dependent", "--preset", "authors", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "preset 'authors'" in out and "0.1424" in out and "1.4914" in out
    assert (tmp_path / "dependent_authors.h5").exists()
    assert main(["prepare", "dependent", "--bins", "4", "--drop", "0.15", "--seed", "42", "--out", str(tmp_path / "p.h5"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "paper-text" in out and "0.1693" in out and "1.4398" in out
    assert main(["prepare", "dependent", "--target-fraction", "0.15", "--seeds", "50", "--out", str(tmp_path / "s.h5"), "--quiet"]) == 0
    assert "found seed" in capsys.readouterr().out
    # bad input: one-line error, exit 2, no file left
    assert main(["prepare", "dependent", "--drop", "1.0", "--out", str(tmp_path / "none.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "none.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dependent_authors.h5", "p.h5", "s.h5"]
