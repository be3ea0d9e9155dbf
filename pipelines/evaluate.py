"""``dis-eval evaluate`` and ``dis-eval score``: the metric suite on a trained run, any encoder,
or precomputed codes.

- ``dis-eval evaluate RUN_DIR``: the run's model (``dis_eval.models.load_model``) encodes every
  row of its data once; metrics sample the cached codes by row; ``RUN_DIR/metrics.json`` is
  written atomically, merged with the scores already there.
- ``dis-eval evaluate --encoder FILE --data SPEC``: any encoder, a TorchScript module or
  ``path/to/module.py:function`` (float tensor (N, 1, 64, 64) in [0, 1] -> (N, D) codes).
- ``dis-eval score CODES.npz --data SPEC``: precomputed codes: ``codes`` (one row per data
  row, in the data set's row order), optional ``rows`` (the rows' indices in the official
  full ordering), optional ``aux``/``family``/``d_max`` for the sample representation.

``--data grid`` is the factor grid without images (for codes computed elsewhere).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dis_eval.atomic import atomic_write_json
from dis_eval.errors import UserError
from dis_eval.metrics import PRESETS, REGISTRY
from dis_eval.metrics.suite import resolve_metrics, run_suite
from dis_eval.metrics.utils import to_builtin

METRICS_FILE = "metrics.json"
PROTOCOLS = ("subset", "full")


# --------------------------------------------------------------------------- data
def load_eval_data(source: str, subset: str | None, device: str = "cpu", need_images: bool = True) -> Any:
    """The data object to score on. ``source="grid"``: factors only (no images)."""
    from dis_eval.data import DataSpec, GroundTruthData, load_data

    if source == "grid":
        if need_images:
            raise UserError("--data grid has no images to encode; give a data file (or 'dsprites') to run an encoder")
        spec = DataSpec("dsprites", subset)
        sub = spec.resolve_subset()
        if sub is None:
            return GroundTruthData.grid()
        return GroundTruthData.grid(sub.indices, {"subset": sub.recipe.describe(),
                                                  "subset_kept_fraction": sub.kept_fraction})
    return load_data(DataSpec(source, subset), device=device)


def data_record(data: Any, source: str, subset: str | None) -> dict[str, Any]:
    return to_builtin({
        "source": source, "subset": subset, "rows": len(data),
        "is_full_grid": bool(data.is_full_grid), "info": dict(getattr(data, "info", {}) or {}),
    })


# --------------------------------------------------------------------------- settings
def parse_set_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``metric.key=value`` strings -> {metric: {key: value}} (values parsed as YAML)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"--set expects metric.key=value (e.g. factor_vae.num_train=1000), got {item!r}")
        lhs, rhs = item.split("=", 1)
        metric, key = lhs.split(".", 1)
        if metric not in REGISTRY:
            raise UserError(f"--set names unknown metric {metric!r}; choose from {', '.join(REGISTRY)}")
        out.setdefault(metric, {})[key] = yaml.safe_load(rhs)
    return out


def _merge_settings(*layers: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for metric, values in (layer or {}).items():
            out.setdefault(metric, {}).update(values)
    return out


def _apply_preset(preset: str | None, metrics: Any, representation: str | None,
                  protocol: str | None, overrides: dict | None) -> tuple[Any, str, str | None, dict]:
    if preset is None:
        return metrics, representation or "mean", protocol, overrides or {}
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    names = resolve_metrics(metrics if metrics is not None else p["metrics"])
    preset_settings = {m: v for m, v in p["settings"].items() if m in names}
    return (names, representation or p["representation"], protocol or p["protocol"],
            _merge_settings(preset_settings, overrides))


def _versions() -> dict[str, str]:
    import scipy
    import sklearn
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__}


# --------------------------------------------------------------------------- scoring
def score_codes(data: Any, codes: Any, metrics: Any = None, seed: int = 0,
                representation: str = "mean", settings_overrides: dict | None = None,
                repeats: int = 1) -> dict[str, Any]:
    """Run the suite on cached codes (``dis_eval.encode.EncodedData``); the metrics.json body."""
    from dis_eval.encode import representation as make_rep

    if len(codes) != len(data):
        raise UserError(f"{len(codes)} code rows for {len(data)} data rows: give one code per data row")
    make_rep(codes, representation, seed)  # fail early on an impossible representation
    t0 = time.perf_counter()
    result = run_suite(data, lambda s: make_rep(codes, representation, s), metrics, seed,
                       settings_overrides, repeats)
    result["timings"] = {"metrics_s": result["timings"], "metrics_total_s": time.perf_counter() - t0}
    result.update({"representation": representation, "seed": int(seed), "repeats": int(repeats)})
    return result


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj)


def write_metrics(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``result`` to ``path`` atomically, merged with the scores already there.

    Scores of metrics not re-run are kept; every metric's entry in ``evaluations`` records
    the representation, protocol, seed, repeats and data it was computed with, so kept and
    new scores stay distinguishable; top-level fields describe the latest evaluation.
    """
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}  # unreadable: replaced (the new scores are complete on their own)
    merged = dict(old)
    for key in ("scores", "headline", "settings", "spread", "evaluations"):
        block = dict(old.get(key) or {})
        block.update(result.get(key) or {})
        if block:
            merged[key] = block
    for key, value in result.items():
        if key not in ("scores", "headline", "settings", "spread", "evaluations"):
            merged[key] = value
    _write_json_atomic(path, to_builtin(merged))
    return merged


def _finish(result: dict[str, Any], data_rec: dict[str, Any], protocol: str | None,
            extra: dict[str, Any]) -> dict[str, Any]:
    result["protocol"] = protocol
    result["data"] = data_rec
    result.update(extra)
    result["versions"] = _versions()
    result["evaluated_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    ident = {"representation": result["representation"], "protocol": protocol, "seed": result["seed"],
             "repeats": result["repeats"], "data": {k: data_rec.get(k) for k in ("source", "subset", "rows")}}
    result["evaluations"] = {m: ident for m in result["scores"]}
    return to_builtin(result)


def evaluate_encoder(encoder: Any, data: Any, metrics: Any = None, seed: int = 0,
                     representation: str = "mean", settings_overrides: dict | None = None,
                     repeats: int = 1, batch_size: int = 1024, device: str | None = None,
                     compile: bool = False, lazy: bool = True) -> tuple[dict[str, Any], Any]:
    """Encode ``data`` with ``encoder`` (each row at most once) and score it.

    ``lazy=True`` encodes rows when a metric first asks for them (in big batches: see
    ``dis_eval.encode.LazyCodes``); ``lazy=False`` encodes every row up front. Returns
    (result dict, codes). ``timings.metrics_s`` then includes the encoding done on demand;
    ``timings.encode_s`` is the encoding part of the whole run.
    """
    from dis_eval.encode import LazyCodes, encode_data

    if lazy:
        codes = LazyCodes(encoder, data, batch_size=batch_size, device=device, compile=compile)
    else:
        codes = encode_data(encoder, data, batch_size=batch_size, device=device, compile=compile)
    result = score_codes(data, codes, metrics, seed, representation, settings_overrides, repeats)
    result["timings"]["encode_s"] = codes.info["encode_seconds"]
    result["encode"] = {k: v for k, v in codes.info.items() if k != "encode_seconds"}
    return result, codes


def evaluate_run(run_dir: str | os.PathLike, metrics: Any = None, seed: int = 0,
                 representation: str = "mean", protocol: str | None = None,
                 settings_overrides: dict | None = None, device: str | None = None,
                 repeats: int = 1, preset: str | None = None, batch_size: int = 1024,
                 compile: bool = False) -> dict[str, Any]:
    """Score a trained run's model and write ``RUN/metrics.json`` (merged, atomically).

    ``protocol``: on a run trained on a dependent subset, ``"subset"`` (default) scores on the
    rows the model saw, ``"full"`` on the run's full source grid (the authors' protocol).
    ``preset="paper"`` applies the Echo authors' evaluation (sample representation, full
    grid, counts rounded to multiples of 64) under explicit arguments.

    Returns this evaluation's result; the file holds it merged with earlier scores.
    """
    import torch

    from dis_eval.models import load_model

    metrics, representation, protocol, overrides = _apply_preset(
        preset, metrics, None if (preset and representation == "mean") else representation,
        protocol, settings_overrides)
    if protocol is not None and protocol not in PROTOCOLS:
        raise UserError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model, config = load_model(run_dir, dev)
    source = str(config.get("data", "dsprites"))
    trained_subset = config.get("subset")
    if protocol is None:
        protocol = "subset" if trained_subset else "full"
    subset = trained_subset if protocol == "subset" else None
    data = load_eval_data(source, subset, dev)
    result, _ = evaluate_encoder(model, data, metrics, seed, representation, overrides,
                                 repeats, batch_size, dev, compile)
    result["timings"]["total_s"] = time.perf_counter() - t0
    extra = {"encoder": {"kind": "run", "run_dir": str(run_dir), "family": getattr(model, "family", None)},
             "trained_subset": trained_subset}
    if preset:
        extra["preset"] = preset
    result = _finish(result, data_record(data, source, subset), protocol, extra)
    write_metrics(run_dir / METRICS_FILE, result)
    return result


def load_codes_file(path: str | os.PathLike, data: Any) -> tuple[Any, Any]:
    """(EncodedData, data restricted to the file's rows) from a codes .npz."""
    from dis_eval.encode import EncodedData, validate_codes

    path = Path(path)
    if not path.exists():
        raise UserError(f"codes file {path} does not exist")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"cannot read {path} as .npz ({type(exc).__name__}: {exc})") from exc
    if "codes" not in npz:
        raise UserError(f"{path} has no 'codes' array (keys: {', '.join(npz.files) or 'none'})")
    codes = validate_codes(npz["codes"], None, f"{path.name}: codes")
    aux = npz["aux"] if "aux" in npz else None
    family = str(npz["family"]) if "family" in npz else None
    d_max = int(npz["d_max"]) if "d_max" in npz else None
    if "rows" in npz:
        rows = np.asarray(npz["rows"])
        if rows.ndim != 1 or rows.shape[0] != codes.shape[0] or not np.issubdtype(rows.dtype, np.integer):
            raise UserError(f"{path.name}: 'rows' must be one integer index per code row ({codes.shape[0]}), got shape {rows.shape}")
        if np.unique(rows).size != rows.size:
            raise UserError(f"{path.name}: 'rows' has repeated indices")
        order = np.argsort(rows)
        rows, codes = rows[order], codes[order]
        aux = aux[order] if aux is not None else None
        missing = np.setdiff1d(rows, data.indices, assume_unique=True)
        if missing.size:
            raise UserError(f"{path.name}: {missing.size} of its rows are not in the data set (first: index {int(missing[0])})")
        if rows.size != len(data):
            data = data.restrict(rows, {"rows_from_codes": int(rows.size)})
    elif codes.shape[0] != len(data):
        raise UserError(f"{path.name} has {codes.shape[0]} code rows but the data set has {len(data)}; "
                        "give one code per data row in its order, or add 'rows' (official indices)")
    return EncodedData(codes, aux, family, d_max), data


# --------------------------------------------------------------------------- CLI
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated metrics (default: all): {','.join(REGISTRY)}")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--repeats", type=int, default=1, help="seeds seed..seed+N-1: report mean and std")
    p.add_argument("--representation", choices=("mean", "sample"), default=None,
                   help="mean (default, disentanglement_lib) or sample (noisy Echo/VAE sample; the authors')")
    p.add_argument("--set", action="append", metavar="METRIC.KEY=VALUE", dest="set_",
                   help="override a metric setting, e.g. factor_vae.num_train=1000 (repeatable)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="settings bundle: dlib (study defaults) or paper (the Echo authors' evaluation)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--out", help="also write the result to this metrics.json (merged, atomic)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a trained run or any encoder with the metric suite",
        description="Score RUN_DIR's model (writes RUN_DIR/metrics.json), or --encoder FILE on --data.")
    p.add_argument("run_dir", nargs="?", help="a run folder from `dis-eval train`")
    p.add_argument("--encoder", help="TorchScript file or path/to/module.py:function")
    p.add_argument("--data", default=None, help="data source: dsprites (prepared), or an official-format file")
    p.add_argument("--subset", default=None, help="dependent subset: preset, recipe or .h5 (with --encoder)")
    p.add_argument("--protocol", choices=PROTOCOLS, default=None,
                   help="runs trained on a subset: score on it (subset, default) or on the full grid")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=1024, help="encode batch size (default 1024)")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    p.add_argument("--save-codes", help="write the encoded codes to this .npz (encoder mode)")
    _common(p)
    p.set_defaults(func=_cmd_evaluate)

    s = subparsers.add_parser(
        "score", help="score precomputed codes (.npz with codes[, rows, aux, family])",
        description="Score CODES.npz: 'codes' (one row per data row, in its order) and optionally "
                    "'rows' (official indices), 'aux' + 'family' (echo|vae) for --representation sample.")
    s.add_argument("codes", help="the .npz file")
    s.add_argument("--data", default="grid", help="grid (factors only, default), dsprites, or an official-format file")
    s.add_argument("--subset", default=None, help="dependent subset: preset, recipe or .h5")
    _common(s)
    s.set_defaults(func=_cmd_score)


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json.dump(to_builtin(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    rep = result.get("representation")
    print(f"representation={rep} protocol={result.get('protocol')} seed={result.get('seed')} "
          f"rows={result.get('data', {}).get('rows')}")
    spread = result.get("spread") or {}
    for metric, value in result["headline"].items():
        key = REGISTRY[metric][2]
        sd = spread.get(metric, {}).get(key, {}).get("std")
        extra = f" +- {sd:.4f} (n={result.get('repeats')})" if sd is not None else ""
        secs = result.get("timings", {}).get("metrics_s", {}).get(metric)
        print(f"  {metric:<24} {key:<28} {value:.4f}{extra}   [{secs:.2f} s]" if secs is not None
              else f"  {metric:<24} {key:<28} {value:.4f}{extra}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    overrides = parse_set_options(args.set_)
    if args.run_dir and args.encoder:
        raise UserError("give either RUN_DIR or --encoder, not both")
    if args.run_dir:
        if args.data or args.subset:
            raise UserError("RUN_DIR uses its own data; --data/--subset are for --encoder (use --protocol for full/subset)")
        result = evaluate_run(args.run_dir, args.metrics, args.seed, args.representation or "mean",
                              args.protocol, overrides, args.device, args.repeats, args.preset,
                              args.batch_size, args.compile)
        if args.out:
            write_metrics(Path(args.out), result)
        _print(result, args.json)
        return 0
    if not args.encoder:
        raise UserError("give a RUN_DIR, or --encoder FILE with --data SPEC")
    from dis_eval.encode import load_encoder

    metrics, representation, protocol, overrides = _apply_preset(
        args.preset, args.metrics, args.representation, args.protocol, overrides)
    source = args.data or "dsprites"
    subset = args.subset if protocol != "full" else None
    import torch

    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    encoder = load_encoder(args.encoder)
    data = load_eval_data(source, subset, dev)
    result, codes = evaluate_encoder(encoder, data, metrics, args.seed, representation, overrides,
                                     args.repeats, args.batch_size, dev, args.compile,
                                     lazy=not args.save_codes)  # saving needs every row
    result["timings"]["total_s"] = time.perf_counter() - t0
    extra: dict[str, Any] = {"encoder": {"kind": "file", "path": args.encoder}}
    if args.preset:
        extra["preset"] = args.preset
    result = _finish(result, data_record(data, source, subset),
                     protocol or ("subset" if subset else "full"), extra)
    if args.save_codes:
        arrays = {"codes": codes.mean, "rows": data.indices}
        if codes.aux is not None:
            arrays["aux"] = codes.aux
        tmp = Path(args.save_codes).with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, args.save_codes)
    if args.out:
        write_metrics(Path(args.out), result)
    _print(result, args.json)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    overrides = parse_set_options(args.set_)
    metrics, representation, protocol, overrides = _apply_preset(
        args.preset, args.metrics, args.representation, None, overrides)
    data = load_eval_data(args.data, args.subset, "cpu", need_images=False)
    codes, data = load_codes_file(args.codes, data)
    result = score_codes(data, codes, metrics, args.seed, representation, overrides, args.repeats)
    extra = {"encoder": {"kind": "codes", "path": args.codes}}
    if args.preset:
        extra["preset"] = args.preset
    result = _finish(result, data_record(data, args.data, args.subset),
                     "subset" if not data.is_full_grid else "full", extra)
    if args.out:
        write_metrics(Path(args.out), result)
    _print(result, args.json)
    return 0
