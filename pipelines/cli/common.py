"""The flags several commands share, defined once so that the same thing has the same name
everywhere: ``--out`` (where results go), ``--data`` / ``--subset`` (which data), ``--seed``,
``--device``, ``--quiet``; and the scoring options of ``evaluate`` and ``score``."""

from __future__ import annotations

import argparse
from typing import Any

from dis_eval.config.evaluation import PROTOCOLS
from dis_eval.device import DEVICE_HELP
from dis_eval.encode.representations import REPRESENTATIONS


def add_out(p: argparse.ArgumentParser, help: str, *aliases: str, default: str | None = None) -> None:
    p.add_argument("--out", *aliases, dest="out", metavar="PATH", default=default, help=help)


def add_data(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    p.add_argument("--data", default=default, metavar="SOURCE", help=help)


def add_subset(p: argparse.ArgumentParser, help: str = "dependent subset: a preset (authors, paper-text), "
               "a recipe 'bins=4,drop=0.15,seed=42', or a prepared .h5", default: str | None = None) -> None:
    p.add_argument("--subset", default=default, metavar="SUBSET", help=help)


def add_seed(p: argparse.ArgumentParser, help: str, default: int | None = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=help)


def add_device(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    shown = f" (default {default})" if default else ""
    p.add_argument("--device", default=default, help=f"{DEVICE_HELP}{shown}")


def add_quiet(p: argparse.ArgumentParser, *aliases: str) -> None:
    p.add_argument("--quiet", *aliases, dest="quiet", action="store_true", help="no progress bars")


def add_scoring(p: argparse.ArgumentParser, protocol: bool) -> None:
    """The options that make an ``EvalConfig`` (``evaluate``, ``score``)."""
    from dis_eval.metrics import PRESETS, REGISTRY

    p.add_argument("--metrics", default=None,
                   help=f"comma-separated metrics (default: all, or the preset's): {','.join(REGISTRY)}")
    add_seed(p, "seed of every random draw (default 0)")
    p.add_argument("--repeats", type=int, default=1, help="metric seeds seed..seed+N-1: report mean and sd")
    p.add_argument("--representation", choices=REPRESENTATIONS, default=None,
                   help="mean (default, disentanglement_lib) or sample (noisy Echo/VAE sample; the authors')")
    if protocol:
        p.add_argument("--protocol", choices=PROTOCOLS, default=None,
                       help="a run trained on a subset: score on its rows (subset, default) or the full grid")
    p.add_argument("--set", action="append", default=[], metavar="METRIC.KEY=VALUE", dest="set_",
                   help="override a metric setting, e.g. factor_vae.num_train=1000 (repeatable)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="score one convention only: dlib (mean codes, study defaults) or paper (the Echo authors': "
                        "noisy sample, full grid). Default (no --preset, no --representation): both, side by side "
                        "(paper only for Echo/VAE codes)")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip the random-codes and oracle baselines beside each score (cached once per data set, "
                        "subset and settings)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


def eval_config(args: argparse.Namespace, **extra: Any) -> Any:
    """The ``EvalConfig`` the scoring options describe (validated: bad input is a UserError)."""
    from dis_eval.config.evaluation import EvalConfig

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    return EvalConfig(metrics=tuple(metrics) if metrics is not None else None, representation=args.representation,
                      protocol=getattr(args, "protocol", None), seed=args.seed, repeats=args.repeats,
                      settings=EvalConfig.settings_from_overrides(args.set_), preset=args.preset,
                      baselines=args.baselines, **extra)


def print_scores(result: dict[str, Any], as_json: bool) -> None:
    """A metrics result on stdout: per convention scored, one line per metric (with its sd over
    metric seeds and its random/oracle baselines), then the warnings; or the whole record as JSON."""
    import sys

    from dis_eval.atomic import strict_json_dumps
    from dis_eval.metrics import REGISTRY
    from dis_eval.metrics.utils import to_builtin
    from pipelines.evaluate.scoring import NOT_SCORED_KEY, PROTOCOLS_KEY, warning_lines

    if as_json:
        sys.stdout.write(strict_json_dumps(to_builtin(result), indent=2) + "\n")
        return
    blocks = result.get(PROTOCOLS_KEY) or {result.get("convention") or "scores": result}
    for name, rec in blocks.items():
        print(f"[{name}] representation={rec.get('representation')} protocol={rec.get('protocol')} "
              f"seed={rec.get('seed')} rows={rec.get('data', {}).get('rows')}")
        spread = rec.get("spread") or {}
        baselines = rec.get("baselines") or {}
        for metric, value in rec["headline"].items():
            key = REGISTRY[metric][2]
            sd = spread.get(metric, {}).get(key, {}).get("std")
            extra = f" +- {sd:.4f} (sd over {rec.get('repeats')} metric seeds)" if sd is not None else ""
            base = baselines.get(metric) or {}
            ref = "".join(f"  {kind} {_num(b.get('headline'))}" for kind, b in base.items())
            ref = f"   [baselines:{ref}]" if ref else ""
            secs = rec.get("timings", {}).get("metrics_s", {}).get(metric)
            timing = f"   [{secs:.2f} s]" if secs is not None else ""
            print(f"  {metric:<24} {key:<28} {_num(value)}{extra}{ref}{timing}")
    for name, why in (result.get(NOT_SCORED_KEY) or {}).items():
        print(f"[{name}] not scored: {why}")
    for line in warning_lines(result):
        print(line)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "undefined"
