"""Packs against single runs: model-steps per second for packs of M = 1, 2, 4, ... members
(beta-VAE, Echo, FactorVAE) and for M separate processes training one model each at the same
time on the same device; peak memory; the Table 2 grid's projected GPU-hours (240 runs x
300,000 steps at the best rate); optionally a pack-vs-single agreement check.

    python benchmarks/bench_packs.py --device cpu --sizes 1,2,4,8 --steps 20 --separate 1,2 \
        --out benchmarks/results/packs_cpu.json
    python benchmarks/bench_packs.py --device cuda --sizes 1,2,4,8,16,32,64 --separate 1,4,16 \
        --agreement 1000 --out $OUT/packs_gpu.json

The step timed is the training loop's own (``build_pack_training`` / ``build_training``: batch
drawn on the device, forward, backward, fused Adam; on CUDA the whole step replayed as one CUDA
graph). Rows are drawn from ``--data`` (the step's cost does not depend on the data set's size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dis_eval.config.train import TrainConfig  # noqa: E402
from dis_eval.device import resolve_device  # noqa: E402
from pipelines.train.engine import build_training  # noqa: E402
from pipelines.train.loop import training_data  # noqa: E402
from pipelines.train.pack import build_pack_training  # noqa: E402

FIXTURE = str(ROOT / "tests" / "data" / "dsprites_real_fixture.npz")
TABLE2_RUNS, TABLE2_STEPS = 240, 300_000
EXTRA = {"factor_vae": ["gamma=10"], "echo": [], "beta_vae": []}


def make_config(model: str, args: argparse.Namespace, seed: int = 0, **extra: object) -> TrainConfig:
    over = [f"data={args.data}", f"device={args.device}", f"batch_size={args.batch}", f"seed={seed}",
            *EXTRA[model], *(f"{k}={v}" for k, v in extra.items())]
    return TrainConfig.load(ROOT / "pipelines" / "configs" / f"{model}.yaml", over)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:  # this process's peak resident memory (VmHWM; ru_maxrss would count the parent before exec)
        with open("/proc/self/status", encoding="utf-8") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step: object, n: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return time.perf_counter() - t0


def bench_pack(model: str, m: int, args: argparse.Namespace, data: object) -> dict:
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfgs = [make_config(model, args, seed=s) for s in range(m)]
    t = build_pack_training(cfgs, data, device)
    for _ in range(args.warmup):  # CUDA: warm-up steps, then the graph's capture
        t.run_step()
    best = min(time_steps(t.run_step, args.steps, device) for _ in range(args.blocks))
    return {"model": model, "members": m, "model_steps_per_s": m * args.steps / best,
            "pack_steps_per_s": args.steps / best, "peak_memory_mb": peak_memory_mb(device)}


def worker(args: argparse.Namespace) -> None:
    """One single-model process of the separate-processes baseline: warm up, say ready, wait
    for the go (a line on stdin), time the steps, print the rate."""
    device = resolve_device(args.device)
    cfg = make_config(args.worker, args, seed=args.worker_seed)
    data = training_data(cfg, device)
    t = build_training(cfg, data, device)
    for _ in range(args.warmup):
        t.run_step()
    sync(device)
    print("ready", flush=True)
    sys.stdin.readline()
    dt = time_steps(t.run_step, args.steps, device)
    print(json.dumps({"steps_per_s": args.steps / dt, "peak_memory_mb": peak_memory_mb(device)}), flush=True)


def bench_separate(model: str, m: int, args: argparse.Namespace) -> dict:
    """M processes, one model each, stepping at the same time: their summed model-steps/s."""
    cmd = [sys.executable, __file__, "--worker", model, "--device", args.device, "--data", args.data,
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([*cmd, "--worker-seed", str(s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for s in range(m)]
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker failed: {line!r}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rates = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    return {"model": model, "processes": m, "model_steps_per_s": sum(r["steps_per_s"] for r in rates),
            "peak_memory_mb_per_process": max(r["peak_memory_mb"] for r in rates)}


def agreement(model: str, steps: int, args: argparse.Namespace, data: object) -> dict:
    """Members of a pack of 4 against the same seeds trained alone for ``steps`` steps (TF32 off):
    the largest relative difference of any weight tensor (max |a - b| / max |b|)."""
    device = resolve_device(args.device)
    cfgs = [make_config(model, args, seed=s, tf32="false") for s in range(4)]
    pack = build_pack_training(cfgs, data, device)
    for _ in range(steps):
        pack.run_step()
    from dis_eval.models.ensemble import member_state_dict

    worst = 0.0
    for i in (0, 3):
        alone = build_training(cfgs[i], data, device)
        for _ in range(steps):
            alone.run_step()
        a = member_state_dict(pack.model.state_dict(), i)
        b = alone.model.state_dict()
        worst = max(worst, max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)) for k in b))
    return {"model": model, "steps": steps, "members_checked": [0, 3], "max_relative_difference": worst}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default="beta_vae,echo,factor_vae")
    p.add_argument("--sizes", default="1,2,4,8,16,32,64", help="pack sizes M")
    p.add_argument("--separate", default="", help="process counts for the M-separate-processes baseline")
    p.add_argument("--steps", type=int, default=50, help="timed steps per block")
    p.add_argument("--blocks", type=int, default=3, help="timed blocks (the fastest is kept)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--data", default=FIXTURE)
    p.add_argument("--agreement", type=int, default=0, help="steps of the pack-vs-single check (0: skip)")
    p.add_argument("--out", help="write the results here (JSON)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    device = resolve_device(args.device)
    models = args.models.split(",")
    data = training_data(make_config(models[0], args), device)
    res: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
                 "torch": torch.__version__, "batch": args.batch, "steps": args.steps, "packs": [], "separate": [],
                 "agreement": [], "table2_gpu_hours": {}}

    def save() -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(res, indent=2))

    for model in models:
        for m in (int(s) for s in args.sizes.split(",") if s):
            try:
                row = bench_pack(model, m, args, data)
            except torch.OutOfMemoryError:
                row = {"model": model, "members": m, "error": "out of memory"}
            res["packs"].append(row)
            print(json.dumps(row), flush=True)
            save()
        for m in (int(s) for s in args.separate.split(",") if s):
            row = bench_separate(model, m, args)
            res["separate"].append(row)
            print(json.dumps(row), flush=True)
            save()
        rates = [r["model_steps_per_s"] for r in res["packs"] if r["model"] == model and "error" not in r]
        if rates:
            res["table2_gpu_hours"][model] = TABLE2_RUNS * TABLE2_STEPS / max(rates) / 3600
        if args.agreement:
            row = agreement(model, args.agreement, args, data)
            res["agreement"].append(row)
            print(json.dumps(row), flush=True)
        save()
    print(json.dumps({"table2_hours_at_best_pack_rate": res["table2_gpu_hours"]}))


if __name__ == "__main__":
    main()
