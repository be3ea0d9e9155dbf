"""Same config, same seed, trained twice on one device: identical, or how far apart?

    # GPU (the figure docs/reproducibility.md asks for: 1,000 steps, every family):
    python benchmarks/rerun_diff.py --device cuda --steps 1000 --out rerun_gpu.json
    # the same with the step captured in a CUDA graph:
    python benchmarks/rerun_diff.py --device cuda --steps 1000 --cuda-graph --out rerun_gpu_graph.json
    # CPU (expected: identical at any fixed thread count):
    python benchmarks/rerun_diff.py --device cpu --threads 2 --steps 200 --out rerun_cpu.json

Each model trains its shipped config (batch 64) on the real-image fixture twice, in this one
process, each run from scratch with the same seed; the report gives, per model, the number of
tensors of checkpoint.pt's model and optimiser states that differ and the largest absolute
difference of any model weight.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dis_eval.config.train import TrainConfig  # noqa: E402
from dis_eval.device import resolve_device  # noqa: E402
from dis_eval.models.spec import MODELS  # noqa: E402
from pipelines.train import train  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
STATE_PARTS = ("model", "optimizer", "discriminator", "disc_optimizer")


def flat_tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out.update(flat_tensors(v, f"{prefix}[{i}]"))
    return out


def compare(model: str, args: argparse.Namespace, tmp: Path) -> dict:
    over = [f"data={args.data}", f"device={args.device}", f"steps={args.steps}", f"checkpoint_every={args.steps}",
            f"log_every={max(args.steps // 10, 1)}", f"cuda_graph={str(args.cuda_graph).lower()}"]
    states = []
    for i in range(2):
        cfg = TrainConfig.load(ROOT / "pipelines" / "configs" / f"{model}.yaml", over)
        run = train(cfg, tmp / f"{model}.{i}", progress=False)
        ckpt = torch.load(run / "checkpoint.pt", weights_only=True, map_location="cpu")
        states.append(flat_tensors({k: ckpt[k] for k in STATE_PARTS if k in ckpt}))
    a, b = states
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    weights = [k for k in a if k.startswith("/model/") and a[k].is_floating_point()]
    largest = max(float((a[k].double() - b[k].double()).abs().max()) for k in weights)
    return {"model": model, "steps": args.steps, "identical": not differ, "tensors": len(a),
            "tensors_differing": len(differ), "largest_weight_abs_diff": largest}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--cuda-graph", action="store_true", help="train with cuda_graph: true")
    p.add_argument("--data", default=str(FIXTURE))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    args.device = str(dev)
    res = {"command": " ".join(sys.argv), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
           f"cpu ({platform.machine()}, {torch.backends.cpu.get_cpu_capability()})", "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            res["results"].append(compare(model.strip(), args, Path(tmp)))
            print(json.dumps(res["results"][-1]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
