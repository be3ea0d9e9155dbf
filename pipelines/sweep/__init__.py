"""Sweeps: many train + evaluate jobs from one sweep file, run locally or on Ray.

A sweep file (``spec``) is expanded into jobs, each run in its run folder (``runner``) by a
local or Ray executor (``executors``); ``run`` drives a whole sweep, ``status`` reads its
progress back."""

from pipelines.sweep.run import all_succeeded, prepare_out_dir, resolve_train_config, run_sweep
from pipelines.sweep.status import print_status, sweep_status

__all__ = ["all_succeeded", "prepare_out_dir", "print_status", "resolve_train_config", "run_sweep",
           "sweep_status"]
