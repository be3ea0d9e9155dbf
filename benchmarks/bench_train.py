"""Training speed: the full training step against the bare model step, and (on CUDA) CUDA graphs.

    # CPU (the 2-core CI machine's figures in BENCHMARKS.md):
    python benchmarks/bench_train.py --device cpu --threads 2 --out bench_train_cpu.json
    # GPU (one H100/H200):
    python benchmarks/bench_train.py --device cuda --out bench_train_gpu.json

Modes, each timed in interleaved blocks (median of blocks, so a busy machine hurts all alike):
- ``bare``: forward/backward/optimiser step on one fixed batch already resident on the device;
- ``full``: the loop's own step (``pipelines.train.engine.make_train_step``): draw rows with the device
  generator, unpack the bit-packed images on the device, forward/backward/step, update the
  device-side loss sums: the data path's cost is full / bare - 1;
- ``graph`` (CUDA): the full step captured once in a CUDA graph and replayed (``cuda_graph: true``);
- ``loop`` (``--loop-steps``): ``pipelines.train.train`` end to end (logging, progress bar,
  checkpoints), its steps/s read from the run's last log window.
On CUDA it also reports the projected time of 300,000 steps for the fastest mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dis_eval.config.train import TrainConfig  # noqa: E402
from dis_eval.data import DataSpec, load_data  # noqa: E402
from dis_eval.device import resolve_device  # noqa: E402
from dis_eval.run_dir import RunDir  # noqa: E402
from pipelines.train import train  # noqa: E402
from pipelines.train.engine import StepGraph, build_training  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
TC = {"factor_vae": {"gamma": 10.0}, "echo_tc": {"lambda_tc": 5.0}, "vae_tc": {"lambda_tc": 5.0}}


def make_config(model: str, args: argparse.Namespace, **extra: object) -> TrainConfig:
    raw = {"model": model, "data": args.data, "device": args.device, "batch_size": args.batch,
           "channels_last": not args.no_channels_last, "compile": args.compile, "seed": 0,
           **TC.get(model, {}), **extra}
    return TrainConfig.from_dict(raw)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(fn, n: int, device: torch.device) -> float:  # noqa: ANN001
    """Seconds per call over n calls (synchronised at both ends only)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n


def bench_model(model: str, args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    cfg = make_config(model, args, cuda_graph=False)
    data = load_data(DataSpec(cfg.data, cfg.subset), device=device)
    t = build_training(cfg, data, device)
    x_fixed = t.data.images(torch.arange(cfg.batch_size, device=device) % len(t.data)).contiguous(memory_format=t.fmt)

    def bare() -> None:
        out = t.objective(x_fixed, t.draws)
        for o in t.opts:
            o.zero_grad(set_to_none=True)
        t.objective.backward(out)
        for o in t.opts:
            o.step()

    modes = {"bare": bare, "full": t.train_step}  # (train_step: always the eager step)
    if device.type == "cuda" and not args.no_graph:
        gcfg = make_config(model, args, cuda_graph=True)
        tg = build_training(gcfg, data, device)
        modes["graph"] = StepGraph(tg.train_step, device)
    for fn in modes.values():  # warm-up (and, for the graph, capture)
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in modes}
    for _ in range(args.blocks):
        for name, fn in modes.items():
            times[name].append(time_block(fn, args.steps, device))
    res: dict[str, object] = {"model": model, "batch": cfg.batch_size}
    for name, ts in times.items():
        sec = statistics.median(ts)
        res[f"{name}_ms_per_step"] = round(1e3 * sec, 4)
        res[f"{name}_steps_per_s"] = round(1.0 / sec, 2)
    res["data_path_overhead_pct"] = round(100 * (statistics.median(times["full"]) / statistics.median(times["bare"]) - 1), 2)
    if args.loop_steps:
        with tempfile.TemporaryDirectory() as tmp:
            lcfg = make_config(model, args, steps=args.loop_steps, log_every=max(args.loop_steps // 4, 1),
                               checkpoint_every=args.loop_steps, cuda_graph=device.type == "cuda" and not args.no_graph)
            t0 = time.perf_counter()
            run = train(lcfg, Path(tmp) / "run", progress=False)
            wall = time.perf_counter() - t0
            summary = RunDir(run).read_summary() or {}
            res["loop_steps"] = args.loop_steps
            res["loop_steps_per_s_last_window"] = round(summary["steps_per_s"], 2)
            res["loop_wall_s_incl_setup"] = round(wall, 2)
    if device.type == "cuda":
        best = max(v for k, v in res.items() if k.endswith("_steps_per_s") and not k.startswith("bare"))
        res["projected_300k_steps_min"] = round(300_000 / best / 60, 2)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="echo,beta_vae,factor_vae,echo_tc,vae_tc")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=None, help="steps per timed block (default: cpu 10, cuda 200)")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--data", default=str(FIXTURE), help="data source (default: the real-image fixture)")
    p.add_argument("--loop-steps", type=int, default=None, help="also time train() end to end (default: cuda 3000, cpu 0)")
    p.add_argument("--no-graph", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (config compile: true)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    args.device = str(device)
    if args.steps is None:
        args.steps = 200 if device.type == "cuda" else 10
    if args.loop_steps is None:
        args.loop_steps = 3000 if device.type == "cuda" else 0
    results = {
        "command": " ".join(sys.argv),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "data": args.data,
        "models": [],
    }
    for model in args.models.split(","):
        r = bench_model(model.strip(), args)
        print(json.dumps(r), flush=True)
        results["models"].append(r)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
