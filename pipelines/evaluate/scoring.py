"""Scoring cached codes with the metric suite under an ``EvalConfig``, and the metrics.json
record of an evaluation (how each score was computed, on which data, with which libraries)."""

from __future__ import annotations

import time
from typing import Any

from dis_eval.config.evaluation import EvalConfig
from dis_eval.errors import UserError


def score_codes(data: Any, codes: Any, config: EvalConfig) -> dict[str, Any]:
    """Run the suite on cached codes (``EncodedData`` or ``LazyCodes``): the metrics.json body.

    ``config`` must be resolved (``EvalConfig.resolved()``): its metrics, representation and
    settings are used as they stand.
    """
    from dis_eval.encode import representation as make_rep
    from dis_eval.metrics.suite import run_suite

    if len(codes) != len(data):
        raise UserError(f"{len(codes)} code rows for {len(data)} data rows: give one code per data row")
    kind = str(config.representation)
    make_rep(codes, kind, config.seed)  # fail early on an impossible representation
    t0 = time.perf_counter()
    result = run_suite(data, lambda s: make_rep(codes, kind, s), list(config.metrics or []), config.seed,
                       {m: dict(v) for m, v in config.settings.items()}, config.repeats)
    result["timings"] = {"metrics_s": result["timings"], "metrics_total_s": time.perf_counter() - t0}
    result.update({"representation": kind, "seed": int(config.seed), "repeats": int(config.repeats)})
    return result


def finish_record(result: dict[str, Any], data_rec: dict[str, Any], protocol: str | None,
                  config: EvalConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """Add the protocol, data, provenance and per-metric ``evaluations`` entries to ``result``."""
    from dis_eval.metrics.utils import to_builtin
    from dis_eval.provenance import stamp

    result["protocol"] = protocol
    result["data"] = data_rec
    result.update(extra)
    if config.preset:
        result["preset"] = config.preset
    result.update(stamp())
    ident = {"representation": result["representation"], "protocol": protocol, "seed": result["seed"],
             "repeats": result["repeats"], "data": {k: data_rec.get(k) for k in ("source", "subset", "rows")}}
    result["evaluations"] = {m: ident for m in result["scores"]}
    return to_builtin(result)
