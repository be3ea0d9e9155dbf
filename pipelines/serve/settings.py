"""The service's settings, validated once: where the runs are, where it listens, who may write.

Every name the service gives a file beside the runs lives here (the job database, the folder of
uploads, submissions and job logs), so the API, the workers and the pages agree on them.

```
ROOT/                          the run folders (the source of truth; the service only reads them)
  .dis-eval-service.sqlite3    the job table (SQLite, WAL)
  .dis-eval-service/
    uploads/<job id>/          what a submission uploaded (codes .npz, weights, .onnx)
    submissions/<job id>/      a scored submission: submission.json + metrics.json
    logs/<job id>.log          a job's output (the API shows its tail)
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from dis_eval.errors import UserError

DB_FILE = ".dis-eval-service.sqlite3"
SERVICE_DIR = ".dis-eval-service"
UPLOADS_DIR = "uploads"
SUBMISSIONS_DIR = "submissions"
LOGS_DIR = "logs"

EXECUTORS: tuple[str, ...] = ("local", "ray")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MiB = 1024 * 1024


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """What ``dis-eval serve`` was started with. Built once (``__post_init__`` validates and
    resolves ``root``); bad values are a one-line ``UserError``."""

    root: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1                      # local worker processes (0: the API only, no jobs run)
    token: str | None = None              # required on POST/DELETE when host is not loopback
    executor: str = "local"               # local | ray
    ray_address: str | None = None        # with executor ray: "auto", "HOST:PORT"; None starts one
    data_files: tuple[str, ...] = ()      # official-format data files submissions may be scored on (by name)
    max_codes_bytes: int = 256 * MiB      # an uploaded codes .npz
    max_weights_bytes: int = 512 * MiB    # uploaded weights (safetensors or a torch state dict)
    max_onnx_bytes: int = 256 * MiB       # an uploaded ONNX encoder
    onnx_memory_bytes: int = 4096 * MiB   # address-space limit of the ONNX subprocess
    onnx_cpu_s: int = 1800                # CPU-time limit of the ONNX subprocess
    poll_s: float = 0.5                   # an idle worker looks for a job this often
    heartbeat_s: float = 2.0              # a busy worker renews its claim this often
    stale_after_s: float = 20.0           # a claim not renewed for this long is a dead worker's
    reaper_s: float = 5.0                 # the reaper looks for dead workers' jobs this often

    def __post_init__(self) -> None:
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise UserError(f"--root {root} is not a folder; pass the folder holding your run folders "
                            "(e.g. dis-eval-output)")
        object.__setattr__(self, "root", root.resolve())
        files = tuple(str(Path(f).expanduser().resolve()) for f in self.data_files)
        for f in files:
            if not Path(f).is_file():
                raise UserError(f"--data-file {f} does not exist")
        if len({Path(f).name for f in files}) != len(files):
            raise UserError("--data-file: two files share a name; submissions choose data files by name")
        object.__setattr__(self, "data_files", files)
        if self.executor != "ray" and self.ray_address:
            raise UserError("--address is for --executor ray")
        if self.executor not in EXECUTORS:
            raise UserError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if not 1 <= int(self.port) <= 65535:
            raise UserError(f"--port must be 1-65535, got {self.port}")
        if not 0 <= int(self.workers) <= 256:
            raise UserError(f"--workers must be 0-256, got {self.workers}")
        if self.token is not None and len(self.token) < 8:
            raise UserError("--token must be at least 8 characters")
        if not is_loopback(self.host) and not self.token:
            raise UserError(f"--host {self.host} is not loopback: give --token (POST and DELETE need it), "
                            "or bind to 127.0.0.1")
        for name in ("max_codes_bytes", "max_weights_bytes", "max_onnx_bytes", "onnx_memory_bytes", "onnx_cpu_s"):
            if int(getattr(self, name)) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("poll_s", "heartbeat_s", "reaper_s"):
            if float(getattr(self, name)) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.stale_after_s <= 2 * self.heartbeat_s:
            raise UserError(f"stale_after_s ({self.stale_after_s}) must exceed twice heartbeat_s ({self.heartbeat_s})")

    # ---- the service's files beside the runs ----------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / DB_FILE

    @property
    def service_dir(self) -> Path:
        return self.root / SERVICE_DIR

    @property
    def uploads_dir(self) -> Path:
        return self.service_dir / UPLOADS_DIR

    @property
    def submissions_dir(self) -> Path:
        return submissions_dir(self.root)

    @property
    def logs_dir(self) -> Path:
        return self.service_dir / LOGS_DIR

    @property
    def needs_token(self) -> bool:
        """Writes (POST, DELETE) must carry the token: always when one is set (it must be set
        when the server listens beyond loopback)."""
        return self.token is not None


def submissions_dir(root: Path) -> Path:
    """Where scored submissions live below ``root`` (read by the catalog's leaderboard)."""
    return Path(root) / SERVICE_DIR / SUBMISSIONS_DIR
