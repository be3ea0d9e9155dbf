"""``dis-eval sweep``: run a grid of training + evaluation jobs, locally or on Ray.

    dis-eval sweep SWEEP.yaml --out DIR [--jobs N]                 # local processes
    dis-eval sweep SWEEP.yaml --out DIR --executor ray [--address ADDR]
    dis-eval sweep --status DIR                                    # done/running/failed/pending
    dis-eval sweep SWEEP.yaml --out DIR --list                     # the jobs, without running
    dis-eval sweep SWEEP.yaml --out DIR --pack auto                # seeds/loss weights in packs

Every job gets ``DIR/<name>/`` (a normal run folder) named from its swept settings;
``DIR/sweep.json`` lists the jobs. Re-running the same command skips finished jobs, resumes
interrupted ones from their checkpoints and retries failed ones. The sweep file format is
described in ``pipelines/sweep/spec.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError
from pipelines.cli.common import add_out
from pipelines.sweep.options import EXECUTORS, ExecutorOptions


def run(args: argparse.Namespace) -> int:
    from dis_eval.overrides import parse_overrides
    from pipelines.sweep import (
        all_succeeded,
        print_status,
        resolve_train_config,
        run_sweep,
        sweep_status,
    )
    from pipelines.sweep.runner import job_state
    from pipelines.sweep.spec import expand_jobs, load_sweep

    if args.status is not None:
        out = Path(args.status)
        rows = sweep_status(out)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            print_status(out, rows)
        return 0
    if args.sweep is None or args.out is None:
        raise UserError("give a sweep file and --out DIR (or --status DIR to see a sweep's progress)")
    options = ExecutorOptions(
        executor=args.executor, n_jobs=args.jobs, address=args.address, max_retries=args.max_retries,
        cpus_per_job=args.cpus_per_job, skip_failed=args.skip_failed,
    )
    extra_set = parse_overrides(args.set, "--set", "steps=1000")
    if args.list:
        spec = load_sweep(args.sweep)
        jobs = expand_jobs(spec, resolve_train_config, extra_set)
        out = Path(args.out)
        print(f"sweep {spec.name}: {len(jobs)} jobs -> {out}")
        if spec.notes:
            print("notes: " + " ".join(spec.notes.split()))
        for job in jobs:
            print(f"  {job_state(out / job.name)[0]:<8} {job.name}")
        return 0
    from pipelines.sweep.packs import parse_pack

    pack = parse_pack(args.pack)
    results = run_sweep(args.sweep, args.out, options, extra_set, **({"pack": pack} if pack is not None else {}))
    return 0 if all_succeeded(results) else 1


def register(subparsers: Any) -> None:
    defaults = ExecutorOptions()
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of train+evaluate jobs (local processes or Ray); --status shows progress",
        description=(
            "Run every job of a sweep file (base config x grid) into DIR/<settings>/: train, "
            "then evaluate. Finished jobs are skipped, interrupted ones resume from their "
            "checkpoint, a failed one does not stop the others; exit status 0 only when all "
            "jobs are done. Shipped sweeps: table2 (the paper's Table 2), table2_cpu_small."
        ),
    )
    p.add_argument("sweep", nargs="?", help="sweep YAML file (or a shipped sweep's name)")
    add_out(p, "output folder; one run folder per job")
    p.add_argument("--status", metavar="DIR", help="show done/running/failed/pending per job of DIR")
    p.add_argument("--json", action="store_true", help="with --status: print JSON")
    p.add_argument("--list", action="store_true", help="list the jobs and their state; run nothing")
    p.add_argument("--executor", choices=EXECUTORS, default=defaults.executor)
    p.add_argument("--jobs", type=int, default=defaults.n_jobs,
                   help=f"local executor: jobs at a time (default {defaults.n_jobs})")
    p.add_argument(
        "--address", default=defaults.address,
        help="ray: cluster address (auto, HOST:6379, ray://HOST:10001); default a local instance",
    )
    p.add_argument(
        "--max-retries", type=int, default=defaults.max_retries,
        help="times a job whose process/worker died is restarted (resuming); errors are not retried",
    )
    p.add_argument("--cpus-per-job", type=float, default=defaults.cpus_per_job,
                   help="ray: CPUs reserved per job")
    p.add_argument("--skip-failed", action="store_true", help="do not retry jobs that failed before")
    p.add_argument("--pack", metavar="auto|N",
                   help="train jobs that differ only in seed and loss weights together, N at a time "
                        "(auto: the fastest size on this device, probed once and remembered)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a base config key for every job (repeatable), e.g. --set steps=1000",
    )
    p.set_defaults(func=run)
