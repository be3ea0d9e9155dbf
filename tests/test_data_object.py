"""The data object contract (ARCHITECTURE.md, "Data"): on the real-image fixture and the factor grid."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from dis_eval.data import DataSpec, GroundTruthData, NoImagesError, default_data_dir, load_data
from dis_eval.data.factors import FACTOR_SIZES, NUM_IMAGES, classes_to_index
from dis_eval.errors import UserError

FIXTURE = Path(__file__).parent / "data" / "dsprites_real_fixture.npz"


@pytest.fixture(scope="module")
def real() -> GroundTruthData:
    return load_data(DataSpec(source=str(FIXTURE)))


@pytest.fixture(scope="module")
def raw() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def test_fixture_is_small_and_real(raw: dict[str, np.ndarray]) -> None:
    assert FIXTURE.stat().st_size < 1_000_000
    assert raw["imgs"].shape == (3000, 64, 64) and raw["imgs"].dtype == np.uint8
    assert raw["latents_classes"].shape == (3000, 6) and raw["latents_classes"].dtype == np.int64
    assert set(np.unique(raw["imgs"])) == {0, 1}
    # the stored original indices agree with the factor classes (official order, posY fastest)
    assert np.array_equal(classes_to_index(raw["latents_classes"][:, 1:]), raw["original_dataset_indices"])
    assert (FIXTURE.parent / "LICENSE-dsprites-Apache-2.0.txt").exists()


def test_fixture_loads_as_subset(real: GroundTruthData, raw: dict[str, np.ndarray]) -> None:
    assert len(real) == 3000 and not real.is_full_grid
    assert real.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert real.factor_sizes == (3, 6, 40, 32, 32) and real.num_factors == 5
    assert np.all(np.diff(real.indices) > 0)
    order = np.argsort(raw["original_dataset_indices"])
    assert np.array_equal(real.indices, raw["original_dataset_indices"][order])
    assert np.array_equal(real.classes, raw["latents_classes"][order, 1:])
    # images round-trip through the bit-packed store exactly
    imgs = real.images(np.arange(len(real)))
    assert imgs.dtype == torch.float32 and imgs.shape == (3000, 1, 64, 64)
    assert np.array_equal(imgs[:, 0].numpy().astype(np.uint8), raw["imgs"][order])
    assert real.packed.dtype == torch.uint8 and tuple(real.packed.shape) == (3000, 512)


def test_positions_and_observations(real: GroundTruthData, raw: dict[str, np.ndarray]) -> None:
    rs = np.random.RandomState(0)
    pos = real.sample_positions(50, rs)
    f = real.classes[pos]
    assert np.array_equal(real.factors_to_positions(f), pos)
    obs = real.sample_observations_from_factors(f, np.random.RandomState(1))
    assert obs.shape == (50, 64, 64, 1) and obs.dtype == np.float32
    assert np.array_equal(obs[..., 0], real.images(pos)[:, 0].numpy())
    absent = np.array([[0, 0, 0, 0, 1]])
    assert classes_to_index(absent)[0] not in set(real.indices)
    with pytest.raises(ValueError, match="not present"):
        real.factors_to_positions(absent)


def test_subset_sampling_only_present_rows(real: GroundTruthData) -> None:
    rs = np.random.RandomState(3)
    present = set(real.indices.tolist())
    f = real.sample_factors(500, rs)
    assert set(classes_to_index(f).tolist()) <= present
    for k in range(5):
        g = real.sample_fixed_factor(200, k, rs)
        assert np.all(g[:, k] == g[0, k])
        assert set(classes_to_index(g).tolist()) <= present
        # the other factors still vary
        assert len(np.unique(classes_to_index(g))) > 20


def _import_dlib_state_space() -> types.ModuleType:
    """disentanglement_lib's ``ground_truth.util`` (its TF import is only used by an unrelated
    function, so a stand-in ``tensorflow.compat.v1`` is put in place for the import alone)."""
    pytest.importorskip("disentanglement_lib")
    name = "disentanglement_lib.data.ground_truth.util"
    if name in sys.modules:
        return sys.modules[name]
    fakes = {m: types.ModuleType(m) for m in ("tensorflow", "tensorflow.compat", "tensorflow.compat.v1")}
    fakes["tensorflow"].compat = fakes["tensorflow.compat"]
    fakes["tensorflow.compat"].v1 = fakes["tensorflow.compat.v1"]
    saved = {m: sys.modules.get(m) for m in fakes}
    sys.modules.update(fakes)
    try:
        import importlib

        return importlib.import_module(name)
    finally:
        for m, old in saved.items():
            if old is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = old


def test_grid_sampling_matches_disentanglement_lib() -> None:
    util = _import_dlib_state_space()
    space = util.SplitDiscreteStateSpace([1, 3, 6, 40, 32, 32], [1, 2, 3, 4, 5])
    grid = GroundTruthData.grid()
    assert grid.is_full_grid and len(grid) == NUM_IMAGES
    ours, ref = np.random.RandomState(7), np.random.RandomState(7)
    for n in (1, 64, 1000):
        assert np.array_equal(grid.sample_factors(n, ours), space.sample_latent_factors(n, ref))
    # the fixed-factor batch of dlib's FactorVAE score: sample, then copy row 0's value
    for k in range(5):
        expect = space.sample_latent_factors(64, ref)
        expect[:, k] = expect[0, k]
        assert np.array_equal(grid.sample_fixed_factor(64, k, ours), expect)
    # the random states stay in lockstep
    assert ours.randint(1 << 30) == ref.randint(1 << 30)


def test_grid_positions_are_official_indices() -> None:
    grid = GroundTruthData.grid()
    f = np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 2, 3, 4, 5]])
    assert grid.factors_to_positions(f).tolist() == [0, NUM_IMAGES - 1, 245760 + 2 * 40960 + 3 * 1024 + 4 * 32 + 5]
    with pytest.raises(NoImagesError, match="factors only"):
        grid.images([0])
    with pytest.raises(ValueError):
        grid.factors_to_positions(np.array([[3, 0, 0, 0, 0]]))


def test_restricted_grid_samples_within_rows() -> None:
    keep = np.arange(0, NUM_IMAGES, 7)
    sub = GroundTruthData.grid().restrict(keep)
    assert len(sub) == len(keep) and not sub.is_full_grid
    rs = np.random.RandomState(0)
    f = sub.sample_fixed_factor(300, 2, rs)
    assert np.all(classes_to_index(f) % 7 == 0) and np.all(f[:, 2] == f[0, 2])
    sizes = np.asarray(FACTOR_SIZES)
    assert np.all(f < sizes)


def test_load_with_subset_recipe_on_fixture() -> None:
    data = load_data(DataSpec(source=str(FIXTURE), subset="authors"))
    from dis_eval.data.dependent import build_subset, parse_recipe

    kept = build_subset(parse_recipe("authors")).indices
    full = load_data(DataSpec(source=str(FIXTURE)))
    assert np.array_equal(data.indices, np.intersect1d(full.indices, kept))
    assert 0 < len(data) < len(full)
    assert data.info["subset"].startswith("authors")
    same = load_data(DataSpec(source=str(FIXTURE), subset="bins=8,drop=0.15,seed=42"))
    assert np.array_equal(same.indices, data.indices)
    # images follow their rows
    pos = full.factors_to_positions(data.classes[:5])
    assert torch.equal(data.images(np.arange(5)), full.images(pos))


def test_data_dir_and_missing_prepared_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIS_EVAL_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    with pytest.raises(UserError, match="dis-eval prepare dsprites"):
        load_data(DataSpec(source="dsprites"))
    with pytest.raises(UserError, match="unknown data source"):
        load_data(DataSpec(source="mnist"))
    with pytest.raises(UserError, match="unknown subset"):
        load_data(DataSpec(source=str(FIXTURE), subset="bogus"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_images_on_gpu(real: GroundTruthData) -> None:
    gpu = real.to("cuda")
    assert gpu.packed.is_cuda
    out = gpu.images(np.arange(10))
    assert out.is_cuda and torch.equal(out.cpu(), real.images(np.arange(10)))


# ---- any discrete factor grid; a user's factors file ----------------------------------------
SMALL_SIZES = (3, 5, 6)


def test_small_grid_sampling_matches_disentanglement_lib() -> None:
    util = _import_dlib_state_space()
    space = util.SplitDiscreteStateSpace(list(SMALL_SIZES), [0, 1, 2])
    grid = GroundTruthData.grid(factor_sizes=SMALL_SIZES)
    assert grid.is_full_grid and len(grid) == 90 and grid.factor_names == ("factor0", "factor1", "factor2")
    ours, ref = np.random.RandomState(5), np.random.RandomState(5)
    for n in (1, 16, 500):
        assert np.array_equal(grid.sample_factors(n, ours), space.sample_latent_factors(n, ref))
    assert ours.randint(1 << 30) == ref.randint(1 << 30)
    # the same grid given row by row in another order draws the same combinations
    order = np.random.RandomState(0).permutation(90)
    shuffled = GroundTruthData.from_factors(grid.classes[order])
    assert shuffled.is_full_grid
    a, b = np.random.RandomState(9), np.random.RandomState(9)
    pos = shuffled.sample_batches(100, 16, b)
    assert np.array_equal(shuffled.classes[pos], grid.classes[grid.sample_batches(100, 16, a)])


def _subset_and_user_rows() -> list[GroundTruthData]:
    grid = GroundTruthData.grid(factor_sizes=SMALL_SIZES)
    rs = np.random.RandomState(1)
    sub = grid.restrict(np.sort(rs.choice(90, 60, replace=False)))
    rows = np.repeat(grid.classes, rs.randint(0, 3, size=90), axis=0)
    return [sub, GroundTruthData.from_factors(rows[rs.permutation(len(rows))])]


@pytest.mark.parametrize("data", [GroundTruthData.grid(), GroundTruthData.grid(factor_sizes=SMALL_SIZES),
                                  *_subset_and_user_rows()], ids=["dsprites", "grid356", "subset", "user_rows"])
def test_batched_draws_equal_the_single_draws(data: GroundTruthData) -> None:
    """The metrics' batch draws (replayed in bulk on a full grid) are the single draws in turn."""
    f = data.num_factors
    a, b = np.random.RandomState(11), np.random.RandomState(11)
    got = data.sample_batches(100, 16, a)
    want = np.concatenate([data.sample_positions(m, b) for m in [16] * 6 + [4]])
    assert np.array_equal(data.classes[got], data.classes[want])
    ks, pos = data.sample_fixed_factor_batches(20, 8, a)
    for v in range(20):
        assert ks[v] == b.randint(f)
        assert np.array_equal(data.classes[pos[v]], data.sample_fixed_factor(8, int(ks[v]), b))
        assert np.all(data.classes[pos[v], ks[v]] == data.classes[pos[v][0], ks[v]])
    ks, p1, p2 = data.sample_paired_batches(20, 8, a)
    for v in range(20):
        k = b.randint(f)
        assert ks[v] == k
        if data.is_full_grid:  # dlib's draw: two batches, the second's factor k copied
            f1, f2 = data.sample_factors(8, b), data.sample_factors(8, b)
            f2[:, k] = f1[:, k]
        else:  # a uniform batch, each partner among the rows sharing its factor k
            q1 = data.sample_positions(8, b)
            f1, f2 = data.classes[q1], data.classes[data.sampler.partners(q1, k, b)]
        assert np.array_equal(data.classes[p1[v]], f1) and np.array_equal(data.classes[p2[v]], f2)
        assert np.array_equal(data.classes[p1[v], k], data.classes[p2[v], k])
    assert a.randint(1 << 30) == b.randint(1 << 30)  # both random states in lockstep


def test_user_rows_repeat_and_miss_combinations() -> None:
    classes = np.array([[0, 1], [0, 1], [2, 0], [1, 1], [2, 1], [0, 0]])
    data = GroundTruthData.from_factors(classes, ("hue", "size"))
    assert data.factor_sizes == (3, 2) and data.factor_names == ("hue", "size") and not data.is_full_grid
    assert np.array_equal(data.indices, np.arange(6)) and not data.has_images
    assert data.factors_to_positions(np.array([[2, 0], [1, 1]])).tolist() == [2, 3]
    with pytest.raises(ValueError, match="more than one row"):
        data.factors_to_positions(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="not present"):
        data.factors_to_positions(np.array([[1, 0]]))
    rs = np.random.RandomState(0)
    pos = data.sample_positions(6000, rs)
    counts = np.bincount(pos, minlength=6)
    assert np.all(np.abs(counts / 6000 - 1 / 6) < 0.02)  # rows, not combinations, are uniform
    ks, batches = data.sample_fixed_factor_batches(50, 4, rs)
    for k, p in zip(ks, batches, strict=True):
        assert np.all(data.classes[p, k] == data.classes[p[0], k])
    sub = data.restrict([1, 2, 5])
    assert np.array_equal(sub.classes, classes[[1, 2, 5]]) and sub.factor_names == ("hue", "size")
    with pytest.raises(NoImagesError):
        data.images([0])


def _save(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


def test_factors_file_reads_rows_in_order(tmp_path: Path) -> None:
    from dis_eval.data.factors_file import load_factors_file

    classes = np.array([[0, 2], [1, 0], [1, 0], [0, 1]])
    data = load_factors_file(_save(tmp_path / "f.npz", factors=classes, factor_names=np.array(["shape", "size"]),
                                   codes=np.zeros((4, 3))))
    assert np.array_equal(data.classes, classes) and data.factor_names == ("shape", "size")
    assert data.factor_sizes == (2, 3) and data.info["distinct_combinations"] == 3
    one = load_factors_file(_save(tmp_path / "one.npz", factors=np.array([0.0, 1.0, 2.0, 1.0])))
    assert one.classes.tolist() == [[0], [1], [2], [1]] and one.factor_names == ("factor0",)
    flags = load_factors_file(_save(tmp_path / "b.npz", factors=np.array([[True], [False]])))
    assert flags.classes.tolist() == [[1], [0]]


@pytest.mark.parametrize("arrays,message", [
    ({"codes": np.zeros((3, 2))}, "no 'factors' array"),
    ({"factors": np.array([[0.5, 1.0], [1.0, 0.0]])}, "integer classes"),
    ({"factors": np.array([[0, -1], [1, 0]])}, "negative"),
    ({"factors": np.array([[0, 1]])}, "at least two rows"),
    ({"factors": np.zeros((2, 2, 2), dtype=int)}, "2-D"),
    ({"factors": np.array([[0, np.nan], [1, 0]])}, "NaN"),
    ({"factors": np.array([["a"], ["b"]])}, "integer classes"),
    ({"factors": np.array([[0, 1], [1, 0]]), "factor_names": np.array(["x"])}, "name each"),
    ({"factors": np.array([[0, 1], [1, 0]]), "factor_names": np.array(["x", "x"])}, "distinct"),
    ({"factors": np.array([[0, 1], [1, 0]]), "factor_names": np.array([1, 2])}, "strings"),
    ({"factors": np.array([[0, 1], [1, 0]]), "factor_names": np.array(["x", object()], dtype=object)}, "pickle"),
])
def test_factors_file_bad_input_is_one_line_user_error(tmp_path: Path, arrays: dict, message: str) -> None:
    from dis_eval.data.factors_file import load_factors_file

    with pytest.raises(UserError, match=message) as err:
        load_factors_file(_save(tmp_path / "bad.npz", **arrays))
    assert "\n" not in str(err.value)


def test_factors_file_missing_or_not_npz(tmp_path: Path) -> None:
    from dis_eval.data.factors_file import load_factors_file

    with pytest.raises(UserError, match="does not exist"):
        load_factors_file(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_factors_file(tmp_path / "text.npz")
    np.save(tmp_path / "arr.npy", np.zeros((3, 2), dtype=int))
    with pytest.raises(UserError, match="single array"):
        load_factors_file(tmp_path / "arr.npy")
