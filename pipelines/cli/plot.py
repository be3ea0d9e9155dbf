"""``dis-eval plot RUN_DIR``: a trained run's figures in RUN_DIR/figures (PNG + PDF, GIFs).

    dis-eval plot runs/echo-b1-s0                 # encode the run's data, draw everything
    dis-eval plot runs/echo-b1-s0 --rows 100000   # Fig. 4 / ranges from a random 100k rows

Figures: latent traversals (grid + GIF per seed image), mean latent vs factor (the paper's
Fig. 4), the latent x factor MI heatmap (MIG's estimator), reconstructions (for Echo, also
averaged over 10 noise draws as in the paper's Sec. 5.2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dis_eval.encode.representations import REPRESENTATIONS
from dis_eval.errors import UserError
from pipelines.cli.common import add_device, add_out, add_quiet, add_seed


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plot", help="draw a trained run's figures (traversals, Fig. 4, MI heatmap, reconstructions)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="trained run folder(s)")
    add_out(p, "output folder (default RUN_DIR/figures; with several runs, OUT/<run name>)")
    add_device(p)
    p.add_argument("--rows", type=int, default=None, help="encode only N random rows (default: all rows of the run's data)")
    p.add_argument("--seed-images", type=int, default=3, help="traversal seed images (default 3)")
    p.add_argument("--representation", choices=REPRESENTATIONS, default=None,
                   help="codes for the MI heatmap (default: mean codes, and the noisy sample too for Echo/VAE)")
    add_seed(p, "random seed for the rows drawn (default 0)")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from dis_eval.run_dir import RunDir
    from pipelines.figures import PlotSettings, make_run_figures

    if args.rows is not None and args.rows < 2:
        raise UserError("--rows must be at least 2")
    if args.seed_images < 1:
        raise UserError("--seed-images must be at least 1")
    settings = PlotSettings(rows=args.rows, seed_images=args.seed_images, representation=args.representation,
                            seed=args.seed)
    log = (lambda _msg: None) if args.quiet else print
    for run_dir in map(Path, args.run_dirs):
        if not run_dir.is_dir():
            raise UserError(f"{run_dir} is not a folder; pass a trained run folder")
        out = None
        if args.out is not None:
            out = Path(args.out) / run_dir.name if len(args.run_dirs) > 1 else Path(args.out)
        log(f"plotting {run_dir}")
        # Figures drawn into the run folder are written under its lock (one writer at a time).
        into_run = out is None or out.resolve().is_relative_to(run_dir.resolve())
        with RunDir(run_dir).lock("plot") if into_run else nullcontext():
            paths = make_run_figures(run_dir, out, device=args.device, settings=settings, log=log)
        for p in paths:
            log(f"  {p}")
    return 0
