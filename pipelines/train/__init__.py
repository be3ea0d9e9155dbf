"""Training: the loop (``loop.train``: config in, run folder out) and the step it runs
(``engine``: generators, model and optimisers, the CUDA-graph step)."""

from pipelines.train.loop import TrainingDiverged, train

__all__ = ["TrainingDiverged", "train"]
