"""``dis-eval serve``: the evaluation service over a folder of run folders.

    dis-eval serve --root dis-eval-output                       # http://127.0.0.1:8000 (docs at /docs)
    dis-eval serve --root runs --workers 2 --port 8080
    DIS_EVAL_TOKEN=... dis-eval serve --root runs --host 0.0.0.0  # beyond loopback: writes need the token
    dis-eval serve --root runs --executor ray --address auto      # jobs run on a Ray cluster

The run folders stay the source of truth; the service adds its job database
(ROOT/.dis-eval-service.sqlite3) and ROOT/.dis-eval-service/ (uploads, scored submissions,
job logs). Jobs survive restarts: stop the server any way you like and start it again.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from dis_eval.errors import UserError

TOKEN_ENV = "DIS_EVAL_TOKEN"


def register(subparsers: Any) -> None:
    from pipelines.serve.settings import DEFAULT_HOST, DEFAULT_PORT, EXECUTORS

    p = subparsers.add_parser("serve", help="the web service: runs browser, JSON API, job queue, leaderboard",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, metavar="RUNS", help="the folder holding the run folders")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, default=1, help="worker processes running jobs (default 1; 0: none)")
    p.add_argument("--token", default=None, help=f"token POST/DELETE must carry (or ${TOKEN_ENV}); required "
                   "when --host is not loopback")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="where jobs run (default local)")
    p.add_argument("--address", default=None, help="with --executor ray: the cluster (auto, HOST:PORT)")
    p.add_argument("--data-file", action="append", default=[], metavar="FILE",
                   help="an official-format data file submissions may be scored on (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import subprocess

    from pipelines.serve.settings import ServeSettings
    from pipelines.serve.worker import spawn_worker

    token = args.token or os.environ.get(TOKEN_ENV) or None
    settings = ServeSettings(root=args.root, host=args.host, port=args.port, workers=args.workers, token=token,
                             executor=args.executor, ray_address=args.address, data_files=tuple(args.data_file))
    try:
        import uvicorn

        from pipelines.serve.app import create_app
    except ImportError as exc:
        raise UserError(f"the service needs {exc.name}: pip install 'dis-eval[serve]'") from None
    app = create_app(settings)
    workers: list[subprocess.Popen] = [spawn_worker(settings) for _ in range(settings.workers)]
    print(f"dis-eval serve: {settings.root} at http://{settings.host}:{settings.port} "
          f"({settings.workers} worker(s), executor {settings.executor}; API docs at /docs)", flush=True)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)  # a worker stops its job's process group and exits
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    return 0
