"""The cases of disentanglement_lib's own metric unit tests, on small made-up factor grids.

disentanglement_lib tests each metric beside its module (``*_test.py``) on a dummy data set
whose observations are the factors themselves: codes equal to the factors score near 1,
constant codes near 0, duplicated latents lose MIG/SAP (and half of DCI's completeness)
but keep modularity, codes that shuffle the factors row by row lose DCI and modularity; and
it checks DCI's, modularity's and the Gaussian scores' formulas on hand-made matrices.

Here the same cases run against ``dis_eval.metrics`` directly, with ``GroundTruthData`` of
grids other than dSprites' - full grids of sizes (4, 7) and (3, 5, 6), a subset of the
latter's rows, and rows given by their classes with repeated and missing combinations (as a
user's factors file gives them) - plus the invariances the scores promise: permuting the
latents, shifting and scaling them, adding a constant latent. Every random state is explicit.
Bounds follow the reference's tests where it has them (e.g. [0.9, 1] for identity codes);
where this project's definition gives an exact value (0 for constant codes, equality under
an invariance) the test asserts that value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.linalg

from dis_eval.data import GroundTruthData
from dis_eval.metrics import REGISTRY
from dis_eval.metrics.dci import completeness, disentanglement
from dis_eval.metrics.irs import irs_from_codes
from dis_eval.metrics.modularity_explicitness import modularity
from dis_eval.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
)
from dis_eval.metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize

pytestmark = pytest.mark.filterwarnings("ignore")


# ---- small ground-truth data sets ---------------------------------------------------------
def _subset(data: GroundTruthData, keep: int, seed: int) -> GroundTruthData:
    """``keep`` rows of ``data`` drawn without replacement; every class of every factor stays."""
    rs = np.random.RandomState(seed)
    while True:
        rows = np.sort(rs.choice(len(data), keep, replace=False))
        cls = data.classes[rows]
        if all(np.unique(cls[:, k]).size == s for k, s in enumerate(data.factor_sizes)):
            return data.restrict(data.indices[rows])


def _repeated(data: GroundTruthData, seed: int) -> GroundTruthData:
    """Rows given by their classes: each combination 0-3 times, shuffled (a user's file)."""
    rs = np.random.RandomState(seed)
    rows = np.repeat(data.classes, rs.randint(0, 4, size=len(data)), axis=0)
    return GroundTruthData.from_factors(rows[rs.permutation(len(rows))], ("colour", "size", "place"))


GRID_47 = GroundTruthData.grid(factor_sizes=(4, 7))
GRID_356 = GroundTruthData.grid(factor_sizes=(3, 5, 6))
SUBSET_356 = _subset(GRID_356, 70, seed=0)
REPEATED_356 = _repeated(GRID_356, seed=1)
GRID_666 = GroundTruthData.grid(factor_sizes=(6, 6, 6))  # equal sizes: row-shuffled codes mix evenly
DATA = {"grid47": GRID_47, "grid356": GRID_356, "subset356": SUBSET_356, "repeated356": REPEATED_356}


def test_made_up_data_sets_are_what_they_claim() -> None:
    assert GRID_47.is_full_grid and len(GRID_47) == 28 and GRID_47.factor_names == ("factor0", "factor1")
    assert not SUBSET_356.is_full_grid and len(SUBSET_356) == 70
    assert not REPEATED_356.is_full_grid and REPEATED_356.factor_names == ("colour", "size", "place")
    combos = REPEATED_356.classes @ np.array([30, 6, 1])
    assert np.unique(combos).size < len(REPEATED_356)  # some combinations repeat ...
    assert np.unique(combos).size < 90  # ... and some are missing


# ---- representations (functions of row positions) -------------------------------------------
class Lookup:
    """Codes by row: a cached, batch-independent representation."""

    batch_invariant = True

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = np.asarray(codes, dtype=np.float64)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        return self.codes[positions]


def factors_as_codes(data: GroundTruthData) -> np.ndarray:
    return data.classes.astype(np.float64)


def fresh_noise(num_latents: int, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Codes independent of the rows: new Gaussian noise at every call."""
    rs = np.random.RandomState(seed)
    return lambda positions: rs.randn(len(positions), num_latents)


def shuffled_per_row(data: GroundTruthData, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Each row's code is its factors in a random order, drawn afresh at every call."""
    rs = np.random.RandomState(seed)

    def rep(positions: np.ndarray) -> np.ndarray:
        return np.stack([rs.permutation(row) for row in data.classes[positions].astype(np.float64)])
    return rep


def score(name: str, data: GroundTruthData, rep: Any, seed: int = 0, **settings: Any) -> dict[str, Any]:
    fn, defaults, _ = REGISTRY[name]
    return fn(data, rep, np.random.RandomState(seed), **{**SMALL[name], **settings})


SMALL: dict[str, dict[str, Any]] = {
    "factor_vae": {"batch_size": 16, "num_train": 300, "num_eval": 200, "num_variance_estimate": 500},
    "beta_vae": {"batch_size": 16, "num_train": 300, "num_eval": 200},
    "mig": {"num_train": 2000},
    "dci": {"num_train": 240, "num_test": 120},
    "sap": {"num_train": 2000, "num_test": 1000, "continuous_factors": True},  # as dlib's tests
    "irs": {"num_train": 2000},
    "modularity_explicitness": {"num_train": 1000, "num_test": 500},
    "unsupervised": {"num_train": 2000},
}


# ---- codes equal to the factors: near-perfect scores -----------------------------------------
@pytest.mark.parametrize("name", list(DATA))
def test_factor_codes_score_near_perfect(name: str) -> None:
    data = DATA[name]
    rep = Lookup(factors_as_codes(data))
    fv = score("factor_vae", data, rep)
    assert fv["train_accuracy"] == fv["eval_accuracy"] == 1.0  # reference: in [0.9, 1]
    assert fv["num_active_latents"] == data.num_factors
    bv = score("beta_vae", data, rep)
    assert 0.9 <= bv["train_accuracy"] <= 1.0 and 0.9 <= bv["eval_accuracy"] <= 1.0
    # 20 equal-width bins keep every class of these factors apart, as dlib's identity binning
    assert 0.9 <= score("mig", data, rep)["discrete_mig"] <= 1.0
    assert 0.9 <= score("sap", data, rep)["SAP_score"] <= 1.0
    assert 0.9 <= score("irs", data, rep)["IRS"] <= 1.0
    me = score("modularity_explicitness", data, rep)
    assert 0.9 <= me["modularity_score"] <= 1.0 and me["explicitness_score_test"] > 0.95
    assert score("unsupervised", data, rep)["gaussian_total_correlation"] < 0.05  # ~independent factors


@pytest.mark.parametrize("name", ["grid47", "repeated356"])
def test_factor_codes_dci_near_perfect(name: str) -> None:
    data = DATA[name]
    out = score("dci", data, Lookup(factors_as_codes(data)))
    assert 0.9 <= out["disentanglement"] <= 1.0 and 0.9 <= out["completeness"] <= 1.0
    assert out["informativeness_test_accuracy"] > 0.9


def test_a_plain_function_gets_the_same_scores_as_a_cached_lookup() -> None:
    codes = factors_as_codes(SUBSET_356) + 0.3 * np.random.RandomState(4).randn(len(SUBSET_356), 3)

    def plain(positions: np.ndarray) -> np.ndarray:  # asked batch by batch
        return codes[positions]
    for name in ("factor_vae", "beta_vae", "mig", "irs"):
        assert score(name, SUBSET_356, plain) == score(name, SUBSET_356, Lookup(codes)), name


# ---- constant codes: the reference's "bad metric" cases ---------------------------------------
@pytest.mark.parametrize("name", ["grid356", "repeated356"])
def test_constant_codes_score_zero(name: str) -> None:
    data = DATA[name]
    rep = Lookup(np.zeros((len(data), 4)))
    fv = score("factor_vae", data, rep)
    assert fv["train_accuracy"] == fv["eval_accuracy"] == 0.0  # reference: in [0, 0.2]; no active latent
    assert score("mig", data, rep)["discrete_mig"] == 0.0  # reference: in [0, 0.2]
    assert score("sap", data, rep)["SAP_score"] == 0.0  # reference: in [0, 0.2]
    assert score("irs", data, rep)["IRS"] == 0.0  # reference: in [0, 0.1]
    assert score("modularity_explicitness", data, rep)["modularity_score"] == 0.0
    assert score("unsupervised", data, rep)["gaussian_total_correlation"] == 0.0


# ---- noise codes: chance level ------------------------------------------------------------
@pytest.mark.parametrize("name", ["grid47", "grid356", "subset356"])
def test_noise_codes_score_near_chance(name: str) -> None:
    data = DATA[name]
    chance = 1.0 / data.num_factors
    assert score("factor_vae", data, fresh_noise(4, 1))["eval_accuracy"] <= chance + 0.15
    assert score("beta_vae", data, fresh_noise(4, 2))["eval_accuracy"] <= chance + 0.15
    assert score("mig", data, fresh_noise(4, 3))["discrete_mig"] < 0.02  # plug-in MI floor only
    assert score("sap", data, fresh_noise(4, 4))["SAP_score"] < 0.02
    assert abs(score("modularity_explicitness", data, fresh_noise(4, 5))["explicitness_score_test"] - 0.5) < 0.06
    assert abs(score("unsupervised", data, fresh_noise(4, 6))["gaussian_total_correlation"]) < 0.01


def test_noise_codes_dci_low() -> None:
    out = score("dci", GRID_356, fresh_noise(4, 7))
    assert out["disentanglement"] < 0.1 and out["completeness"] < 0.1


# ---- invariances: permuted, shifted and scaled latents --------------------------------------
def _noisy_factors(data: GroundTruthData, seed: int) -> np.ndarray:
    rs = np.random.RandomState(seed)
    return factors_as_codes(data) + 0.4 * rs.randn(len(data), data.num_factors)


HEADLINES = {name: head for name, (_, _, head) in REGISTRY.items()}


@pytest.mark.parametrize("name", ["grid356", "repeated356"])
def test_permuted_latents_same_scores(name: str) -> None:
    data = DATA[name]
    codes = np.hstack([_noisy_factors(data, 5), np.random.RandomState(6).randn(len(data), 1)])
    perm = np.array([2, 3, 0, 1])
    for metric, head in HEADLINES.items():
        if metric == "dci":
            continue  # checked below, on fewer points
        a = score(metric, data, Lookup(codes))[head]
        b = score(metric, data, Lookup(codes[:, perm]))[head]
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), metric


def test_permuted_latents_same_dci() -> None:
    """Up to tie-breaking: the boosted trees break ties between equally good splits (common
    deep in a tree fitted on a few hundred rows) by a feature order that the permutation
    changes, so the importances move a little (dlib's trees do the same)."""
    codes = _noisy_factors(GRID_47, 5)
    a = score("dci", GRID_47, Lookup(codes))
    b = score("dci", GRID_47, Lookup(codes[:, ::-1]))
    for key in ("disentanglement", "completeness", "informativeness_test_accuracy"):
        assert a[key] == pytest.approx(b[key], abs=0.05), key
    np.testing.assert_allclose(np.array(a["importance_matrix"])[::-1], b["importance_matrix"], atol=0.05)
    exact = Lookup(factors_as_codes(GRID_47))  # no noise: no ties that matter
    a = score("dci", GRID_47, exact)
    b = score("dci", GRID_47, Lookup(exact.codes[:, ::-1]))
    for key in ("disentanglement", "completeness"):
        assert a[key] == pytest.approx(1.0, abs=1e-6) and b[key] == pytest.approx(a[key], abs=1e-12), key


@pytest.mark.parametrize("name", ["grid47", "subset356"])
def test_shifted_and_scaled_latents_same_scores(name: str) -> None:
    """Scores that standardise, bin or rank each latent do not see a positive scaling or a
    shift; BetaVAE's features are differences, so a shift alone leaves it unchanged.
    (FactorVAE only while every latent's standard deviation stays above the pruning
    threshold, which is absolute: see the next test.)"""
    data = DATA[name]
    codes = _noisy_factors(data, 8)
    scale = np.array([2.5, 0.2, 40.0])[: data.num_factors]
    shift = np.array([-3.0, 100.0, 0.5])[: data.num_factors]
    for metric in ("factor_vae", "mig", "modularity_explicitness", "sap", "unsupervised"):
        head = HEADLINES[metric]
        a = score(metric, data, Lookup(codes))[head]
        b = score(metric, data, Lookup(codes * scale + shift))[head]
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), metric
    # IRS weighs latents by their largest deviation: one common scale, any shifts
    irs = score("irs", data, Lookup(codes))["IRS"]
    assert score("irs", data, Lookup(codes * 3.0 + shift))["IRS"] == pytest.approx(irs, rel=1e-9)
    me_a = score("modularity_explicitness", data, Lookup(codes))
    me_b = score("modularity_explicitness", data, Lookup(codes * scale + shift))
    assert me_a["explicitness_score_test"] == pytest.approx(me_b["explicitness_score_test"], abs=1e-6)
    bv = score("beta_vae", data, Lookup(codes))["eval_accuracy"]
    assert score("beta_vae", data, Lookup(codes + shift))["eval_accuracy"] == pytest.approx(bv, abs=1e-12)


def test_factor_vae_prunes_latents_by_absolute_spread() -> None:
    """A latent scaled below a standard deviation of ``prune_threshold`` (0.05) is inactive."""
    codes = _noisy_factors(GRID_47, 8)
    small = codes * np.array([1.0, 0.01])
    out = score("factor_vae", GRID_47, Lookup(small))
    assert out["num_active_latents"] == 1
    assert score("factor_vae", GRID_47, Lookup(small), prune_threshold=0.0)["num_active_latents"] == 2


def test_shifted_and_scaled_latents_same_dci() -> None:
    codes = _noisy_factors(GRID_47, 9)
    a = score("dci", GRID_47, Lookup(codes))
    b = score("dci", GRID_47, Lookup(codes * np.array([3.0, 0.2]) + np.array([5.0, -1.0])))
    for key in ("disentanglement", "completeness", "informativeness_test_accuracy"):
        assert a[key] == pytest.approx(b[key], rel=1e-9), key


# ---- duplicated and collapsed latents ---------------------------------------------------------
@pytest.mark.parametrize("name", ["grid356", "repeated356"])
def test_duplicated_latents(name: str) -> None:
    data = DATA[name]
    f = factors_as_codes(data)
    rep = Lookup(np.hstack([f, f]))
    # every factor has two equally informative latents: no gap at all
    mig = score("mig", data, rep)
    assert mig["discrete_mig"] == 0.0 and mig["mig_per_factor"] == [0.0] * data.num_factors  # reference: <= 0.1
    assert score("sap", data, rep)["SAP_score"] == 0.0  # reference: <= 0.2
    # each latent still speaks about one factor only
    assert 0.9 <= score("modularity_explicitness", data, rep)["modularity_score"] <= 1.0
    assert score("factor_vae", data, rep)["eval_accuracy"] == 1.0  # argmin ties go to the first copy
    assert score("irs", data, rep)["IRS"] >= 0.9


def test_duplicated_latents_dci_halves_completeness() -> None:
    """Each factor's importance splits evenly over two of 2F latents: completeness
    1 - log 2 / log 2F (the reference asserts this within 0.1); disentanglement stays."""
    f = factors_as_codes(GRID_356)
    out = score("dci", GRID_356, Lookup(np.hstack([f, f])))
    assert 0.9 <= out["disentanglement"] <= 1.0
    assert out["completeness"] == pytest.approx(1 - np.log(2) / np.log(6), abs=0.05)


def test_constant_extra_latent_changes_nothing() -> None:
    data = SUBSET_356
    codes = _noisy_factors(data, 10)
    with_const = np.hstack([codes, np.full((len(data), 1), 0.25)])
    fv = score("factor_vae", data, Lookup(with_const))
    assert fv["num_active_latents"] == 3
    assert fv["eval_accuracy"] == score("factor_vae", data, Lookup(codes))["eval_accuracy"]
    assert score("mig", data, Lookup(with_const))["discrete_mig"] == score("mig", data, Lookup(codes))["discrete_mig"]
    irs = score("irs", data, Lookup(with_const))
    assert irs["num_active_latents"] == 3 and irs["IRS"] == score("irs", data, Lookup(codes))["IRS"]
    un = score("unsupervised", data, Lookup(with_const))
    assert un["num_varying_latents"] == 3
    assert un["gaussian_total_correlation"] == pytest.approx(
        score("unsupervised", data, Lookup(codes))["gaussian_total_correlation"], rel=1e-9)


# ---- mixed codes: rotated latents, factors shuffled within each row ----------------------------
def test_rotated_codes_score_lower() -> None:
    data = GRID_356
    f = factors_as_codes(data) - 2.0
    q, _ = np.linalg.qr(np.random.RandomState(11).randn(3, 3))
    ident, rot = Lookup(f), Lookup(f @ q)
    for metric in ("mig", "sap", "irs", "modularity_explicitness"):
        head = HEADLINES[metric]
        assert score(metric, data, rot)[head] < score(metric, data, ident)[head] - 0.1, metric
    assert score("factor_vae", data, rot)["eval_accuracy"] < 1.0
    # rotating independent factors correlates the latents
    assert score("unsupervised", data, rot)["gaussian_total_correlation"] > 0.05


def test_codes_shuffled_within_rows_lose_dci_and_modularity() -> None:
    """The reference's "bad" DCI and modularity representation: each code row is its factors
    in a random order, so every latent carries every factor equally (grid of equal sizes)."""
    dci = score("dci", GRID_666, shuffled_per_row(GRID_666, 12))
    assert dci["disentanglement"] <= 0.2 and dci["completeness"] <= 0.2
    mod = score("modularity_explicitness", GRID_666, shuffled_per_row(GRID_666, 13), num_train=5000)
    assert mod["modularity_score"] <= 0.2


# ---- formulas on hand-made matrices (the reference's function-level cases) ----------------------
DIAG = np.diag(5.0 * np.ones(5))
EMPTY_CODE = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("matrix,expected", [
    (DIAG, 1.0),
    (EMPTY_CODE, 1.0),  # a latent with no importance has no weight
    (np.zeros((10, 10)), 0.0),
    (np.vstack([DIAG, DIAG]), 1.0),  # two latents per factor: each still about one factor
    (DIAG[:2, :], 1.0),  # factors no latent captures do not count against disentanglement
    (np.hstack([DIAG, DIAG]), 1.0 - np.log(2) / np.log(10)),  # one latent, two of 10 factors
])
def test_dci_disentanglement_formula(matrix: np.ndarray, expected: float) -> None:
    assert disentanglement(matrix) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("matrix,expected", [
    (DIAG, 1.0),
    (EMPTY_CODE, 1.0),
    (np.zeros((10, 10)), 0.0),
    (np.vstack([DIAG, DIAG]), 1.0 - np.log(2) / np.log(10)),  # each factor split over 2 of 10
    (DIAG[:2, :], 1.0),
    (np.hstack([DIAG, DIAG]), 1.0),
])
def test_dci_completeness_formula(matrix: np.ndarray, expected: float) -> None:
    assert completeness(matrix) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("mi,expected", [
    (DIAG, 1.0),
    (EMPTY_CODE, 2.0 / 3.0),  # a latent with no MI scores 0 and still counts in the mean
    (np.zeros((10, 10)), 0.0),
    (np.vstack([DIAG, DIAG]), 1.0),
    (DIAG[:2, :], 1.0),
    (np.hstack([DIAG, DIAG]), 1.0 - 1.0 / 9.0),  # squared MI off the best factor: 1 of 9 others
])
def test_modularity_formula(mi: np.ndarray, expected: float) -> None:
    assert modularity(mi) == pytest.approx(expected, abs=1e-12)


def test_gaussian_scores_formulas() -> None:
    assert abs(gaussian_total_correlation(np.eye(5))) < 0.01
    assert abs(gaussian_wasserstein_correlation(np.eye(5))) < 0.01
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    # KL(N(0, C) || N(0, diag C)) for equal unit variances is -log(det C) / 2
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - 0.81), abs=1e-9)
    diag = np.diag(np.diag(cov))
    expected = np.trace(cov + diag - 2 * np.real(scipy.linalg.sqrtm(cov @ diag)))
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(expected, abs=1e-9)


def test_discretiser_entropy_and_mutual_information() -> None:
    # rows are points, columns latents/factors (the reference's arrays transposed)
    x = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    np.testing.assert_array_equal(histogram_discretize(x, 3), [[1, 3], [1, 3], [2, 2], [2, 2], [3, 1], [3, 1]])
    labels = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_allclose(discrete_entropy(labels), [np.log(3), np.log(3)])
    codes = np.array([[1, 2, 1, 2], [1, 1, 2, 2]]).T
    factors = np.array([[1, 2, 1, 2], [2, 2, 1, 1]]).T
    np.testing.assert_allclose(discrete_mutual_info(codes, factors), [[np.log(2), 0.0], [0.0, np.log(2)]], atol=1e-12)


def test_irs_drops_constant_latents() -> None:
    rs = np.random.RandomState(0)
    factors = rs.randint(5, size=(200, 2))
    varying = factors + 0.3 * rs.randn(200, 2)
    with_constant = np.hstack([np.ones((200, 1)), varying, np.zeros((200, 1))])
    a, b = irs_from_codes(varying, factors), irs_from_codes(with_constant, factors)
    assert b["num_active_latents"] == 2 and a["IRS"] == b["IRS"]
