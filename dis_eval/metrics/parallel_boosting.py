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

Direct trees. At DCI's sizes most of a tree's time is not the split search but the Python
around it: ``DecisionTreeRegressor.fit`` re-validates its parameters, weights and inputs for
each of the 11,300 trees of a dSprites DCI fit, and ``_update_terminal_regions`` scans every
row once per leaf and calls ``np.average`` twice per leaf. On the validated versions each tree
is therefore built by calling the same Cython pieces ``_fit`` calls (``MSE``, ``BestSplitter``,
``DepthFirstTreeBuilder``, ``Tree``) with the values ``_fit`` would compute, and the leaf line
search groups the rows by leaf once (a stable sort: each leaf's rows in ascending order, as
``np.nonzero`` gives them) and evaluates each leaf's ``np.average`` as the same ufunc calls on
the same arrays (``np.multiply(...).sum() / weights.sum()``), so every value is bit for bit
scikit-learn's. Only the loss functions DCI uses (multinomial and binomial log loss) and the
parameters it uses (no leaf-count limit, no pruning, integer sample counts, all features) take
this path; anything else builds its trees with scikit-learn's own ``fit``. :class:`FitInfo`
records which (``trees``). With one thread the stages run in the calling thread, with the same
direct trees.

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
import numbers
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
TREE_BUILDERS = ("scikit-learn", "direct")


@dataclass(frozen=True)
class FitInfo:
    """How the classifiers were fitted (recorded with DCI's scores; the values do not depend
    on it). ``mode``: what ran in parallel threads: ``sequential`` (nothing: one model, one
    stage, one tree after another), ``factors`` (the models) or ``stages and factors`` (the
    models, and the trees of each stage in a shared pool). ``trees``: who built each tree,
    ``scikit-learn`` (its ``fit`` and ``_update_terminal_regions``) or ``direct`` (the same
    Cython builder called directly, see the module docstring)."""

    threads: int
    mode: str
    scikit_learn: str
    trees: str = "scikit-learn"

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "mode": self.mode, "scikit_learn": self.scikit_learn,
                "trees": self.trees}


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


class _TreeDraw:
    """A direct tree's random state: the one draw the sequential fit's splitter makes from the
    estimator's generator (``randint(0, RAND_R_MAX)``, when the tree is built), taken from that
    generator in tree order beforehand and handed over once; any other use is an error."""

    def __init__(self, value: int) -> None:
        self.value, self.draws = value, 0

    def randint(self, low: int, high: int) -> int:
        self.draws += 1
        if (low, high) != (0, TREE_SEED_HIGH) or self.draws > 1:
            raise RuntimeError(_DRAW_ERROR)
        return self.value


_DRAW_ERROR = ("a tree drew from its random state differently from the sequential fit this module "
               "was validated on; fit with n_jobs=1")


def _direct_trees_supported(model: Any) -> bool:
    """Whether :func:`_build_tree` and :func:`_line_search` mirror scikit-learn for ``model``'s
    parameters and loss (what DCI uses); otherwise its trees are built by scikit-learn's fit."""
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

    def count(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    return (model.max_leaf_nodes is None and model.ccp_alpha == 0.0 and count(model.min_samples_leaf)
            and count(model.min_samples_split) and (model.max_features is None or count(model.max_features))
            and isinstance(model._loss, HalfMultinomialLoss | HalfBinomialLoss))


def _build_tree(model: Any, X: np.ndarray, target: np.ndarray, sample_weight: np.ndarray | None,
                rng: _TreeDraw) -> Any:
    """``DecisionTreeRegressor(...).fit(X, target, sample_weight, check_input=False)`` as the
    gradient-boosting stage calls it, without the per-tree validation: the same Cython objects
    built from the same values as ``BaseDecisionTree._fit`` (for the parameters
    :func:`_direct_trees_supported` admits), so the same tree from the same draw."""
    from sklearn.tree import DecisionTreeRegressor
    from sklearn.tree._classes import CRITERIA_REG, DENSE_SPLITTERS
    from sklearn.tree._tree import DepthFirstTreeBuilder, Tree

    tree = DecisionTreeRegressor(
        criterion="squared_error", splitter="best", max_depth=model.max_depth,
        min_samples_split=model.min_samples_split, min_samples_leaf=model.min_samples_leaf,
        min_weight_fraction_leaf=model.min_weight_fraction_leaf,
        min_impurity_decrease=model.min_impurity_decrease, max_features=model.max_features,
        max_leaf_nodes=model.max_leaf_nodes, random_state=rng, ccp_alpha=model.ccp_alpha)
    n_samples, n_features = X.shape
    y = np.ascontiguousarray(np.reshape(target, (-1, 1)), dtype=np.float64)
    max_depth = np.iinfo(np.int32).max if model.max_depth is None else model.max_depth
    min_samples_leaf = model.min_samples_leaf
    min_samples_split = max(model.min_samples_split, 2 * min_samples_leaf)
    max_features = n_features if model.max_features is None else model.max_features
    if sample_weight is None:
        min_weight_leaf = model.min_weight_fraction_leaf * n_samples
    else:  # what _check_sample_weight returns for the stage's float64 vector
        sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        min_weight_leaf = model.min_weight_fraction_leaf * np.sum(sample_weight)
    criterion = CRITERIA_REG["squared_error"](1, n_samples)
    splitter = DENSE_SPLITTERS["best"](criterion, max_features, min_samples_leaf, min_weight_leaf, rng, None)
    tree_ = Tree(n_features, np.array([1], dtype=np.intp), 1)
    builder = DepthFirstTreeBuilder(splitter, min_samples_split, min_samples_leaf, min_weight_leaf,
                                    max_depth, model.min_impurity_decrease)
    builder.build(tree_, X, y, sample_weight, None)  # releases the GIL while it splits
    tree.n_features_in_, tree.n_outputs_, tree.max_features_, tree.tree_ = n_features, 1, max_features, tree_
    return tree


def _line_search(loss: Any, tree_: Any, X: np.ndarray, y: np.ndarray, neg_gradient: np.ndarray,
                 raw_predictions: np.ndarray, sample_weight: np.ndarray | None, learning_rate: float,
                 k: int) -> None:
    """scikit-learn's ``_update_terminal_regions`` for the log losses with every row in the
    sample (no subsampling), value for value: each leaf's Newton step from the same arrays by
    the same ufunc calls as ``np.average``, the rows grouped by leaf with one stable sort."""
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.ensemble._gb import _safe_divide
    from sklearn.tree._tree import TREE_LEAF

    regions = tree_.apply(X)
    order = np.argsort(regions, kind="stable")  # within a leaf: ascending rows, as np.nonzero
    sorted_regions = regions[order]
    leaves = np.nonzero(tree_.children_left == TREE_LEAF)[0]
    starts = np.searchsorted(sorted_regions, leaves, side="left")
    ends = np.searchsorted(sorted_regions, leaves, side="right")
    values = tree_.value  # a view of the tree's own array: writes land in the tree
    weights = np.ones(len(y), dtype=np.float64) if sample_weight is None else sample_weight
    multinomial = isinstance(loss, HalfMultinomialLoss)
    for leaf, lo, hi in zip(leaves, starts, ends, strict=True):
        indices = order[lo:hi]
        sw = weights[indices]
        neg_g = neg_gradient.take(indices, axis=0)
        prob = y.take(indices, axis=0) - neg_g
        scale = sw.sum(dtype=np.float64)  # np.average's normaliser
        if scale == 0.0:
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        numerator = np.multiply(neg_g, sw, dtype=np.float64).sum() / scale
        if multinomial:
            numerator *= (loss.n_classes - 1) / loss.n_classes
        denominator = np.multiply(prob * (1 - prob), sw, dtype=np.float64).sum() / scale
        values[leaf, 0, 0] = _safe_divide(numerator, denominator)
    raw_predictions[:, k] += learning_rate * values[:, 0, 0].take(regions, axis=0)


@cache
def _stage_parallel_class() -> type:
    """A ``GradientBoostingClassifier`` whose ``_fit_stage`` builds a stage's trees directly, in
    a pool when it has one (``_stage_pool``), else one after another in the calling thread."""
    from sklearn import config_context
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.ensemble._gb import _update_terminal_regions
    from sklearn.tree import DecisionTreeRegressor

    class StageParallelGradientBoostingClassifier(GradientBoostingClassifier):
        _stage_pool: ThreadPoolExecutor | None = None
        _direct: bool = False  # set per fit: _direct_trees_supported(self)

        def _class_tree(self, k: int, X: np.ndarray, y: np.ndarray, neg_gradient: np.ndarray,
                        raw_predictions: np.ndarray, sample_weight: np.ndarray,
                        sample_mask: np.ndarray, rng: Any) -> Any:
            # the body of scikit-learn's per-class loop, for class k alone
            y_k = np.array(y == k, dtype=np.float64) if self._loss.is_multiclass else y
            if self._direct:
                tree = _build_tree(self, X, neg_gradient[:, k], sample_weight, rng)
                _line_search(self._loss, tree.tree_, X, y_k, neg_gradient[:, k], raw_predictions,
                             sample_weight, self.learning_rate, k)
                return tree
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

        def _fit_stages(self, *args: Any, **kwargs: Any) -> int:
            self._direct = _direct_trees_supported(self)
            return super()._fit_stages(*args, **kwargs)

        def _fit_stage(self, i: int, X: Any, y: np.ndarray, raw_predictions: np.ndarray,
                       sample_weight: np.ndarray, sample_mask: np.ndarray,
                       random_state: np.random.RandomState, X_csc: Any = None,
                       X_csr: Any = None) -> np.ndarray:
            pool, n_trees = self._stage_pool, self.n_trees_per_iteration_
            if X_csc is not None or self.subsample < 1.0:  # scikit-learn's own stage
                self._direct = False
                return super()._fit_stage(i, X, y, raw_predictions, sample_weight, sample_mask,
                                          random_state, X_csc=X_csc, X_csr=X_csr)
            neg_gradient = -self._loss.gradient(y_true=y, raw_prediction=raw_predictions,
                                                sample_weight=None)
            if neg_gradient.ndim == 1:  # binary: one tree a stage, (n, 1) as scikit-learn views it
                neg_gradient = neg_gradient.reshape((-1, 1))
            if self._direct:  # each tree's one draw, taken in the sequential fit's order
                rngs: list[Any] = [_TreeDraw(random_state.randint(0, TREE_SEED_HIGH)) for _ in range(n_trees)]
            else:  # scikit-learn's trees draw themselves: a copy of the generator per tree
                starts = []
                for _ in range(n_trees):  # the shared generator where the sequential fit hands it on
                    starts.append(random_state.get_state())
                    _advance_past_tree(random_state)
                rngs = [np.random.RandomState(0) for _ in range(n_trees)]  # seed: overwritten now
                for rng, state in zip(rngs, starts, strict=True):
                    rng.set_state(state)
            args = (X, y, neg_gradient, raw_predictions, sample_weight, sample_mask)
            if pool is None:
                trees = [self._class_tree(k, *args, rngs[k]) for k in range(n_trees)]
            else:
                futures = [pool.submit(self._class_tree, k, *args, rngs[k]) for k in range(n_trees)]
                trees = [f.result() for f in futures]
            if self._direct:
                for k, draw in enumerate(rngs):
                    if draw.draws != 1:
                        raise RuntimeError(f"stage {i}, tree {k}: {_DRAW_ERROR}")
            else:  # every copy must end where the next tree's began
                ends = [*starts[1:], random_state.get_state()]
                for k, (rng, end) in enumerate(zip(rngs, ends, strict=True)):
                    if not _same_state(rng.get_state(), end):
                        raise RuntimeError(f"stage {i}, tree {k}: {_DRAW_ERROR}")
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


def _fit_factor(model: Any, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray) -> FittedFactor:
    model.fit(x_train, y_train)
    return FittedFactor(np.abs(model.feature_importances_),
                        float(np.mean(model.predict(x_train) == y_train)),
                        float(np.mean(model.predict(x_test) == y_test)))


def fit_with_scikit_learn(params: dict[str, Any], x_train: np.ndarray, ys_train: Sequence[np.ndarray],
                          x_test: np.ndarray, ys_test: Sequence[np.ndarray], threads: int = 1
                          ) -> tuple[list[FittedFactor], FitInfo]:
    """scikit-learn's own ``GradientBoostingClassifier(**params).fit`` per target column (what
    disentanglement_lib runs), one after another, or in ``threads`` factor threads."""
    import sklearn
    from sklearn.ensemble import GradientBoostingClassifier

    jobs = list(zip(ys_train, ys_test, strict=True))

    def one(job: tuple[np.ndarray, np.ndarray]) -> FittedFactor:
        return _fit_factor(GradientBoostingClassifier(**params), x_train, job[0], x_test, job[1])

    if threads == 1:
        return [one(j) for j in jobs], FitInfo(1, "sequential", sklearn.__version__)
    with ThreadPoolExecutor(max_workers=min(threads, len(jobs))) as drivers:
        out = list(drivers.map(one, jobs))
    return out, FitInfo(threads, "factors", sklearn.__version__)


def fit_gradient_boosting(params: dict[str, Any], x_train: np.ndarray, ys_train: Sequence[np.ndarray],
                          x_test: np.ndarray, ys_test: Sequence[np.ndarray], threads: int
                          ) -> tuple[list[FittedFactor], FitInfo]:
    """One ``GradientBoostingClassifier(**params)`` per target column, the same models as
    scikit-learn's sequential fit whatever ``threads`` is (see the module docstring)."""
    import sklearn

    why_not = stage_parallel_unsupported()
    if why_not is not None:
        if threads > 1:
            LOG.warning("%s: fitting DCI's factors in parallel threads, each with scikit-learn's "
                        "sequential fit (same values, less parallel)", why_not)
        return fit_with_scikit_learn(params, x_train, ys_train, x_test, ys_test, threads)

    cls = _stage_parallel_class()
    jobs = list(zip(ys_train, ys_test, strict=True))
    models = [cls(**params) for _ in jobs]
    if threads == 1:
        out = [_fit_factor(m, x_train, y, x_test, yt) for m, (y, yt) in zip(models, jobs, strict=True)]
        mode = "sequential"
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gbt-tree") as pool:
            for m in models:
                m._stage_pool = pool
            with ThreadPoolExecutor(max_workers=min(len(jobs), MAX_DRIVERS),
                                    thread_name_prefix="gbt-factor") as drivers:
                out = list(drivers.map(lambda a: _fit_factor(a[0], x_train, a[1][0], x_test, a[1][1]),
                                       zip(models, jobs, strict=True)))
        mode = "stages and factors"
    trees = "direct" if all(m._direct for m in models) else "scikit-learn"
    return out, FitInfo(threads, mode, sklearn.__version__, trees)
