"""Orchestration: the ``dis-eval`` command, configs, training loop, evaluation, sweeps, comparison."""
