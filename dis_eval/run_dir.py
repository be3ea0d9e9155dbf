"""The run folder: the one place that names its files and reads and writes them.

```
RUN/
  config.yaml      the resolved training config (TrainConfig.to_dict(): every key, derived ones too)
  checkpoint.pt    the latest full training state (model, optimisers, RNG states, step)
  model.pt         the final weights {"config", "state_dict", "step"}: the run is trained
  summary.json     training status, losses and rate per latent
  metrics.json     scores, merged across evaluations (one entry per metric)
  tb/              TensorBoard logs
  figures/         from `dis-eval plot`
  sweep_job.json, sweep_lock.json, failed.json, job.log   the sweep runner's files
  .lock            held (flock) by a process writing the folder
```

Every write is atomic (``dis_eval.atomic``). Writers hold the folder's lock: ``train`` for its
whole run, ``evaluate`` for its read-merge-write of metrics.json, so two writers never
interleave (the lock is the operating system's ``flock``: a killed holder releases it).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dis_eval.atomic import atomic_write_json, atomic_write_text, remove_temporaries
from dis_eval.errors import UserError

if TYPE_CHECKING:
    from dis_eval.config.train import TrainConfig

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.json"
TB_DIR = "tb"
FIGURES_DIR = "figures"
SWEEP_JOB_FILE = "sweep_job.json"
SWEEP_LOCK_FILE = "sweep_lock.json"
FAILED_FILE = "failed.json"
JOB_LOG_FILE = "job.log"
LOCK_FILE = ".lock"

# metrics.json blocks keyed by metric name: a new evaluation replaces its metrics' entries and
# keeps the others; every other field describes the latest evaluation.
METRIC_BLOCKS: tuple[str, ...] = ("scores", "headline", "settings", "spread", "evaluations", "baselines", "warnings")
# metrics.json's per-convention records (convention name -> a record merged like the top level).
PROTOCOL_BLOCKS = "protocols"


class RunDir:
    """A run folder (it need not exist yet). Paths are attributes; reads return None for a file
    that is not there; writes are atomic."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / CONFIG_FILE
        self.checkpoint = self.path / CHECKPOINT_FILE
        self.model = self.path / MODEL_FILE
        self.summary = self.path / SUMMARY_FILE
        self.metrics = self.path / METRICS_FILE
        self.tb = self.path / TB_DIR
        self.figures = self.path / FIGURES_DIR
        self.sweep_job = self.path / SWEEP_JOB_FILE
        self.sweep_lock = self.path / SWEEP_LOCK_FILE
        self.failed = self.path / FAILED_FILE
        self.job_log = self.path / JOB_LOG_FILE
        self.lock_file = self.path / LOCK_FILE

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # ---- state ------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """A run folder: it holds a config.yaml."""
        return self.config.is_file()

    def is_trained(self) -> bool:
        """Training finished: model.pt is written last, once."""
        return self.model.is_file()

    def is_finished(self) -> bool:
        """Trained and scored."""
        return self.model.is_file() and self.metrics.is_file()

    def require_folder(self) -> None:
        if not self.path.is_dir():
            raise UserError(f"run folder {self.path} does not exist; pass a folder made by `dis-eval train`")

    # ---- config -----------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        """The run's training config, typed and validated."""
        from dis_eval.config.train import TrainConfig

        if not self.is_run():
            raise UserError(f"{self.path} is not a run folder (no {CONFIG_FILE})")
        return TrainConfig.load(self.config, allow_derived=True)

    def read_config_dict(self) -> dict[str, Any]:
        """config.yaml as written (all keys, derived ones included)."""
        from dis_eval.config.train import read_config_file

        if not self.is_run():
            raise UserError(f"{self.path} is not a run folder (no {CONFIG_FILE}); pass run folders or folders containing them")
        return read_config_file(self.config)

    def write_config(self, config: dict[str, Any]) -> None:
        import yaml

        atomic_write_text(self.config, yaml.safe_dump(config, sort_keys=False))

    # ---- JSON files --------------------------------------------------------------------------
    def read_summary(self) -> dict[str, Any] | None:
        return read_json_object(self.summary)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)

    def read_metrics(self) -> dict[str, Any] | None:
        return read_json_object(self.metrics)

    def write_metrics(self, result: dict[str, Any]) -> dict[str, Any]:
        """Merge ``result`` (one evaluation) into metrics.json under the folder's lock; returns
        the merged content. Scores of metrics not re-run are kept; each metric's entry in
        ``evaluations`` records how it was computed."""
        with self.lock("evaluate", wait_s=600.0):
            return merge_metrics(self.metrics, result)

    def load_model(self, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
        """The trained model (model.pt; else the latest checkpoint.pt) in eval mode on ``device``,
        and the training config it was saved with."""
        from dis_eval.models.checkpoint import load_model

        if not (self.model.is_file() or self.checkpoint.is_file()):
            raise UserError(f"no trained model in {self.path} (expected {MODEL_FILE} or {CHECKPOINT_FILE}); "
                            "train it first with `dis-eval train`")
        return load_model(self.model if self.model.is_file() else self.checkpoint, device)

    def remove_temporaries(self) -> list[Path]:
        """Temporary files a killed writer left behind (never a final file)."""
        return remove_temporaries(self.path) if self.path.is_dir() else []

    # ---- the writer's lock ---------------------------------------------------------------------
    @contextmanager
    def lock(self, purpose: str, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the folder's write lock for ``purpose`` ("train", "evaluate", ...).

        A second writer waits up to ``wait_s`` seconds while the holder does a short write of
        the same kind (an evaluation's merge); a holder doing anything else (training) or a wait
        that runs out is a one-line error naming it: pid, host, what it does, since when.
        """
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_file, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _read_holder(fh)
                    if time.monotonic() >= deadline or holder.get("purpose") not in (None, purpose):
                        who = (f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('purpose')}, "
                               f"since {holder.get('since')})" if holder else "another process")
                        raise UserError(f"{self.path} is being written by {who}; wait for it to finish "
                                        "(or stop it) and try again") from None
                    time.sleep(0.05)
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
            fh.flush()
            yield
        finally:
            fh.close()  # releases the flock


def _read_holder(fh: Any) -> dict[str, Any]:
    """What the lock's holder wrote about itself (empty while it is still writing it)."""
    fh.seek(0)
    try:
        holder = json.loads(fh.read() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def merge_metrics(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Merge one evaluation's ``result`` into the metrics file at ``path`` (atomically); returns
    the merged content. An unreadable old file is replaced (the new scores stand alone)."""
    from dis_eval.metrics.utils import to_builtin

    old = read_json_object(path) or {}
    merged = _merge_record(old, result)
    if PROTOCOL_BLOCKS in result or PROTOCOL_BLOCKS in old:
        old_p, new_p = old.get(PROTOCOL_BLOCKS) or {}, result.get(PROTOCOL_BLOCKS) or {}
        merged[PROTOCOL_BLOCKS] = {**old_p, **{k: _merge_record(old_p.get(k) or {}, v) for k, v in new_p.items()}}
    atomic_write_json(path, to_builtin(merged))
    return merged


def _merge_record(old: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """``result`` over ``old``: metric blocks merged per metric, every other field replaced."""
    merged = dict(old)
    for key in METRIC_BLOCKS:
        block = {**(old.get(key) or {}), **(result.get(key) or {})}
        if block:
            merged[key] = block
    merged.update({k: v for k, v in result.items() if k not in METRIC_BLOCKS})
    return merged


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when absent or unreadable (reported by the caller)."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
