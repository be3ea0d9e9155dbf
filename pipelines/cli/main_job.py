"""``dis-eval main``: the whole pipeline end to end, on built-in defaults, into one folder.

    dis-eval main                       # ./dis-eval-output, ~15 min on a 2-core CPU
    dis-eval main --out demo --steps 3000 --device cuda
    dis-eval main --data tests/data/dsprites_real_fixture.npz --quick   # a one-minute smoke run

Stages: (1) prepare dSprites (rendered on this machine unless --data names an official-format
file) and the authors' dependent subset; (2) train a small Echo model and a small beta-VAE on
the subset; (3) score both on the subset's rows (protocol "subset", encoder means, DCI left
out: it is the slow metric); (4) figures per run; (5) a comparison table. Everything lands
under the output folder, described in its README.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError
from pipelines.cli.common import add_data, add_device, add_out, add_seed, add_subset
from pipelines.main_job import MainJobDefaults, quick


def register(subparsers: Any) -> None:
    d = MainJobDefaults()
    p = subparsers.add_parser("main", help="the whole pipeline end to end into one folder (the README's first command)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_out(p, f"output folder (default ./{d.out})", default=d.out)
    add_data(p, "official-format dSprites .npz/.hdf5 to use instead of rendering")
    add_subset(p, f"dependent subset to train/score on: authors, paper-text, a recipe, a .h5, or none (default {d.subset})",
               default=d.subset)
    p.add_argument("--steps", type=int, default=None, help=f"training batches per model (default {d.steps}; --quick: 30)")
    p.add_argument("--beta", type=float, default=None, help="beta of both models (default 1)")
    add_seed(p, f"training and scoring seed (default {d.seed})", default=d.seed)
    add_device(p, default=d.device)
    p.add_argument("--plot-rows", type=int, default=None, help="encode only N random rows for the figures (default all)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 30 steps, batch 16, FactorVAE score and MIG on 400 samples, fewer figures "
                         "(numbers not meaningful)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dis_eval.data.dependent import NO_SUBSET
    from pipelines.main_job import run_main_job

    d = MainJobDefaults()
    if args.quick:
        d = quick(d)
    changes: dict[str, Any] = {"out": args.out, "data": args.data, "seed": args.seed, "device": args.device,
                               "subset": None if str(args.subset).lower() in NO_SUBSET else args.subset,
                               "plot_rows": args.plot_rows}
    if args.steps is not None:
        if args.steps < 1:
            raise UserError("--steps must be at least 1")
        changes["steps"] = args.steps
    if args.beta is not None:
        if args.beta < 0:
            raise UserError("--beta must be >= 0")
        changes["models"] = tuple((m, label, args.beta) for m, label, _ in d.models)
    d = dataclasses.replace(d, **changes)
    out = Path(d.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    print(f"dis-eval main: output folder {out.resolve()}", flush=True)
    run_main_job(d)
    return 0
