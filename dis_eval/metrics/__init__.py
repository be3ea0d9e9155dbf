"""The metric suite: one module a score, each a pure function
``compute_<name>(data, representation, random_state, **settings) -> dict`` and its
``<name>_from_codes(...)`` on arrays of codes and factor classes.

``data`` is a ``dis_eval.data.GroundTruthData`` (dSprites or any discrete factor grid, e.g. a
user's factors file): the metrics draw no random numbers themselves but ask it for rows
(``sample_positions``, ``sample_batches``, ``sample_fixed_factor_batches``,
``sample_paired_batches``) and read ``classes``, ``num_factors``, ``factor_names``.
``representation(positions) -> (len, D)`` gives the codes of those rows.

Importing this package imports neither scikit-learn nor scipy (the command line builds its
parser from the names and defaults here): each metric imports them when it runs.

``REGISTRY[name] = (function, default settings, headline key)``; the defaults are
disentanglement_lib's ``unsupervised_study_v1`` gin settings (IRS: its ``sample/irs`` gin).
``PRESETS`` holds named settings bundles (``"dlib"``: the study defaults; ``"paper"``: the
Echo authors' evaluation, see :data:`PAPER_PRESET`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dis_eval.metrics import (
    beta_vae,
    dci,
    factor_vae,
    irs,
    mig,
    modularity_explicitness,
    sap,
    unsupervised,
)

MetricFn = Callable[..., dict[str, Any]]

REGISTRY: dict[str, tuple[MetricFn, dict[str, Any], str]] = {
    "factor_vae": (factor_vae.compute_factor_vae, factor_vae.DEFAULTS, factor_vae.HEADLINE),
    "mig": (mig.compute_mig, mig.DEFAULTS, mig.HEADLINE),
    "beta_vae": (beta_vae.compute_beta_vae, beta_vae.DEFAULTS, beta_vae.HEADLINE),
    "dci": (dci.compute_dci, dci.DEFAULTS, dci.HEADLINE),
    "sap": (sap.compute_sap, sap.DEFAULTS, sap.HEADLINE),
    "modularity_explicitness": (modularity_explicitness.compute_modularity_explicitness,
                                modularity_explicitness.DEFAULTS, modularity_explicitness.HEADLINE),
    "unsupervised": (unsupervised.compute_unsupervised, unsupervised.DEFAULTS, unsupervised.HEADLINE),
    "irs": (irs.compute_irs, irs.DEFAULTS, irs.HEADLINE),
}

# The Echo authors' evaluation (docs/evaluation-protocols.md, "The Echo authors' convention"): the noisy sample
# representation asked in batches of 64, on the full independent grid, sample counts rounded
# down to multiples of 64 (FactorVAE 9,984 / 4,992 / 9,984; MIG 9,984).
PAPER_PRESET: dict[str, Any] = {
    "representation": "sample",
    "protocol": "full",
    "metrics": ["factor_vae", "mig"],
    "settings": {
        "factor_vae": {"num_train": 9984, "num_eval": 4992, "num_variance_estimate": 9984,
                       "batch_size": 64},
        "mig": {"num_train": 9984, "batch_size": 64},
        "beta_vae": {"num_train": 9984, "num_eval": 4992, "batch_size": 64},
        "dci": {"num_train": 9984, "num_test": 4992, "batch_size": 64},
        "sap": {"num_train": 9984, "num_test": 4992, "batch_size": 64},
        "modularity_explicitness": {"num_train": 9984, "num_test": 4992, "batch_size": 64},
        "unsupervised": {"num_train": 9984, "batch_size": 64},
        "irs": {"num_train": 9984, "batch_size": 64},
    },
}
DLIB_PRESET: dict[str, Any] = {"representation": "mean", "protocol": None,
                               "metrics": list(REGISTRY), "settings": {}}
PRESETS: dict[str, dict[str, Any]] = {"dlib": DLIB_PRESET, "paper": PAPER_PRESET}

__all__ = ["REGISTRY", "PRESETS", "PAPER_PRESET", "DLIB_PRESET", "MetricFn"]
