"""Screenshots of every page of ``dis-eval serve`` (headless system Chromium, see
tests/serve_browser.py), for looking at the pages and for the README's picture.

    python scripts/serve_screenshots.py --root RUNS --out shots/          # every page
    python scripts/serve_screenshots.py --root RUNS --out docs/images --only runs

Pages with a run in them use the first run that has figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serve_browser import chromium, find_browser, full_page_screenshot, serve  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--only", nargs="*", default=None, help="page names to take (default: all)")
    p.add_argument("--data-file", action="append", default=[], type=Path)
    args = p.parse_args()
    browser, driver, why = find_browser()
    if browser is None:
        print(why, file=sys.stderr)
        return 1
    from pipelines.serve import catalog

    rows = catalog.list_runs(args.root)
    figured = next((r.id for r in rows if r.figures), rows[0].id if rows else None)
    pages = {"runs": "/", "runs_grouped": "/?grouped=1", "parallel": "/parallel", "compare": "/compare",
             "jobs": "/jobs", "leaderboard": "/leaderboard", "submit": "/submit"}
    if figured:
        pages["run"] = f"/runs/{figured}"
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(args.root, workers=0, data_files=args.data_file) as url, chromium(browser, driver) as session:
        for name, path in pages.items():
            if args.only and name not in args.only:
                continue
            session.get(url + path)
            time.sleep(1.0)  # the page's scripts draw their plots
            out = args.out / f"serve_{name}.png"
            full_page_screenshot(session, out)
            print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
