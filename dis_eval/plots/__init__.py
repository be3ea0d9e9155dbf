"""Figures: latent traversals, mean latent vs factor (the paper's Fig. 4), the latent x factor
MI heatmap, reconstructions, and score plots. Plot functions take arrays and callables
(codes, factor classes, a decoder) so they never load models or data themselves; the
``dis-eval plot`` command (pipelines/figures.py) does the loading."""

from dis_eval.plots.common import ACTIVE_VARIANCE, SHAPE_COLOURS, active_latents
from dis_eval.plots.latent_vs_factor import factor_means, plot_latent_vs_factor
from dis_eval.plots.mi_heatmap import mi_matrix, plot_mi_heatmap
from dis_eval.plots.reconstructions import (
    NoisyAverage,
    average_reconstruction,
    plot_reconstructions,
)
from dis_eval.plots.scores import plot_score_vs_param, plot_scores_by_config
from dis_eval.plots.traversals import (
    LatentSummary,
    TraversalSeeds,
    plot_traversals,
    traversal_values,
)

__all__ = [
    "ACTIVE_VARIANCE", "SHAPE_COLOURS", "active_latents", "factor_means",
    "plot_latent_vs_factor", "mi_matrix", "plot_mi_heatmap", "average_reconstruction",
    "NoisyAverage", "plot_reconstructions", "plot_score_vs_param", "plot_scores_by_config",
    "LatentSummary", "TraversalSeeds", "plot_traversals", "traversal_values",
]
