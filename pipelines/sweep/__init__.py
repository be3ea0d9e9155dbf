"""Sweeps: many train + evaluate jobs from one sweep file, run locally or on Ray.

A sweep file (``spec``) is expanded into jobs, each run in its run folder (``runner``) by a
local or Ray executor (``executors``) as ``ExecutorOptions`` say (``options``); ``run`` drives a
whole sweep, ``status`` reads its progress back. Names load on first use, so the command line
reads ``options`` without importing the rest (see ``dis_eval._lazy``)."""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "EXECUTORS": ".options", "ExecutorOptions": ".options",
    "all_succeeded": ".run", "prepare_out_dir": ".run", "resolve_train_config": ".run", "run_sweep": ".run",
    "print_status": ".status", "sweep_status": ".status",
})
