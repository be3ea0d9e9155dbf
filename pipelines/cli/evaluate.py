"""``dis-eval evaluate``: the metric suite on a trained run, or on any encoder.

    dis-eval evaluate runs/echo-s0                                   # every metric -> RUN/metrics.json
    dis-eval evaluate runs/echo-s0 --metrics factor_vae,mig --preset paper    # the authors' protocol
    dis-eval evaluate --encoder my_encoder.onnx --data dsprites      # ONNX (onnxruntime, CPU)
    dis-eval evaluate --encoder my_encoder.pt2 --data dsprites       # a torch.export program
    dis-eval evaluate --encoder my_encoder.pt --data dsprites        # a TorchScript encoder
    dis-eval evaluate --encoder my_module.py:encode --data dsprites --subset authors

A run's model encodes every row of its data once; metrics sample the cached codes by row;
``RUN/metrics.json`` is written atomically, merged with the scores already there. An encoder
maps a float tensor (N, 1, 64, 64) in [0, 1] to (N, D) codes (or to (mean, aux)); a Python
module named here is imported and run: only name your own code.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from dis_eval.errors import UserError
from pipelines.cli.common import (
    add_data,
    add_device,
    add_out,
    add_scoring,
    add_subset,
    eval_config,
    print_scores,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a trained run or any encoder with the metric suite",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="*", help="a run folder from `dis-eval train`; a pack folder, or several run "
                   "folders of one architecture, are encoded once by all their models at once")
    p.add_argument("--encoder", help="an .onnx file, a torch.export .pt2 program, a TorchScript file, or path/to/module.py:function")
    add_data(p, "with --encoder: dsprites (prepared, default) or an official-format file")
    add_subset(p, "with --encoder: a dependent subset (preset, recipe or .h5)")
    add_device(p)
    p.add_argument("--batch-size", type=int, default=1024, help="encode batch size (default 1024)")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    p.add_argument("--save-codes", metavar="FILE", help="with --encoder: write the codes to this .npz")
    add_scoring(p, protocol=True)
    add_out(p, "also write the result to this metrics.json (merged, atomic)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dis_eval.run_dir import merge_metrics_file

    config = eval_config(args, device=args.device, batch_size=args.batch_size, compile=args.compile)
    if args.run_dir and args.encoder:
        raise UserError("give either RUN_DIR or --encoder, not both")
    if args.run_dir:
        if args.data or args.subset or args.save_codes:
            raise UserError("RUN_DIR uses its own data; --data/--subset/--save-codes are for --encoder "
                            "(use --protocol for full/subset)")
        from pipelines.train.pack import is_pack

        if len(args.run_dir) > 1 or is_pack(args.run_dir[0]):
            return _evaluate_pack(args, config)
        from pipelines.evaluate import evaluate_run

        result = evaluate_run(args.run_dir[0], config)
    elif args.encoder:
        result = _evaluate_encoder_file(args, config)
    else:
        raise UserError("give a RUN_DIR, or --encoder FILE with --data SOURCE")
    if args.out:
        merge_metrics_file(args.out, result)
    print_scores(result, args.json)
    return 0


def _evaluate_encoder_file(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    from dis_eval.device import resolve_device
    from dis_eval.encode import LazyCodes, encode_data, load_encoder
    from pipelines.evaluate.codes_file import save_codes_file
    from pipelines.evaluate.data import data_record, load_eval_data
    from pipelines.evaluate.scoring import ScoreContext, score_plan

    source = args.data or "dsprites"
    subset = args.subset if config.plan()[0][1].protocol != "full" else None
    t0 = time.perf_counter()
    encoder = load_encoder(args.encoder)
    device = resolve_device(config.device)
    data = load_eval_data(source, subset, device)
    options = {"batch_size": config.batch_size, "device": device, "compile": config.compile}
    # saving needs every row; otherwise rows are encoded when a metric first asks for them
    codes = encode_data(encoder, data, **options) if args.save_codes else LazyCodes(encoder, data, **options)
    context = ScoreContext(source={"kind": "file", "path": args.encoder})
    result = score_plan(data, codes, config, data_record(data, source, subset), context)
    result["timings"]["run_total_s"] = time.perf_counter() - t0
    result["timings"]["encode_s"] = codes.info["encode_seconds"]
    result["encode"] = {k: v for k, v in codes.info.items() if k != "encode_seconds"}
    if args.save_codes:
        save_codes_file(args.save_codes, codes, data)
    return result


def _evaluate_pack(args: argparse.Namespace, config: Any) -> int:
    from pipelines.evaluate.pack import evaluate_pack, pack_runs

    if args.out:
        raise UserError("--out takes one result; a pack's results go to each member's metrics.json")
    for note in pack_runs(args.run_dir)[1]:
        print(note)
    for run, result in evaluate_pack(args.run_dir, config):
        print(f"{run.path}:")
        print_scores(result, args.json)
    return 0
