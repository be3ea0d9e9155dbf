"""Metric building blocks, defined values on bad input, dependent subsets, the suite runner."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from dis_eval.data import GroundTruthData
from dis_eval.data.fast_draws import grid_factor_batches, replay_pattern
from dis_eval.encode import EncodedData, representation
from dis_eval.errors import UserError
from dis_eval.metrics import PAPER_PRESET, REGISTRY
from dis_eval.metrics.suite import resolve_metrics, run_suite
from dis_eval.metrics.utils import (
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    mutual_info_labels,
)

pytestmark = pytest.mark.filterwarnings("ignore")

GRID = GroundTruthData.grid()
GT = GRID.classes.astype(np.float64)
SMALL = {
    "factor_vae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500},
    "mig": {"num_train": 1000},
    "beta_vae": {"num_train": 100, "num_eval": 50},
    "dci": {"num_train": 100, "num_test": 50, "backend": "hist"},
    "sap": {"num_train": 300, "num_test": 150},
    "modularity_explicitness": {"num_train": 300, "num_test": 150},
    "unsupervised": {"num_train": 1000},
    "irs": {"num_train": 1000},
}


def rep_of(codes):
    return representation(EncodedData(codes))


# ---- estimators -------------------------------------------------------------------------
def test_mutual_info_bitwise_equals_sklearn():
    rs = np.random.RandomState(0)
    for _ in range(20):
        a = rs.randint(rs.randint(1, 40), size=500) * 3 + 7
        b = rs.randint(rs.randint(1, 25), size=500)
        assert mutual_info_labels(a, b) == mutual_info_score(a, b)
    codes = histogram_discretize(rs.randn(400, 3), 20)
    fac = rs.randint(6, size=(400, 2))
    m = discrete_mutual_info(codes, fac)
    assert m[1, 0] == mutual_info_score(fac[:, 0], codes[:, 1])
    assert discrete_entropy(fac)[1] == mutual_info_score(fac[:, 1], fac[:, 1])


def test_histogram_discretize_matches_numpy_recipe():
    x = np.random.RandomState(1).randn(1000, 2)
    d = histogram_discretize(x, 20)
    for j in range(2):
        np.testing.assert_array_equal(d[:, j], np.digitize(x[:, j], np.histogram(x[:, j], 20)[1][:-1]))
    assert d.min() >= 1 and d.max() <= 20


@pytest.mark.parametrize("pattern,repeats", [
    ([(5, 1), (3, 64), (6, 64), (40, 64), (32, 64), (32, 64)], 300),
    ([(3, 16), (6, 16), (40, 16), (32, 16), (32, 16)], 200),
    ([(7, 3), (1, 2), (1000, 5), (2**31 + 5, 4)], 50),
])
def test_replay_pattern_equals_randint_calls(pattern, repeats):
    a, b = np.random.RandomState(42), np.random.RandomState(42)
    got = replay_pattern(a, pattern, repeats)
    for r in range(repeats):
        for c, (h, n) in enumerate(pattern):
            np.testing.assert_array_equal(got[c][r], b.randint(h, size=n))
    assert a.randint(10**9) == b.randint(10**9)  # left in the same state


def test_grid_factor_batches_equals_data_sampler():
    a, b = np.random.RandomState(3), np.random.RandomState(3)
    f, k = grid_factor_batches(GRID.factor_sizes, 64, 40, a, lead=5)
    for v in range(40):
        assert k[v] == b.randint(5)
        np.testing.assert_array_equal(f[v], GRID.sample_factors(64, b))
    assert a.rand() == b.rand()


# ---- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_codes_one_line_error(bad):
    codes = GT.copy()
    codes[5, 1] = bad
    with pytest.raises(UserError, match="NaN/infinite"):
        EncodedData(codes)

    def raw_rep(pos):  # a representation that returns bad values at query time
        out = GT[pos].copy()
        out[0, 0] = bad
        return out
    with pytest.raises(UserError, match="NaN/infinite"):
        REGISTRY["mig"][0](GRID, raw_rep, np.random.RandomState(0), num_train=100)


def test_wrong_row_count_errors():
    with pytest.raises(UserError, match="rows"):
        REGISTRY["mig"][0](GRID, lambda pos: GT[pos][:-1], np.random.RandomState(0), num_train=100)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_constant_codes_give_defined_values(name):
    # a 1,152-row sub-grid (21 classes) keeps DCI's per-class trees cheap
    sub = GroundTruthData.grid(np.flatnonzero((GT[:, 2] < 4) & (GT[:, 3] < 4) & (GT[:, 4] < 4)))
    const = np.ones((len(sub), 4))
    out = REGISTRY[name][0](sub, rep_of(const), np.random.RandomState(0), **SMALL[name])
    head = out[REGISTRY[name][2]]
    assert np.isfinite(head)
    expected = {"factor_vae": 0.0, "mig": 0.0, "irs": 0.0, "modularity_explicitness": 0.0,
                "unsupervised": 0.0, "sap": 0.0, "dci": 0.0}
    if name in expected:
        assert head == pytest.approx(expected[name], abs=1e-12), (name, out)


@pytest.mark.parametrize("name,setting,value", [
    ("factor_vae", "batch_size", 1), ("factor_vae", "num_variance_estimate", 1),
    ("mig", "num_train", 1), ("dci", "num_train", 1), ("mig", "num_bins", 1),
    ("dci", "backend", "xgboost"), ("irs", "diff_quantile", 0.0), ("factor_vae", "num_train", 2.5),
])
def test_too_few_samples_or_bad_settings(name, setting, value):
    settings = dict(SMALL[name], **{setting: value})
    with pytest.raises(UserError):
        REGISTRY[name][0](GRID, rep_of(GT), np.random.RandomState(0), **settings)


def test_single_valued_factor_is_a_user_error():
    idx = np.flatnonzero(GT[:, 0] == 1)  # only one shape: its entropy is 0
    data = GroundTruthData.grid(idx)
    rep = rep_of(GT[idx])
    for name in ("mig", "sap", "dci", "modularity_explicitness"):
        with pytest.raises(UserError, match="shape"):
            REGISTRY[name][0](data, rep, np.random.RandomState(0), **SMALL[name])


def test_mig_empirical_entropy_on_subset():
    idx = np.flatnonzero(GT[:, 3] < 8)  # posX restricted: its entropy is log 8 among the rows
    data = GroundTruthData.grid(idx)
    out = REGISTRY["mig"][0](data, rep_of(GT[idx]), np.random.RandomState(0), num_train=3000)
    assert out["mig_per_factor"][3] > 0.95  # normalised by log 8, not log 32


# ---- dependent subsets: only present rows are drawn --------------------------------------
def test_subset_sampling_only_present_rows():
    rs = np.random.RandomState(0)
    idx = np.sort(rs.choice(len(GRID), 5000, replace=False))
    data = GroundTruthData.grid(idx)
    asked = []

    def spy(pos):
        pos = np.asarray(pos)
        assert pos.min() >= 0 and pos.max() < len(data)
        asked.append(pos)
        return GT[idx][pos]
    out = REGISTRY["factor_vae"][0](data, spy, np.random.RandomState(0), **SMALL["factor_vae"])
    assert 0.0 <= out["eval_accuracy"] <= 1.0
    # every vote batch of 64 shares one factor value
    votes = [p for p in asked if len(p) == 64][-10:]
    for p in votes:
        cls = data.classes[p]
        assert any(np.all(cls[:, k] == cls[0, k]) for k in range(5))
    bv = REGISTRY["beta_vae"][0](data, rep_of(GT[idx]), np.random.RandomState(0), **SMALL["beta_vae"])
    assert bv["eval_accuracy"] > 0.5


# ---- suite ----------------------------------------------------------------------------------
def test_registry_and_presets_consistent():
    for name, (fn, defaults, head) in REGISTRY.items():
        assert callable(fn) and isinstance(defaults, dict) and isinstance(head, str), name
    fv = REGISTRY["factor_vae"][1]
    assert (fv["num_train"], fv["num_eval"], fv["num_variance_estimate"], fv["prune_threshold"]) == (10000, 5000, 10000, 0.05)
    assert REGISTRY["mig"][1] == {"num_train": 10000, "batch_size": 16, "num_bins": 20}
    p = PAPER_PRESET["settings"]["factor_vae"]
    assert (p["num_train"], p["num_eval"], p["num_variance_estimate"]) == (9984, 4992, 9984)
    with pytest.raises(UserError):
        resolve_metrics("factor_vae,nope")


def test_run_suite_repeats_mean_std_and_unknown_setting():
    out = run_suite(GRID, lambda s: rep_of(GT + 0.3 * np.random.RandomState(1).randn(*GT.shape)),
                    ["mig", "factor_vae"], seed=3, settings_overrides=SMALL, repeats=3)
    sp = out["spread"]["mig"]["discrete_mig"]
    assert sp["n"] == 3 and len(sp["values"]) == 3 and sp["std"] > 0
    assert out["scores"]["mig"]["discrete_mig"] == pytest.approx(np.mean(sp["values"]))
    assert out["headline"]["factor_vae"] == out["scores"]["factor_vae"]["eval_accuracy"]
    single = run_suite(GRID, lambda s: rep_of(GT), ["mig"], seed=3, settings_overrides=SMALL)
    again = run_suite(GRID, lambda s: rep_of(GT), ["mig"], seed=3, settings_overrides=SMALL)
    assert single["scores"] == again["scores"]  # --seed fixes every draw
    with pytest.raises(UserError, match="unknown setting"):
        run_suite(GRID, lambda s: rep_of(GT), ["mig"], settings_overrides={"mig": {"bins": 3}})


def test_dci_hist_backend_is_named_and_reasonable():
    idx = np.flatnonzero((GT[:, 2] < 4) & (GT[:, 3] < 4) & (GT[:, 4] < 4))
    sub = GroundTruthData.grid(idx)
    out = REGISTRY["dci"][0](sub, rep_of(GT[idx]), np.random.RandomState(0), num_train=300, num_test=100, backend="hist")
    assert out["disentanglement"] > 0.8 and out["informativeness_test_accuracy"] > 0.5


def test_importing_the_metrics_is_light():
    """The command line imports metric names and defaults to build its parser: no sklearn,
    scipy or torch may come with them."""
    import subprocess
    import sys

    code = ("import sys, dis_eval.metrics, dis_eval.metrics.suite; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mig_gap_has_one_definition_shared_with_the_heatmap():
    from dis_eval.metrics.mig import mig_from_codes, mig_gaps
    from dis_eval.plots.mi_heatmap import mi_matrix

    rs = np.random.RandomState(0)
    classes = rs.randint(4, size=(2000, 3))
    codes = classes[:, [2, 0]] + 0.2 * rs.randn(2000, 2)
    res = mi_matrix(codes, classes)
    assert np.array_equal(res.gap, mig_from_codes(codes, classes)["mig_per_factor"])
    # one latent: no second best, whose MI counts as 0
    one = mi_matrix(codes[:, :1], classes)
    np.testing.assert_array_equal(one.gap, one.mi[0] / one.entropy)
    assert np.all(one.top2[:, 1] == -1)
    assert mig_from_codes(codes[:, :1], classes)["mig_per_factor"] == one.gap.tolist()
    # a factor with one value: its gap is undefined; the MIG score refuses it
    flat = classes.copy()
    flat[:, 1] = 2
    gaps, _ = mig_gaps(mi_matrix(codes, flat).mi, discrete_entropy(flat))
    assert np.isnan(gaps[1]) and np.isfinite(gaps[[0, 2]]).all()
    with pytest.raises(UserError, match="single value"):
        mig_from_codes(codes, flat)
