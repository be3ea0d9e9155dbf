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
