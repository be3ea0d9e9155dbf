"""Small training runs in a process of their own, for the determinism and resume tests.

    python -m tests.det_runner OUT [--models echo,beta_vae] [--copies 2] [--threads 2]
    python -m tests.det_runner OUT --models echo --kill-at 6      # SIGKILLs itself after step 6
    python -m tests.det_runner OUT --models echo --resume          # resumes OUT/echo

Each model trains ``run_config(model)`` (one small config for every family) into OUT/<model>
(copies > 1: OUT/<model>.<i>). The thread count is torch's default unless ``--threads`` is given:
a user on a 2-core machine runs at 2 threads, set explicitly or by default.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from dis_eval.models.spec import MODELS  # light: no torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)  # every model family the project trains
# Echo's families at batch 64 with the default d_max = 64 (63 terms): the member gather's backward
# then has 64 x 63 x 10 elements, above the size at which torch's CPU kernels go multi-threaded, so
# the formulation whose summation order depended on thread scheduling really did differ here. The
# Gaussian families have no gather; a small batch keeps them cheap.
STEPS, CHECKPOINT_EVERY = 4, 2
BATCH = {"echo": 64, "vae": 16}


def run_config(model: str) -> Any:  # noqa: ANN401 (TrainConfig; imported lazily)
    from dis_eval.config.train import TrainConfig

    return TrainConfig.load(CONFIGS / f"{model}.yaml",
                            [f"data={FIXTURE}", "device=cpu", f"batch_size={BATCH[MODELS[model].family]}",
                             f"steps={STEPS}", f"checkpoint_every={CHECKPOINT_EVERY}", "log_every=1"])


def run_dir(out: Path, model: str, copy: int = 0, copies: int = 1) -> Path:
    return out / (model if copies == 1 else f"{model}.{copy}")


# Checkpoint entries that measure time, not state: the only ones two equal runs may differ in.
TIMING_KEYS = frozenset({"wall_s", "sps"})


def assert_same_state(a: Any, b: Any, where: str = "") -> None:  # noqa: ANN401
    """torch.equal on every tensor of two nested structures (dicts, lists, tuples), equality for
    everything else; dict entries named in TIMING_KEYS are skipped."""
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(map(str, set(a) ^ set(b)))}"
        for k in a:
            if k not in TIMING_KEYS:
                assert_same_state(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{where}: lengths"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(ref: Path, other: Path) -> None:
    """Both runs finished with bit-identical checkpoint.pt (all of it: model, optimisers,
    discriminator, generator states, step, logged values; not wall time) and model.pt."""
    import torch

    for name in ("checkpoint.pt", "model.pt"):
        assert_same_state(torch.load(ref / name, weights_only=True), torch.load(other / name, weights_only=True),
                          f"{other.name}/{name}")


def kill_at(step: int) -> None:
    """SIGKILL this process right after training step ``step`` (its statistics updated)."""
    import pipelines.train.engine as engine

    real = engine.RunningStats.update

    def update(self: Any, terms: Any, rate: Any) -> None:
        real(self, terms, rate)
        if int(self.step) == step:
            os.kill(os.getpid(), signal.SIGKILL)

    engine.RunningStats.update = update


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--models", default=",".join(MODEL_NAMES))
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    import torch

    from pipelines.train import train

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.kill_at is not None:
        kill_at(args.kill_at)
    for model in args.models.split(","):
        for copy in range(args.copies):
            where = run_dir(args.out, model, copy, args.copies)
            if args.resume:
                train(None, where, resume=True, progress=False)
            else:
                train(run_config(model), where, progress=False)
    print(torch.get_num_threads())
    return 0


if __name__ == "__main__":
    sys.exit(main())
