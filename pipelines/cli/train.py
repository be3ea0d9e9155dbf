"""``dis-eval train``: train a model into a run folder, or continue one.

    dis-eval train pipelines/configs/echo.yaml beta=2 seed=3 --out runs/echo-b2-s3
    dis-eval train pipelines/configs/beta_vae.yaml --data tests/data/dsprites_real_fixture.npz --device cpu
    dis-eval train --resume runs/echo-b2-s3
    dis-eval train pipelines/configs/beta_vae.yaml --seeds 0-3 beta=1,4 --run-dir runs/bvae-pack
    dis-eval train --resume runs/bvae-pack

A pack (``--seeds`` and/or a list of loss weights: beta, gamma, lambda) trains every combination
of the weights and seeds as one process and one step, writing one ordinary run folder per member:
DIR/seed0 ... (DIR/beta4-seed0 ... when a weight varies). See docs/packs.md.

``--data``, ``--subset``, ``--seed`` and ``--device`` are the config keys of the same names,
spelled as every other command spells them.
"""

from __future__ import annotations

import argparse
import math
from datetime import datetime
from typing import Any

from dis_eval.errors import UserError
from dis_eval.models.spec import MODELS
from pipelines.cli.common import add_data, add_device, add_out, add_quiet, add_seed, add_subset

FLAG_KEYS = ("data", "subset", "seed", "device")  # flags that set the config key of their name


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help=f"train a model ({', '.join(MODELS)}) into a run folder",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="config YAML (e.g. pipelines/configs/echo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. beta=4 seed=1")
    add_out(p, "run folder (default: runs/<model>-s<seed>-<time>)", "--run-dir")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR")
    add_data(p, "training data: dsprites (prepared) or an official-format .npz/.hdf5 (config key data)")
    add_subset(p, "dependent subset to train on (config key subset)")
    add_seed(p, "training seed (config key seed)", default=None)
    p.add_argument("--seeds", metavar="SEEDS", help="train these seeds as one pack (e.g. 0-3 or 0,2,5)")
    add_device(p, default=None)
    add_quiet(p, "--no-progress")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dis_eval.config.train import TrainConfig
    from dis_eval.run_dir import RunDir
    from pipelines.train import train
    from pipelines.train.pack import (
        expand_members,
        is_pack,
        parse_seeds,
        split_weight_lists,
        train_pack,
    )

    flags = [f"{key}={getattr(args, key)}" for key in FLAG_KEYS if getattr(args, key) is not None]
    if args.resume:
        if args.config or args.overrides or flags or args.out or args.seeds:
            raise UserError("--resume takes the run folder only; its config.yaml is used as saved")
        if is_pack(args.resume):
            return _report_pack(train_pack(None, args.resume, resume=True, progress=not args.quiet))
        parent = RunDir(args.resume).path.parent
        if is_pack(parent):
            raise UserError(f"{args.resume} is a member of the pack {parent}; resume the pack: --resume {parent}")
        run_dir = train(None, args.resume, resume=True, progress=not args.quiet)
    else:
        if not args.config:
            raise UserError("give a config file (e.g. pipelines/configs/echo.yaml) or --resume RUN_DIR")
        overrides, weight_lists = split_weight_lists(args.overrides)
        given = {item.partition("=")[0].strip() for item in args.overrides}
        twice = sorted(given & {f.partition("=")[0] for f in flags})
        if twice:
            raise UserError(f"{', '.join(twice)} given both as --{twice[0]} and as {twice[0]}=...; give it once")
        if args.seeds and ("seed" in given or args.seed is not None):
            raise UserError("give either --seeds (a pack) or one seed, not both")
        if args.seeds or weight_lists:
            if weight_lists:  # the base config must validate: take each list's first value
                overrides += [f"{k}={v[0]}" for k, v in weight_lists.items()]
            base = TrainConfig.load(args.config, [*overrides, *flags])
            configs = expand_members(base, parse_seeds(args.seeds) if args.seeds else None, weight_lists)
            out = args.out or f"runs/{base.model}-pack-{datetime.now():%Y%m%d-%H%M%S}"
            return _report_pack(train_pack(configs, out, progress=not args.quiet))
        cfg = TrainConfig.load(args.config, [*overrides, *flags])
        out = args.out or f"runs/{cfg.model}-s{cfg.seed}-{datetime.now():%Y%m%d-%H%M%S}"
        run_dir = train(cfg, out, progress=not args.quiet)
    summary = RunDir(run_dir).read_summary() or {}
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary.get("final_losses", {}).items()
                       if isinstance(v, float) and math.isfinite(v))
    print(f"trained {summary.get('model')} for {summary.get('step')} steps in {summary.get('wall_s', 0):.1f} s: {losses}")
    print(f"run folder: {run_dir}")
    return 0


def _report_pack(pack_dir: Any) -> int:
    from pipelines.train.pack import PackDir

    failed = 0
    for run in PackDir(pack_dir).members():
        summary = run.read_summary() or {}
        status = summary.get("status")
        failed += status != "done"
        detail = summary.get("error") if status == "failed" else f"{summary.get('step')} steps"
        print(f"{run.name}: {status}, {detail}")
    print(f"pack folder: {pack_dir}")
    return 1 if failed else 0
