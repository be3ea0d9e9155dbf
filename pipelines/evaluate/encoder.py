"""Scoring an encoder: encode each row of the data at most once (up front or on demand), then
the metric suite on the cached codes."""

from __future__ import annotations

from typing import Any

from dis_eval.config.evaluation import EvalConfig
from pipelines.evaluate.scoring import score_codes


def evaluate_encoder(encoder: Any, data: Any, config: EvalConfig, lazy: bool = True) -> tuple[dict[str, Any], Any]:
    """Encode ``data`` with ``encoder`` and score it under ``config`` (resolved).

    ``lazy=True`` encodes rows when a metric first asks for them (in big batches: see
    ``dis_eval.encode.LazyCodes``); ``lazy=False`` encodes every row up front. Returns
    (result, codes). ``timings.metrics_s`` then includes the encoding done on demand;
    ``timings.encode_s`` is the encoding part of the whole run.
    """
    from dis_eval.device import resolve_device
    from dis_eval.encode import LazyCodes, encode_data

    device = resolve_device(config.device)
    options = {"batch_size": config.batch_size, "device": device, "compile": config.compile}
    codes = LazyCodes(encoder, data, **options) if lazy else encode_data(encoder, data, **options)
    result = score_codes(data, codes, config)
    result["timings"]["encode_s"] = codes.info["encode_seconds"]
    result["encode"] = {k: v for k, v in codes.info.items() if k != "encode_seconds"}
    return result, codes
