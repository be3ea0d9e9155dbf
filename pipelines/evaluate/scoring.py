"""Scoring cached codes with the metric suite under an ``EvalConfig``, and the metrics.json
record of an evaluation: how each score was computed, on which data, with which libraries and
code, its baselines and its warnings.

metrics.json (docs/reading-scores.md, "metrics.json"): ``protocols`` holds one record per
convention scored (``dlib``, ``paper``, or ``custom``), each complete on its own (scores,
headline, settings, spread, evaluations with full provenance per metric, baselines, warnings,
data, representation, protocol); ``not_scored`` says why a convention is absent. The primary
record (``dlib`` when scored) is mirrored at the top level, where readers of older files find
``scores`` / ``headline`` / ``settings`` / ``spread`` / ``evaluations``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dis_eval.config.evaluation import EvalConfig
from dis_eval.errors import UserError
from dis_eval.run_dir import PROTOCOL_BLOCKS as PROTOCOLS_KEY

# What every registered metric implements: disentanglement_lib's definition (dis_eval.metrics).
METRIC_VARIANT = "disentanglement_lib"
NOT_SCORED_KEY = "not_scored"  # metrics.json: convention name -> why it was not scored


@dataclass
class ScoreContext:
    """What a record says beyond its config and data: where the codes came from (``source``:
    a run with its step, an encoder file, a codes file with its checksum), the latents'
    activity (None: ``activity_undefined`` says why), the baseline cache folder."""

    source: dict[str, Any]
    activity: Any = None
    activity_undefined: str | None = None
    cache_dir: Any = None


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


def sample_unavailable(codes: Any) -> str | None:
    """Why the sample representation cannot be drawn from ``codes``, or None when it can."""
    codes.ensure_some()
    if codes.aux is None or codes.family not in ("echo", "vae"):
        return "no noisy sample: the codes carry no Echo/VAE aux (log s or log variance)"
    return None


def add_checks(result: dict[str, Any], data: Any, num_latents: int, config: EvalConfig,
               context: ScoreContext) -> dict[str, Any]:
    """Warnings where a score leans on an inactive latent, and the random/oracle baselines of
    each score (same metric, settings and seeds), into ``result``."""
    from dis_eval.metrics.activity import inactive_warnings
    from dis_eval.metrics.baselines import compute_baselines
    from dis_eval.provenance import sha256_arrays

    if context.activity is not None:
        result["activity"] = context.activity.as_dict()
    else:
        result["activity"] = None
        result["activity_undefined"] = context.activity_undefined or "no rates for these codes"
    found = inactive_warnings(result["scores"], context.activity, tuple(data.factor_names))
    result["warnings"] = {m: [w for w in found if w["metric"] == m] for m in result["scores"]}
    if config.baselines:
        import numpy as np

        rows = sha256_arrays(np.asarray(data.indices, dtype=np.int64), np.asarray(data.classes, dtype=np.int64))
        result["baselines"] = {m: compute_baselines(data, m, result["settings"][m], config.seed, config.repeats,
                                                    num_latents, context.cache_dir, rows)
                               for m in result["scores"]}
    else:
        result["baselines"] = None
        result["baselines_undefined"] = "not computed (--no-baselines)"
    return result


def finish_record(result: dict[str, Any], data_rec: dict[str, Any], protocol: str | None,
                  config: EvalConfig, extra: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Add the convention ``name``, protocol, data, provenance and the per-metric
    ``evaluations`` entries (each complete: metric and variant, settings, metric seeds,
    representation and protocol, data and its checksums, the codes' source, versions, commit)."""
    from dis_eval.metrics.utils import to_builtin
    from dis_eval.provenance import stamp

    result["convention"] = name
    result["protocol"] = protocol
    result["data"] = data_rec
    result.update(extra)
    if config.preset:
        result["preset"] = config.preset
    result.update(stamp())
    seeds = list(range(int(result["seed"]), int(result["seed"]) + int(result["repeats"])))
    data_keys = ("source", "subset", "rows", "is_full_grid", "rows_sha256", "images_sha256", "subset_recipe")
    common = {"variant": METRIC_VARIANT, "convention": name, "representation": result["representation"],
              "protocol": protocol, "seed": result["seed"], "repeats": result["repeats"], "metric_seeds": seeds,
              "data": {k: data_rec.get(k) for k in data_keys}, "codes_from": extra.get("encoder"),
              "versions": result["versions"], "code": result["code"], "evaluated_at": result["evaluated_at"]}
    result["evaluations"] = {m: {"metric": m, **common, "settings": result["settings"][m]} for m in result["scores"]}
    return to_builtin(result)


def combine(records: Sequence[tuple[str, dict[str, Any]]], not_scored: dict[str, str]) -> dict[str, Any]:
    """One evaluation's metrics.json content: the primary (first) record at the top level, every
    record under ``protocols``, and why any convention was skipped under ``not_scored``."""
    if not records:
        reasons = "; ".join(f"{k}: {v}" for k, v in not_scored.items())
        raise UserError(f"nothing was scored ({reasons})")
    top = dict(records[0][1])
    top[PROTOCOLS_KEY] = {name: rec for name, rec in records}
    top[NOT_SCORED_KEY] = dict(not_scored)
    return top


def warning_lines(result: dict[str, Any]) -> list[str]:
    """The warnings of every convention in ``result``, one line each, labelled."""
    blocks = result.get(PROTOCOLS_KEY) or {result.get("convention") or "scores": result}
    return [f"warning [{name}] {w['message']}" for name, rec in blocks.items()
            for ws in (rec.get("warnings") or {}).values() for w in ws]


def codes_activity(codes: Any) -> tuple[Any, str | None]:
    """(LatentActivity computed from the codes' aux, None) or (None, why not)."""
    from dis_eval.metrics.activity import activity_from_codes

    codes.ensure_some()
    if codes.aux is None or codes.family not in ("echo", "vae"):
        return None, "the codes carry no Echo/VAE aux: no rate per latent"
    clip = None
    if codes.family == "echo":
        if codes.d_max is None:
            return None, "Echo codes without d_max: the rate floor -log r is unknown"
        from dis_eval.models.clip import clip_factor

        clip = clip_factor(int(codes.d_max))
    return activity_from_codes(codes.mean, codes.aux, codes.family, clip), None


def score_plan(data: Any, codes: Any, config: EvalConfig, data_rec: dict[str, Any], context: ScoreContext
               ) -> dict[str, Any]:
    """Every convention of ``config.plan()`` on one set of rows and codes (``score``, an
    encoder file): the combined record. ``paper`` is skipped, with the reason recorded, where
    the codes have no sample or the rows are not the full grid."""
    plan = config.plan()
    protocol = "full" if data.is_full_grid else "subset"
    records, not_scored = [], {}
    for name, cfg in plan:
        if cfg.representation == "sample" and len(plan) > 1:
            reason = sample_unavailable(codes) or (
                None if data.is_full_grid else
                f"the authors' protocol scores the full grid; these codes cover {len(data):,} rows")
            if reason:
                not_scored[name] = reason
                continue
        t0 = time.perf_counter()
        result = score_codes(data, codes, cfg)
        result["timings"]["total_s"] = time.perf_counter() - t0
        if context.activity is None and context.activity_undefined is None:
            context.activity, context.activity_undefined = codes_activity(codes)
        add_checks(result, data, codes.mean.shape[1], cfg, context)
        records.append((name, finish_record(result, data_rec, protocol, cfg, {"encoder": context.source}, name)))
    return combine(records, not_scored)
