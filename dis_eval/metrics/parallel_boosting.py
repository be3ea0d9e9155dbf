"""scikit-learn's ``GradientBoostingClassifier`` fitted in parallel threads with the *same*
trees as its sequential fit (DCI's reference classifier, see :mod:`dis_eval.metrics.dci`).

Why it can be exact. A multi-class boosting stage fits one regression tree per class on the
negative gradient computed *before* the stage; tree k reads only column k of that gradient
and, in its leaf update (``_update_terminal_regions``), writes only column k of the raw
predictions. The trees of one stage are therefore independent given the stage's gradient,
and the independent per-factor models are independent anyway. The only coupling is random:
every tree gets the estimator's one ``RandomState`` and its splitter draws its own seed from
it when it is built (``randint(0, RAND_R_MAX)``, once per tree, stage by stage, class by
class). With all features considered at every split that seed only breaks ties between
equally good splits, but it must still be the same seed for the same tree. So each tree here
gets its own copy of the generator, positioned exactly where the sequential fit would hand
the shared one to it, and the shared one is advanced past each tree's draw. After the
stage's trees are built, every copy must have ended where the next tree's copy began (and
the last where the shared generator now stands): this check proves the placement on every
stage, and a mismatch is an error, never a silently different model.

Everything else is scikit-learn's own ``fit``: input checks, the prior, the loss, the
training score, ``feature_importances_`` and ``predict``. Only ``_fit_stage`` is replaced,
for the case DCI uses (dense input, no subsampling; the log loss, multinomial or binary);
sparse input or subsampling runs scikit-learn's own ``_fit_stage``. ``_fit_stage`` and
``_update_terminal_regions`` are private, so the stage-parallel path is enabled only for
scikit-learn versions it was validated on (:data:`VALIDATED_SKLEARN`; the tests compare it
with the sequential fit tree by tree, and DCI with disentanglement_lib). On another version the
factors are still fitted in parallel threads with scikit-learn's own ``fit`` (also exact,
only less parallel); a warning is logged and :class:`FitInfo` records the mode.

Threads: scikit-learn's tree builder and tree application release the GIL, so threads run
the trees truly in parallel. Per-factor "driver" threads run each model's ``fit`` (its
serial parts: the prior, each stage's gradient and training loss), and one shared pool of
``threads`` workers builds every factor's trees and their leaf updates, so a 40-class factor
does not leave the other workers idle once a 3-class factor has finished. Each tree's build
must dominate its Python overhead for threads to pay: true at dlib's 10,000 training rows,
not at a few hundred.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from dis_eval.errors import UserError

LOG = logging.getLogger(__name__)

# scikit-learn versions [low, high) whose private ``BaseGradientBoosting._fit_stage`` and
# ``_update_terminal_regions`` this module was validated against (tests/test_dci_parallel.py).
VALIDATED_SKLEARN: tuple[tuple[int, int], tuple[int, int]] = ((1, 9), (1, 10))
# sklearn.tree._utils.RAND_R_MAX (a Cython constant, not importable): the splitter's seed draw
# is ``random_state.randint(0, TREE_SEED_HIGH)``. Only how far that draw advances the generator
# matters here, and the chain check below verifies it on every stage.
TREE_SEED_HIGH = 2**31 - 1
# Per-factor driver threads at most (each holds its factor's raw predictions and gradient).
MAX_DRIVERS = 32

MODES = ("sequential", "factors", "stages and factors")


@dataclass(frozen=True)
class FitInfo:
    """How the classifiers were fitted (recorded with DCI's scores; the values do not depend
    on it). ``mode``: ``sequential`` (scikit-learn's fit, one model after another),
    ``factors`` (scikit-learn's fit, models in parallel threads) or ``stages and factors``
    (models in parallel, and the trees of each stage in a shared pool)."""

    threads: int
    mode: str
    scikit_learn: str

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "mode": self.mode, "scikit_learn": self.scikit_learn}


def default_threads() -> int:
    """The CPUs this process may use (joblib's count: affinity and cgroup quotas respected)."""
    import joblib

    return max(1, int(joblib.cpu_count()))


def resolve_threads(n_jobs: Any) -> int:
    """``n_jobs`` (None: :func:`default_threads`) as a positive int, or a one-line UserError."""
    if n_jobs is None:
        return default_threads()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise UserError(f"setting n_jobs={n_jobs!r} must be a positive integer (threads) or null "
                        "(all CPUs of this machine)")
    return int(n_jobs)


def _version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def stage_parallel_unsupported() -> str | None:
    """Why the installed scikit-learn cannot use the stage-parallel path, or None if it can."""
    import sklearn

    (lo, hi), have = VALIDATED_SKLEARN, _version(sklearn.__version__)
    if lo <= have < hi:
        return None
    return (f"scikit-learn {sklearn.__version__} is outside the versions the exact stage-parallel "
            f"gradient-boosting fit was validated on ({lo[0]}.{lo[1]} <= version < {hi[0]}.{hi[1]})")


def _same_state(a: tuple, b: tuple) -> bool:
    return (a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:])


def _advance_past_tree(random_state: np.random.RandomState) -> None:
    """Move the shared generator past one tree's draw, as that tree's fit would."""
    random_state.randint(0, TREE_SEED_HIGH)


@cache
def _stage_parallel_class() -> type:
    """A ``GradientBoostingClassifier`` whose ``_fit_stage`` builds a stage's trees in a pool."""
    from sklearn import config_context
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.ensemble._gb import _update_terminal_regions
    from sklearn.tree import DecisionTreeRegressor

    class StageParallelGradientBoostingClassifier(GradientBoostingClassifier):
        _stage_pool: ThreadPoolExecutor | None = None

        def _class_tree(self, k: int, X: np.ndarray, y: np.ndarray, neg_gradient: np.ndarray,
                        raw_predictions: np.ndarray, sample_weight: np.ndarray,
                        sample_mask: np.ndarray, rng: np.random.RandomState) -> Any:
            # the body of scikit-learn's per-class loop, for class k alone
            y_k = np.array(y == k, dtype=np.float64) if self._loss.is_multiclass else y
            tree = DecisionTreeRegressor(
                criterion="squared_error", splitter="best", max_depth=self.max_depth,
                min_samples_split=self.min_samples_split, min_samples_leaf=self.min_samples_leaf,
                min_weight_fraction_leaf=self.min_weight_fraction_leaf,
                min_impurity_decrease=self.min_impurity_decrease, max_features=self.max_features,
                max_leaf_nodes=self.max_leaf_nodes, random_state=rng, ccp_alpha=self.ccp_alpha)
            # the estimator validated these parameters; checking them again per tree only holds
            # the GIL (it can raise, never change a tree)
            with config_context(skip_parameter_validation=True):
                tree.fit(X, neg_gradient[:, k], sample_weight=sample_weight, check_input=False)
            _update_terminal_regions(self._loss, tree.tree_, X, y_k, neg_gradient[:, k],
                                     raw_predictions, sample_weight, sample_mask,
                                     learning_rate=self.learning_rate, k=k)
            return tree

        def _fit_stage(self, i: int, X: Any, y: np.ndarray, raw_predictions: np.ndarray,
                       sample_weight: np.ndarray, sample_mask: np.ndarray,
                       random_state: np.random.RandomState, X_csc: Any = None,
                       X_csr: Any = None) -> np.ndarray:
            pool, n_trees = self._stage_pool, self.n_trees_per_iteration_
            if pool is None or X_csc is not None or self.subsample < 1.0:
                return super()._fit_stage(i, X, y, raw_predictions, sample_weight, sample_mask,
                                          random_state, X_csc=X_csc, X_csr=X_csr)
            neg_gradient = -self._loss.gradient(y_true=y, raw_prediction=raw_predictions,
                                                sample_weight=None)
            if neg_gradient.ndim == 1:  # binary: one tree a stage, (n, 1) as scikit-learn views it
                neg_gradient = neg_gradient.reshape((-1, 1))
            starts = []
            for _ in range(n_trees):  # the shared generator where the sequential fit hands it on
                starts.append(random_state.get_state())
                _advance_past_tree(random_state)
            rngs = [np.random.RandomState(0) for _ in range(n_trees)]  # seed: overwritten now
            for rng, state in zip(rngs, starts, strict=True):
                rng.set_state(state)
            futures = [pool.submit(self._class_tree, k, X, y, neg_gradient, raw_predictions,
                                   sample_weight, sample_mask, rngs[k]) for k in range(n_trees)]
            trees = [f.result() for f in futures]
            ends = [*starts[1:], random_state.get_state()]
            for k, (rng, end) in enumerate(zip(rngs, ends, strict=True)):
                if not _same_state(rng.get_state(), end):
                    raise RuntimeError(
                        f"stage {i}, tree {k}: the tree drew from its random state differently "
                        "from the sequential fit this module was validated on; fit with n_jobs=1")
            for k, tree in enumerate(trees):
                self.estimators_[i, k] = tree
            return raw_predictions

    return StageParallelGradientBoostingClassifier


@dataclass(frozen=True)
class FittedFactor:
    """One factor's classifier: absolute feature importances and train/test accuracy."""

    importance: np.ndarray
    train_accuracy: float
    test_accuracy: float


def _fit_factor(make: Any, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray) -> FittedFactor:
    model = make()
    model.fit(x_train, y_train)
    return FittedFactor(np.abs(model.feature_importances_),
                        float(np.mean(model.predict(x_train) == y_train)),
                        float(np.mean(model.predict(x_test) == y_test)))


def fit_gradient_boosting(params: dict[str, Any], x_train: np.ndarray, ys_train: Sequence[np.ndarray],
                          x_test: np.ndarray, ys_test: Sequence[np.ndarray], threads: int
                          ) -> tuple[list[FittedFactor], FitInfo]:
    """One ``GradientBoostingClassifier(**params)`` per target column, the same models as
    scikit-learn's sequential fit whatever ``threads`` is (see the module docstring)."""
    import sklearn
    from sklearn.ensemble import GradientBoostingClassifier

    jobs = list(zip(ys_train, ys_test, strict=True))
    why_not = stage_parallel_unsupported() if threads > 1 else None
    if why_not is not None:
        LOG.warning("%s: fitting DCI's factors in parallel threads, each with scikit-learn's "
                    "sequential fit (same values, less parallel)", why_not)

    def plain() -> Any:
        return GradientBoostingClassifier(**params)

    if threads == 1:
        out = [_fit_factor(plain, x_train, y, x_test, yt) for y, yt in jobs]
        return out, FitInfo(1, "sequential", sklearn.__version__)
    if why_not is not None:
        with ThreadPoolExecutor(max_workers=min(threads, len(jobs))) as drivers:
            out = list(drivers.map(lambda j: _fit_factor(plain, x_train, j[0], x_test, j[1]), jobs))
        return out, FitInfo(threads, "factors", sklearn.__version__)

    cls = _stage_parallel_class()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gbt-tree") as pool:

        def parallel() -> Any:
            model = cls(**params)
            model._stage_pool = pool
            return model

        with ThreadPoolExecutor(max_workers=min(len(jobs), MAX_DRIVERS),
                                thread_name_prefix="gbt-factor") as drivers:
            out = list(drivers.map(lambda j: _fit_factor(parallel, x_train, j[0], x_test, j[1]),
                                   jobs))
    return out, FitInfo(threads, "stages and factors", sklearn.__version__)
