"""A real headless browser and a real server for the service's browser tests and screenshots.

The browser is the system's Chromium (Debian's ``chromium`` and ``chromium-driver`` packages;
``scripts/setup_env.sh`` installs them where it can) driven by Selenium through the system's
chromedriver, never a browser downloaded at run time. The server is ``dis-eval serve`` in a
child process on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BROWSERS: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome")
DRIVERS: tuple[str, ...] = ("chromedriver",)
DRIVER_PATHS: tuple[str, ...] = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
WINDOW = (1400, 1000)


def find_browser() -> tuple[str | None, str | None, str]:
    """(browser, driver, why not): the system's Chromium and chromedriver, or the reason the
    browser tests cannot run here."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, None, "selenium is not installed (pip install -e '.[test]')"
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if browser is None:
        return None, None, ("no Chromium on this machine: apt-get install -y chromium chromium-driver "
                            "(scripts/setup_env.sh does it when run as root or with sudo)")
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None) or next(
        (p for p in DRIVER_PATHS if Path(p).is_file()), None)
    if driver is None:
        return None, None, "Chromium is here but chromedriver is not: apt-get install -y chromium-driver"
    return browser, driver, ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(root: Path, workers: int = 1, data_files: Sequence[Path] = (), log: Path | None = None,
          timeout_s: float = 60.0) -> Iterator[str]:
    """``dis-eval serve --root ROOT`` on a free loopback port; yields its base URL. Stopped
    (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--root", str(root), "--port", str(port),
           "--workers", str(workers)]
    for f in data_files:
        cmd += ["--data-file", str(f)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dis-eval serve exited with {proc.returncode} before answering"
                                   + (f" (log: {log})" if log else ""))
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dis-eval serve did not answer within {timeout_s:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log:
            out.close()


@contextmanager
def chromium(browser: str, driver: str, window: tuple[int, int] = WINDOW) -> Iterator[Any]:
    """A headless Chromium session (Selenium WebDriver) on the system's browser and driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window[0]},{window[1]}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    try:
        session.set_page_load_timeout(60)
        yield session
    finally:
        session.quit()


def full_page_screenshot(session: Any, path: Path, width: int = WINDOW[0], max_height: int = 8000) -> None:
    """The whole page as a PNG (the window grown to the document's height, up to ``max_height``)."""
    height, chrome = session.execute_script(
        "return [Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),"
        " window.outerHeight - window.innerHeight]")
    session.set_window_size(width, min(max(int(height) + int(chrome), 400), max_height))
    session.save_screenshot(str(path))
    session.set_window_size(*WINDOW)
