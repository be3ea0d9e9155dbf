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
  .lock            held (flock) by a process writing the folder; its holder's record (JSON)
```

Every write is atomic (``dis_eval.atomic``). Writers hold the folder's lock: ``train`` (and
``train --resume``) for its whole run, ``plot`` while it draws into the folder, ``evaluate`` for
its read-merge-write of metrics.json, so two writers never interleave. The lock is the operating
system's ``flock`` (a killed holder releases it) plus a record naming the holder (pid, host,
start time, a heartbeat refreshed while it runs); a lock left by a holder that is gone is taken
over with a notice (``RunDir.lock``; guarantees in docs/safety.md).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
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
        from dis_eval.models.checkpoint import check_same_run, load_model

        if not (self.model.is_file() or self.checkpoint.is_file()):
            raise UserError(f"no trained model in {self.path} (expected {MODEL_FILE} or {CHECKPOINT_FILE}); "
                            "train it first with `dis-eval train`")
        path = self.model if self.model.is_file() else self.checkpoint
        model, config = load_model(path, device)
        if self.is_run():
            check_same_run(config, self.read_config_dict(), path, self.config)
        return model, config

    def remove_temporaries(self) -> list[Path]:
        """Temporary files killed writers left in the folder and its figures (never a final
        file, never one a live writer is writing)."""
        return [p for folder in (self.path, self.figures) if folder.is_dir() for p in remove_temporaries(folder)]

    # ---- the writer's lock ---------------------------------------------------------------------
    @contextmanager
    def lock(self, purpose: str, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the folder's write lock for ``purpose`` ("train", "evaluate", "plot", ...).

        A second writer waits up to ``wait_s`` seconds while the holder does a short write of
        the same kind (an evaluation's merge); a holder doing anything else (training) or a wait
        that runs out is a one-line error naming it: pid, host, what it does, since when, its
        last heartbeat. The holder's record (``LockHolder``) is refreshed every ``HEARTBEAT_S``
        seconds by a background thread while the block runs. A lock whose holder is gone (killed:
        the operating system released its flock but its record is still there; or a dead pid on
        this host, or a heartbeat older than ``STALE_S`` from another host, while the flock is
        still held) is taken over with a one-line notice on stderr.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = self._acquire(purpose, wait_s)
        try:
            left = LockHolder.parse(_read_record(fd))
            if left is not None:
                _notice(f"{self.path}: took over the lock left by {left.describe()}, which stopped "
                        "without releasing it")
            os.ftruncate(fd, 0)
            self.remove_temporaries()  # what a killed writer left: the folder is ours now
            beat = _Heartbeat(fd, LockHolder.mine(purpose))
            beat.write()
            beat.start()
            try:
                yield
            finally:
                beat.stop()
                os.ftruncate(fd, 0)  # released normally: no record is left for a taker-over to report
        finally:
            os.close(fd)  # releases the flock

    def _acquire(self, purpose: str, wait_s: float) -> int:
        """The lock file's descriptor, flock-ed by this process (see ``lock``)."""
        import fcntl

        deadline = time.monotonic() + wait_s
        while True:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = LockHolder.parse(_read_record(fd))
                inode = os.fstat(fd).st_ino
                os.close(fd)
                if holder is not None and holder.abandoned():
                    self._break_lock(inode, holder)
                    continue
                if time.monotonic() >= deadline or (holder is not None and holder.purpose != purpose):
                    who = holder.describe() if holder is not None else "another process"
                    raise UserError(f"{self.path} is being written by {who}; wait for it to finish "
                                    "(or stop it) and try again") from None
                time.sleep(0.05)
                continue
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.lock_file):
                return fd
            os.close(fd)  # a taker-over removed this file while we waited for it: lock the new one

    def _break_lock(self, inode: int, holder: LockHolder) -> None:
        """Remove a lock file whose flock a gone holder still pins (a forked child of a killed
        process, a dead host), so that the next attempt locks a fresh file. Done under a flock of
        the folder itself so that two takers-over never both remove a file (the second sees that
        the file is no longer the one it judged)."""
        import fcntl

        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.lock_file).st_ino != inode:
                    return
            except FileNotFoundError:
                return
            os.unlink(self.lock_file)
            _notice(f"{self.path}: took over the lock held by {holder.describe()}, which is gone")
        finally:
            os.close(dir_fd)  # releases the folder's flock


HEARTBEAT_S = 10.0  # a lock holder refreshes its record this often
STALE_S = 120.0  # a record from another host not refreshed for this long belongs to a dead holder


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run folder's lock: the JSON record in ``RUN/.lock``."""

    pid: int
    host: str
    purpose: str
    since: str  # local start time, for people
    started: float  # start time, seconds since the epoch
    heartbeat: float  # last refresh, seconds since the epoch

    @classmethod
    def mine(cls, purpose: str) -> LockHolder:
        now = time.time()
        return cls(os.getpid(), socket.gethostname(), purpose, time.strftime("%Y-%m-%d %H:%M:%S"), now, now)

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The record in ``text``; None when there is none (free, or still being written)."""
        try:
            raw = json.loads(text) if text.strip() else None
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        try:
            started = float(raw.get("started", 0.0))
            return cls(int(raw["pid"]), str(raw["host"]), str(raw["purpose"]), str(raw.get("since", "?")),
                       started, float(raw.get("heartbeat", started)))
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def describe(self) -> str:
        beat = f", last heartbeat {max(time.time() - self.heartbeat, 0.0):.0f} s ago" if self.heartbeat else ""
        return f"pid {self.pid} on {self.host} ({self.purpose}, since {self.since}{beat})"

    def abandoned(self) -> bool:
        """The holder is gone: a dead pid on this host, or a stale heartbeat from another host."""
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:  # alive, another user's
                return False
            return False
        return bool(self.heartbeat) and time.time() - self.heartbeat > STALE_S


class _Heartbeat:
    """Rewrites the holder's record with a fresh heartbeat every ``HEARTBEAT_S`` seconds, from a
    daemon thread (a few bytes written in place: nothing the holder's own work waits on)."""

    def __init__(self, fd: int, holder: LockHolder) -> None:
        import threading

        self._fd = fd
        self._holder = holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="run-dir-lock-heartbeat", daemon=True)
        self._width = 0

    def write(self) -> None:
        text = json.dumps({**asdict(self._holder), "heartbeat": time.time()})
        # Padded in place (JSON allows trailing blanks): a reader never sees an empty file.
        self._width = max(self._width, len(text) + 1)
        os.pwrite(self._fd, (text + "\n").ljust(self._width).encode(), 0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.write()
            except OSError:  # a full disk: the flock still guards the folder
                pass


def _read_record(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _notice(message: str) -> None:
    import sys

    print(f"notice: {message}", file=sys.stderr, flush=True)


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


def merge_metrics_file(path: str | os.PathLike, result: dict[str, Any]) -> dict[str, Any]:
    """``merge_metrics`` into a metrics file outside a run folder (``--out``), holding the lock of
    the folder it is in, so that two evaluations writing the same file keep both results."""
    path = Path(path)
    with RunDir(path.parent).lock("evaluate", wait_s=600.0):
        return merge_metrics(path, result)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when absent or unreadable (reported by the caller)."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
