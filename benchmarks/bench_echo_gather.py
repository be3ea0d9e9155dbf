"""Cost of the fixed-order member gather in Echo noise, A/B in one process.

    # CPU, the machine's default thread count and 2 threads (docs/reproducibility.md, "Cost"):
    python benchmarks/bench_echo_gather.py --device cpu --out bench_echo_gather_cpu.json
    python benchmarks/bench_echo_gather.py --device cpu --threads 2 --out bench_echo_gather_cpu2.json
    # GPU:
    python benchmarks/bench_echo_gather.py --device cuda --out bench_echo_gather_gpu.json

Formulations of ``(f[orders], log_s[orders])`` inside ``echo_noise_from_orders``:
- ``ordered``: the library's ``gather_members`` (indexing forward, fixed-order backward);
- ``index``: plain indexing, whose backward is autograd's accumulating scatter (the formulation
  before the fix; its summation order depends on thread scheduling);
- ``onehot``: a matmul with a one-hot selection matrix (a candidate that was measured, not chosen).
Timed: the full eager training step (``pipelines.train.engine.build_training``'s ``train_step``)
for Echo and Echo + TC at the given batch, and the Echo-noise forward/backward alone; the
formulations run in interleaved blocks (median of blocks) so that a loaded machine hurts all alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dis_eval.models.echo as echo  # noqa: E402
from dis_eval.config.train import TrainConfig  # noqa: E402
from dis_eval.data import DataSpec, load_data  # noqa: E402
from dis_eval.device import resolve_device  # noqa: E402
from pipelines.train.engine import build_training  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
ORDERED = echo.gather_members


def index_gather(f: torch.Tensor, log_s: torch.Tensor, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if f.ndim == 2:
        return f[orders], log_s[orders]
    batch = torch.arange(f.shape[0], device=f.device).view(-1, 1, 1)
    return f[batch, orders], log_s[batch, orders]


def onehot_gather(f: torch.Tensor, log_s: torch.Tensor, orders: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sel = torch.nn.functional.one_hot(orders, f.shape[-2]).to(f.dtype)  # (..., B, T, B)
    both = torch.cat([f, log_s], dim=-1).unsqueeze(-3)  # (..., 1, B, 2D)
    out = sel @ both
    return out[..., : f.shape[-1]], out[..., f.shape[-1]:]


FORMULATIONS: dict[str, Callable] = {"ordered": ORDERED, "index": index_gather, "onehot": onehot_gather}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], None]], steps: int, blocks: int, warmup: int,
                device: torch.device) -> dict[str, float]:
    """Median seconds per call of each fn, formulations swapped into ``echo`` around each block."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for name, fn in fns.items():
        echo.gather_members = FORMULATIONS[name]
        for _ in range(warmup):
            fn()
    for _ in range(blocks):
        for name, fn in fns.items():
            echo.gather_members = FORMULATIONS[name]
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    echo.gather_members = ORDERED
    return {k: statistics.median(v) for k, v in times.items()}


def bench_step(model: str, args: argparse.Namespace, device: torch.device) -> dict:
    extra = {"lambda_tc": 5.0} if model == "echo_tc" else {}
    cfg = TrainConfig.from_dict({"model": model, "data": args.data, "device": str(device),
                                 "batch_size": args.batch, "seed": 0, **extra})
    data = load_data(DataSpec(cfg.data, cfg.subset), device=device)
    # One training state per formulation, so each keeps its own optimiser trajectory.
    steps = {name: build_training(cfg, data, device).train_step for name in args.formulations}
    med = interleaved(steps, args.steps, args.blocks, args.warmup, device)
    return {"what": f"train_step {model}", "batch": args.batch,
            **{f"{k}_steps_per_s": round(1 / v, 2) for k, v in med.items()},
            # steps/s relative to the old indexing formulation: -3.0 means 3% fewer steps per second
            **{f"{k}_steps_per_s_vs_index_pct": round(100 * (med["index"] / v - 1), 2)
               for k, v in med.items() if "index" in med and k != "index"}}


def bench_noise(args: argparse.Namespace, device: torch.device) -> dict:
    g = torch.Generator(device=device).manual_seed(0)
    b, d = args.batch, 10
    f = torch.rand(b, d, generator=g, device=device).mul_(2).sub_(1).requires_grad_()
    log_s = (-torch.rand(b, d, generator=g, device=device)).requires_grad_()
    orders = echo.other_member_orders(b, min(64, b - 1), g, device)

    def one() -> None:
        echo.echo_noise_from_orders(f, log_s, orders).sum().backward()

    med = interleaved(dict.fromkeys(args.formulations, one), args.steps * 10, args.blocks, args.warmup, device)
    return {"what": "echo noise fwd+bwd", "batch": b, **{f"{k}_us": round(1e6 * v, 1) for k, v in med.items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default="echo,echo_tc")
    p.add_argument("--formulations", default="ordered,index,onehot")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="training steps per timed block")
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--data", default=str(FIXTURE))
    args = p.parse_args()
    args.formulations = [s.strip() for s in args.formulations.split(",")]
    unknown = set(args.formulations) - set(FORMULATIONS)
    if unknown:
        p.error(f"unknown formulations {sorted(unknown)}; choose from {sorted(FORMULATIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    res = {"command": " ".join(sys.argv), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()}, "
           f"{torch.backends.cpu.get_cpu_capability()})", "results": [bench_noise(args, device)]}
    print(json.dumps(res["results"][-1]), flush=True)
    for model in args.models.split(","):
        res["results"].append(bench_step(model.strip(), args, device))
        print(json.dumps(res["results"][-1]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
