"""DCI's parallel gradient-boosting fit gives the *same* numbers as scikit-learn's sequential
fit and as disentanglement_lib (``==`` on floats and arrays), at 1, 2 and 4 threads.

Two levels:
- ``fit_gradient_boosting`` (direct trees, see dis_eval.metrics.parallel_boosting) against
  scikit-learn's own ``GradientBoostingClassifier.fit``,
  tree by tree (split features, thresholds, leaf values), on data full of tied splits
  (rounded and duplicated columns), with a 40-class, a 6-class and a binary target; fewer
  stages than DCI's 100 to stay quick (the stage code is the same at every stage).
- the DCI metric (``n_jobs`` 1, 2, 4) against dlib's DCI functions (``compute_importance_gbt``:
  scikit-learn's sequential fit; ``disentanglement``, ``completeness``) with dlib's tie-breaking
  pinned as in tests/test_metrics_parity.py, on six code sets (the factors, a rotation, noisy
  factors, pure noise, a collapsed latent, duplicated latents) on a 243-row sub-grid (three
  values per factor), num_train 200 / num_test 100.

The tied data make the result depend on each tree's random state: a test shows that another
seed gives other importances, so the identity checks would catch a misplaced state.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from dis_eval.data import GroundTruthData
from dis_eval.encode import EncodedData, representation
from dis_eval.errors import UserError
from dis_eval.metrics import REGISTRY
from dis_eval.metrics import parallel_boosting as pb
from dis_eval.metrics.dci import GBT_PARAMS, completeness, disentanglement
from dis_eval.metrics.suite import run_suite
from dis_eval.metrics.utils import train_test_codes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

THREADS = (1, 2, 4)
PARALLEL = "stages and factors"


# ---------------------------------------------------------------- the fitter on its own
def _tied_data(n: int = 400) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes with many equally good splits, and targets of 40, 6 and 2 classes."""
    rs = np.random.RandomState(7)
    y40, y6, y2 = rs.randint(0, 40, n), rs.randint(0, 6, n), rs.randint(0, 2, n)
    base = np.stack([y40 / 4.0, y6, y2], axis=1) + 0.4 * rs.randn(n, 3)
    x = np.round(np.concatenate([base, base[:, :2], rs.randn(n, 2)], axis=1), 1)
    return x, [y40, y6, y2]


X_TIED, Y_TIED = _tied_data()
SMALL_GBT = dict(GBT_PARAMS, n_estimators=8)


def _sequential_models(params: dict, x: np.ndarray, ys: list[np.ndarray]) -> list:
    from sklearn.ensemble import GradientBoostingClassifier

    return [GradientBoostingClassifier(**params).fit(x, y) for y in ys]


@pytest.fixture(scope="module")
def sequential_tied() -> list:
    """scikit-learn's own sequential fit of the three targets (the reference)."""
    return _sequential_models(SMALL_GBT, X_TIED, Y_TIED)


def _same_trees(a, b) -> bool:
    ta, tb = a.estimators_.ravel(), b.estimators_.ravel()
    return len(ta) == len(tb) and all(
        np.array_equal(p.tree_.feature, q.tree_.feature)
        and np.array_equal(p.tree_.threshold, q.tree_.threshold)
        and np.array_equal(p.tree_.value, q.tree_.value) for p, q in zip(ta, tb, strict=True))


@pytest.mark.parametrize("threads", THREADS)
def test_stage_parallel_trees_identical_to_sequential(threads: int, sequential_tied: list) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for y, ref in zip(Y_TIED, sequential_tied, strict=True):
            model = pb._stage_parallel_class()(**SMALL_GBT)
            model._stage_pool = pool
            model.fit(X_TIED, y)
            assert _same_trees(model, ref)
            assert np.array_equal(model.feature_importances_, ref.feature_importances_)
            assert np.array_equal(model.predict_proba(X_TIED), ref.predict_proba(X_TIED))
            assert np.array_equal(model.train_score_, ref.train_score_)


@pytest.mark.parametrize("threads", THREADS)
def test_fit_gradient_boosting_identical_to_sequential(threads: int, sequential_tied: list) -> None:
    x_test = X_TIED[::-1] + 0.05
    out, info = pb.fit_gradient_boosting(SMALL_GBT, X_TIED, Y_TIED, x_test, Y_TIED, threads)
    assert info.threads == threads
    assert info.mode == ("sequential" if threads == 1 else PARALLEL), info
    for got, ref, y in zip(out, sequential_tied, Y_TIED, strict=True):
        assert np.array_equal(got.importance, np.abs(ref.feature_importances_))
        assert got.train_accuracy == float(np.mean(ref.predict(X_TIED) == y))
        assert got.test_accuracy == float(np.mean(ref.predict(x_test) == y))


def test_tree_random_states_matter_on_these_data(sequential_tied: list) -> None:
    """Another seed gives other trees here: the identity above is not a matter of luck."""
    a = sequential_tied[0]
    b = _sequential_models(dict(SMALL_GBT, random_state=1), X_TIED, Y_TIED[:1])[0]
    assert not np.array_equal(a.feature_importances_, b.feature_importances_)


def test_fit_records_direct_trees() -> None:
    _, info = pb.fit_gradient_boosting(SMALL_GBT, X_TIED, Y_TIED[1:], X_TIED, Y_TIED[1:], 2)
    assert info.trees == "direct" and info.to_dict()["trees"] == "direct"


@pytest.mark.parametrize("threads", (1, 2))
def test_scikit_learn_trees_for_other_parameters_identical(threads: int) -> None:
    """Parameters the direct builder does not mirror (a leaf-count limit here) leave each tree
    to scikit-learn's own fit, still stage-parallel, still the same models."""
    params = dict(SMALL_GBT, max_leaf_nodes=5)
    ref = _sequential_models(params, X_TIED, Y_TIED[1:])
    out, info = pb.fit_gradient_boosting(params, X_TIED, Y_TIED[1:], X_TIED, Y_TIED[1:], threads)
    assert info.trees == "scikit-learn"
    for got, r in zip(out, ref, strict=True):
        assert np.array_equal(got.importance, np.abs(r.feature_importances_))


@pytest.mark.parametrize("threads", (1, 2))
def test_a_tree_drawing_otherwise_is_an_error(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct trees: each gets the one draw the sequential fit's splitter makes; a splitter that
    drew with other bounds (here: the module's bound made wrong) must stop the fit."""
    monkeypatch.setattr(pb, "TREE_SEED_HIGH", 2**31 - 2)
    with pytest.raises(RuntimeError, match="drew from its random state differently"):
        pb.fit_gradient_boosting(SMALL_GBT, X_TIED, Y_TIED[:1], X_TIED, Y_TIED[:1], threads)


def test_misplaced_random_state_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """scikit-learn's trees: if the shared generator were not advanced past each tree's draw,
    every tree would get the wrong state: the chain check must stop the fit instead of
    returning other trees."""
    monkeypatch.setattr(pb, "_advance_past_tree", lambda random_state: None)
    with pytest.raises(RuntimeError, match="drew from its random state differently"):
        pb.fit_gradient_boosting(dict(SMALL_GBT, max_leaf_nodes=5), X_TIED, Y_TIED[:1], X_TIED, Y_TIED[:1], 2)


def test_unvalidated_sklearn_fits_factors_only_with_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        sequential_tied: list) -> None:
    monkeypatch.setattr(pb, "VALIDATED_SKLEARN", ((0, 1), (0, 2)))
    with caplog.at_level(logging.WARNING, logger=pb.LOG.name):
        out, info = pb.fit_gradient_boosting(SMALL_GBT, X_TIED, Y_TIED, X_TIED, Y_TIED, 2)
    assert info.mode == "factors"
    assert "outside the versions" in caplog.text and "same values" in caplog.text
    for got, ref in zip(out, sequential_tied, strict=True):
        assert np.array_equal(got.importance, np.abs(ref.feature_importances_))


def test_installed_sklearn_is_validated() -> None:
    """The stage-parallel path must be on for the scikit-learn these tests run with; a new
    release needs these tests to pass and VALIDATED_SKLEARN moved, not a silent slow path."""
    assert pb.stage_parallel_unsupported() is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2"])
def test_bad_thread_count_is_a_user_error(bad: object) -> None:
    with pytest.raises(UserError, match="n_jobs"):
        pb.resolve_threads(bad)


def test_default_threads_follow_the_machine() -> None:
    import joblib

    assert pb.resolve_threads(None) == joblib.cpu_count() >= 1


# ---------------------------------------------------------------- the metric, against dlib
GT = GroundTruthData.grid().classes
# 243 rows, 3 values per factor: 15 trees a stage keep 18 DCI fits quick
SUB_IDX = np.flatnonzero((GT[:, 1] < 3) & (GT[:, 2] < 3) & (GT[:, 3] < 3) & (GT[:, 4] < 3))
SUB = GroundTruthData.grid(SUB_IDX)
SMALL = {"num_train": 200, "num_test": 100}
KINDS = ("factors", "rotation", "noisy", "noise", "collapsed", "duplicated")


def _codes(kind: str) -> np.ndarray:
    f = GT[SUB_IDX].astype(np.float64)
    z = (f - f.mean(axis=0)) / f.std(axis=0)
    rs = np.random.RandomState(123)
    if kind == "factors":
        return f
    if kind == "rotation":
        return z @ np.linalg.qr(rs.randn(5, 5))[0]
    if kind == "noisy":
        return z + 0.1 * rs.randn(*z.shape)
    if kind == "noise":
        return rs.randn(len(f), 10)
    if kind == "collapsed":
        return np.concatenate([f, np.full((len(f), 1), 0.5)], axis=1)
    if kind == "duplicated":
        return np.concatenate([f, f[:, [0, 2]]], axis=1)
    raise ValueError(kind)


def _ours(kind: str, threads: int) -> dict:
    rep = representation(EncodedData(_codes(kind)))
    return REGISTRY["dci"][0](SUB, rep, np.random.RandomState(0), n_jobs=threads, **SMALL)


@pytest.fixture(scope="module")
def references() -> dict[str, dict]:
    """Per code set, disentanglement_lib's DCI on the same rows: its ``compute_importance_gbt``
    (scikit-learn's sequential fit, tie-breaking pinned to random_state 0 as in the parity
    tests) and its ``disentanglement``/``completeness`` of that matrix (what its
    ``compute_dci`` returns; the row drawing is covered by tests/test_metrics_parity.py)."""
    from sklearn.ensemble import GradientBoostingClassifier

    from tests.dlib_reference import import_dlib_metrics

    dlib_dci = import_dlib_metrics()["dci"]

    class PinnedEnsemble:
        @staticmethod
        def GradientBoostingClassifier():  # noqa: N802 - the name dlib calls
            return GradientBoostingClassifier(random_state=0)

    mp = pytest.MonkeyPatch()
    mp.setattr(dlib_dci, "ensemble", PinnedEnsemble)
    try:
        out = {}
        for kind in KINDS:
            x, y, xt, yt = train_test_codes(SUB, representation(EncodedData(_codes(kind))),
                                            np.random.RandomState(0), {"batch_size": 16, **SMALL})
            imp, train, test = dlib_dci.compute_importance_gbt(x.T, y.T, xt.T, yt.T)
            out[kind] = {"importance": imp, "train": train, "test": test,
                         "disentanglement": dlib_dci.disentanglement(imp),
                         "completeness": dlib_dci.completeness(imp)}
    finally:
        mp.undo()
    return out


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind", KINDS)
def test_dci_identical_to_sequential_and_dlib(kind: str, threads: int, references: dict) -> None:
    o, r = _ours(kind, threads), references[kind]
    assert o["fit"]["mode"] == ("sequential" if threads == 1 else PARALLEL)
    assert o["fit"]["threads"] == threads
    assert np.array_equal(np.array(o["importance_matrix"]), r["importance"])
    assert o["disentanglement"] == r["disentanglement"] == disentanglement(r["importance"])
    assert o["completeness"] == r["completeness"] == completeness(r["importance"])
    assert o["informativeness_train_accuracy"] == r["train"]
    assert o["informativeness_test_accuracy"] == r["test"]


def test_thread_count_recorded_in_strict_json() -> None:
    """The suite's output (what metrics.json holds) records the threads and the mode."""
    out = run_suite(SUB, lambda seed: representation(EncodedData(_codes("noisy"))), ["dci"], 0,
                    {"dci": dict(SMALL, n_jobs=2)})
    fit = json.loads(json.dumps(out["scores"]["dci"]["fit"], allow_nan=False))
    assert fit["threads"] == 2 and fit["mode"] == PARALLEL
    import sklearn

    assert fit["scikit_learn"] == sklearn.__version__
    assert out["settings"]["dci"]["n_jobs"] == 2


def test_bad_n_jobs_setting_is_a_user_error() -> None:
    rep = representation(EncodedData(_codes("noisy")))
    with pytest.raises(UserError, match="n_jobs"):
        REGISTRY["dci"][0](SUB, rep, np.random.RandomState(0), n_jobs=0, **SMALL)
