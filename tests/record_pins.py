"""Record tests/data/pinned_small_runs.json: the numbers tests/test_pinned_numbers.py checks.

    python -m tests.record_pins            # from the repository root; about a minute per model

``pinned_run`` is the one procedure: this recorder and the test both call it. A small CPU run
per model on the real-image fixture, trained and scored through the command line (``dis-eval
train`` then ``dis-eval evaluate --metrics all`` under the mean and the sampled representation),
at the thread count of the recording process (torch's default unless the caller sets one). Re-record
when a change moves the numbers on purpose (a new random stream, a new summation order), and say
so in the commit.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"
PINS_FILE = ROOT / "tests" / "data" / "pinned_small_runs.json"
PINNED_MODELS = ("echo", "beta_vae", "factor_vae")
EXTRA = {"echo": ["d_max=16"], "beta_vae": [], "factor_vae": ["gamma=5"]}
SMALL = ["factor_vae.num_train=200", "factor_vae.num_eval=100", "factor_vae.num_variance_estimate=200",
         "mig.num_train=300", "beta_vae.num_train=100", "beta_vae.num_eval=50", "beta_vae.batch_size=16",
         "dci.num_train=200", "dci.num_test=100", "sap.num_train=200", "sap.num_test=100",
         "modularity_explicitness.num_train=200", "modularity_explicitness.num_test=100",
         "unsupervised.num_train=300", "irs.num_train=300"]
REPRESENTATIONS = ("mean", "sample")
CHECKPOINT_PARTS = ("model", "optimizer", "discriminator", "disc_optimizer", "rng")


def tensor_signatures(obj: Any, prefix: str = "") -> dict[str, list]:  # noqa: ANN401
    """path -> [dtype, shape and SHA-256 of the bytes, sum of absolute values] for every tensor."""
    import torch

    out: dict[str, list] = {}
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        digest = hashlib.sha256(t.numpy().tobytes()).hexdigest()[:20]
        out[prefix] = [f"{t.dtype}{tuple(t.shape)}:{digest}", float(t.double().abs().sum()) if t.is_floating_point() else None]
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensor_signatures(v, f"{prefix}/{k}"))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out.update(tensor_signatures(v, f"{prefix}[{i}]"))
    return out


def pinned_run(model: str, run: Path) -> dict[str, Any]:
    """Train ``model``'s small run into ``run`` and score it; returns what is pinned:
    {"checkpoint": signatures, "model_pt": signatures, "scores": {representation: scores}}."""
    import json

    import torch

    from pipelines.cli import main

    assert main(["train", str(ROOT / "pipelines" / "configs" / f"{model}.yaml"), "device=cpu", "steps=12",
                 "batch_size=16", "checkpoint_every=6", "log_every=3", *EXTRA[model],
                 "--data", str(FIXTURE), "--out", str(run), "--quiet"]) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    got: dict[str, Any] = {
        "checkpoint": tensor_signatures({k: ckpt[k] for k in CHECKPOINT_PARTS if k in ckpt}),
        "model_pt": tensor_signatures(torch.load(run / "model.pt", weights_only=True)["state_dict"]),
        "scores": {},
    }
    for rep in REPRESENTATIONS:
        argv = ["evaluate", str(run), "--metrics", "all", "--device", "cpu", "--representation", rep, "--seed", "3"]
        assert main(argv + [a for s in SMALL for a in ("--set", s)]) == 0
        got["scores"][rep] = json.loads((run / "metrics.json").read_text())["scores"]
    return got


def recording_conditions() -> dict[str, Any]:
    """What bit identity depends on: CPU instruction set, thread count, torch."""
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def main() -> int:
    from dis_eval.atomic import atomic_write_json

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in PINNED_MODELS:
            print(f"recording {model} ...", flush=True)
            runs[model] = pinned_run(model, Path(tmp) / model)
    recorded = {"command": "python -m tests.record_pins", "commit": commit + (" + uncommitted changes" if dirty else ""),
                "machine": platform.machine(), **recording_conditions()}
    atomic_write_json(PINS_FILE, {"recorded": recorded, "runs": runs}, indent=1, sort_keys=True)
    print(f"wrote {PINS_FILE.relative_to(ROOT)} ({recorded})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
