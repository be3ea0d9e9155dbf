"""Evaluation: score a trained run (``run.evaluate_run``), any encoder (``encoder``), or codes
from a file (``codes_file``), under one ``EvalConfig``."""

from pipelines.evaluate.encoder import evaluate_encoder
from pipelines.evaluate.run import evaluate_run
from pipelines.evaluate.scoring import finish_record, score_codes

__all__ = ["evaluate_encoder", "evaluate_run", "finish_record", "score_codes"]
