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
                   help="settings bundle: dlib (study defaults) or paper (the Echo authors' evaluation)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


def eval_config(args: argparse.Namespace, **extra: Any) -> Any:
    """The ``EvalConfig`` the scoring options describe (validated: bad input is a UserError)."""
    from dis_eval.config.evaluation import EvalConfig

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    return EvalConfig(metrics=tuple(metrics) if metrics is not None else None, representation=args.representation,
                      protocol=getattr(args, "protocol", None), seed=args.seed, repeats=args.repeats,
                      settings=EvalConfig.settings_from_overrides(args.set_), preset=args.preset, **extra)


def print_scores(result: dict[str, Any], as_json: bool) -> None:
    """A metrics result on stdout: one line per metric, or the whole record as JSON."""
    import json
    import sys

    from dis_eval.metrics import REGISTRY
    from dis_eval.metrics.utils import to_builtin

    if as_json:
        json.dump(to_builtin(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(f"representation={result.get('representation')} protocol={result.get('protocol')} "
          f"seed={result.get('seed')} rows={result.get('data', {}).get('rows')}")
    spread = result.get("spread") or {}
    for metric, value in result["headline"].items():
        key = REGISTRY[metric][2]
        sd = spread.get(metric, {}).get(key, {}).get("std")
        extra = f" +- {sd:.4f} (n={result.get('repeats')})" if sd is not None else ""
        secs = result.get("timings", {}).get("metrics_s", {}).get(metric)
        timing = f"   [{secs:.2f} s]" if secs is not None else ""
        print(f"  {metric:<24} {key:<28} {value:.4f}{extra}{timing}")
