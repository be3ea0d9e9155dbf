"""Shared pieces of the safety tests (lock, kill-anywhere, write failures, fuzz, pickle canaries):
a tiny trained run, cheap metric settings, the CLI run as a real process, and a long-lived CLI
worker process (``python -m tests.safety_helpers``) that runs commands sent to it on stdin, so
that concurrency tests pay the start-up (importing torch) once instead of per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "data" / "dsprites_real_fixture.npz"
TINY_CONFIG = REPO / "pipelines" / "configs" / "tiny_cpu.yaml"

# Two cheap metrics on the fixture's 3,000 rows (a second or two each).
CHEAP_METRICS: dict[str, list[str]] = {
    "mig": ["--metrics", "mig", "--set", "mig.num_train=300"],
    "unsupervised": ["--metrics", "unsupervised", "--set", "unsupervised.num_train=300"],
}


def tiny_overrides(model: str = "beta_vae", steps: int = 4, every: int = 2) -> list[str]:
    """Overrides of tiny_cpu.yaml for a run of ``steps`` steps checkpointed every ``every``."""
    extra = ["gamma=10"] if model == "factor_vae" else []
    return [f"model={model}", f"steps={steps}", f"checkpoint_every={every}", f"log_every={every}",
            f"data={FIXTURE}", *extra]


def train_tiny(out: Path, model: str = "beta_vae", steps: int = 4, every: int = 2) -> Path:
    """Train a tiny run in this process (no progress bar); returns its folder."""
    from dis_eval.config.train import TrainConfig
    from pipelines.train import train

    cfg = TrainConfig.load(TINY_CONFIG, tiny_overrides(model, steps, every))
    return Path(train(cfg, out, progress=False))


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout's code first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``dis-eval ARGS`` as a real process, from the repository root."""
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def state_dict_of(path: Path) -> dict[str, Any]:
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    return blob.get("state_dict", blob.get("model"))


def same_tensors(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class CliWorker:
    """A ``python -m tests.safety_helpers`` process: ``start(args)`` sends a command (returns
    at once), ``result()`` waits for its exit status and stderr."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.safety_helpers"], cwd=REPO, env=cli_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, args: list[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI worker died (exit status {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _serve() -> None:
    """The worker's loop: one JSON argv a line in, one JSON {rc, stderr} a line out."""
    import contextlib
    import io
    import traceback

    import torch  # noqa: F401 - imported once, before the first command

    from pipelines.cli import main

    out = sys.stdout
    for line in sys.stdin:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(json.loads(line))
            except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
                rc, _ = -1, traceback.print_exc(file=err)
        out.write(json.dumps({"rc": rc, "stderr": err.getvalue()}) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
