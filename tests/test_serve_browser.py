"""The pages in a real headless browser (the system's Chromium through Selenium and the system's
chromedriver) against ``dis-eval serve`` on a loopback port with one worker: the runs table
sorts and filters, a run page's images decode, and a codes file submitted through the form
becomes a score job that reaches done and puts its row on the leaderboard.

Skipped, with the reason, where no browser can be had (scripts/setup_env.sh installs Debian's
``chromium`` and ``chromium-driver`` when it runs as root or with sudo)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.serve_browser import chromium, find_browser, serve
from tests.serve_tree import FIGURED_RUN, FIXTURE, run_tree

BROWSER, DRIVER, WHY_NOT = find_browser()
pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(BROWSER is None, reason=f"no headless browser: {WHY_NOT}")]
SUBMISSION = "browser codes"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A copy of the small run tree served with one worker (the copy takes the uploads and
    the job table), and a browser session."""
    root = tmp_path_factory.mktemp("serve_browser") / "runs"
    shutil.copytree(run_tree(tmp_path_factory), root, ignore=shutil.ignore_patterns(".dis-eval-service*"))
    log = root.parent / "serve.log"
    with serve(root, workers=1, data_files=[FIXTURE], log=log) as url, chromium(BROWSER, DRIVER) as session:
        session.implicitly_wait(0)
        yield url, session, root


def _wait(condition, timeout_s: float = 30.0, what: str = "the page"):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def _text(session, element_id: str) -> str:  # noqa: ANN001
    """An element's text, read in the page (the polling pages replace their elements)."""
    return session.execute_script("const e = document.getElementById(arguments[0]); return e ? e.textContent : ''",
                                  element_id)


def _run_ids(session) -> list[str]:  # noqa: ANN001
    return session.execute_script(
        "return Array.from(document.querySelectorAll('#runs-table tbody tr[data-run]')).map(r => r.dataset.run)")


def test_runs_table_sorts_and_filters(site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from pipelines.serve import catalog

    url, session, root = site
    rows = catalog.list_runs(root)
    session.get(url + "/")
    assert len(_run_ids(session)) == 6
    # sort by a score: click its header, then again for the other direction
    session.find_element(By.CSS_SELECTOR, 'th[data-column="mig"] a').click()
    ascending = [r.id for r in sorted(rows, key=lambda r: r.metrics["mig"])]
    _wait(lambda: _run_ids(session) == ascending, what="rows sorted by mig")
    session.find_element(By.CSS_SELECTOR, 'th[data-column="mig"] a').click()
    _wait(lambda: _run_ids(session) == ascending[::-1], what="rows sorted by mig, descending")
    # filter: type a condition in the model column's field and press Enter
    field = session.find_element(By.CSS_SELECTOR, 'input[name="f:model"]')
    field.send_keys("echo", Keys.ENTER)
    echo = [i for i in ascending[::-1] if i.startswith("model=echo")]
    _wait(lambda: _run_ids(session) == echo, what="only the Echo runs, still sorted")
    session.find_element(By.CSS_SELECTOR, 'input[name="f:beta"]').send_keys(">=2", Keys.ENTER)
    _wait(lambda: sorted(_run_ids(session)) == sorted(r.id for r in rows if r.config["beta"] == 4.0),
          what="Echo runs at beta 4")
    # grouped over seeds
    session.find_element(By.ID, "toggle-grouped").click()
    _wait(lambda: "mean ± sd" not in session.find_element(By.ID, "toggle-grouped").text, what="grouped view")
    assert len(session.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")) == 1


def test_run_page_images_decode_and_plots_draw(site) -> None:
    from selenium.webdriver.common.by import By

    url, session, _ = site
    session.get(url + "/")
    session.find_element(By.CSS_SELECTOR, f'a[href="/runs/{FIGURED_RUN}"]').click()
    _wait(lambda: session.find_elements(By.CSS_SELECTOR, "img.figure-img"), what="the run page")
    # lazy images load when scrolled to: bring each into view, then check it decoded
    sizes = session.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const imgs = Array.from(document.querySelectorAll('img.figure-img'));
        imgs.forEach(i => { i.loading = 'eager'; i.scrollIntoView(); });
        Promise.all(imgs.map(i => i.decode().then(() => [i.alt, i.naturalWidth, i.naturalHeight],
                                                   () => [i.alt, 0, 0]))).then(done);
    """)
    names = {name for name, _, _ in sizes}
    assert any(n.endswith(".gif") for n in names) and {"latent_vs_factor.png", "mi_heatmap.png",
                                                        "reconstructions.png"} <= names
    assert all(w > 0 and h > 0 for _, w, h in sizes), sizes
    # per-latent rate: one bar per latent; loss curves: one SVG per group of curves, with lines
    bars = session.find_elements(By.CSS_SELECTOR, "#rate-plot svg rect.bar")
    assert len(bars) == 10
    assert session.find_elements(By.CSS_SELECTOR, "#curves svg polyline.curve")
    labels = [t.text for t in session.find_elements(By.CSS_SELECTOR, "#rate-plot svg text.label")]
    assert labels == ["latent", "rate (nats)"]
    errors = [e for e in session.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_parallel_page_draws_a_line_per_run(site) -> None:
    from selenium.webdriver.common.by import By

    url, session, _ = site
    session.get(url + "/parallel")
    assert len(_wait(lambda: session.find_elements(By.CSS_SELECTOR, "#parallel-plot polyline.pc-line"))) == 6
    # score vs beta: a dot per run, a mean marker per (model, beta)
    assert len(session.find_elements(By.CSS_SELECTOR, "#score-plot circle.seed-dot")) == 6
    assert len(session.find_elements(By.CSS_SELECTOR, "#score-plot rect.mean-mark")) == 3
    errors = [e for e in session.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_submitted_codes_are_scored_and_reach_the_leaderboard(site, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, session, _ = site
    # codes that are the factors themselves (plus a little noise): a disentangled representation
    with np.load(FIXTURE, allow_pickle=False) as f:
        factors = f["latents_classes"][:, 1:].astype(np.float32)
    codes = factors + np.random.default_rng(0).normal(0, 0.01, factors.shape).astype(np.float32)
    path = tmp_path / "codes.npz"
    np.savez(path, codes=codes)

    session.get(url + "/submit")
    Select(session.find_element(By.ID, "kind")).select_by_value("codes")
    Select(session.find_element(By.ID, "data")).select_by_value(FIXTURE.name)
    session.find_element(By.ID, "file").send_keys(str(path))
    session.find_element(By.ID, "name").send_keys(SUBMISSION)
    session.find_element(By.CSS_SELECTOR, 'input.metric[value="mig"]').click()
    session.find_element(By.NAME, "set").send_keys("mig.num_train=1000")
    session.find_element(By.ID, "submit-button").click()
    state = _wait(lambda: session.find_elements(By.ID, "submit-state") or session.find_elements(By.ID, "submit-error"),
                  what="the upload's answer")[0]
    assert state.get_attribute("id") == "submit-state", state.text
    job_id = session.execute_script("return document.querySelector('#submit-status a').textContent").split()[-1]

    # the jobs page follows the job to done by itself (its polling; the page is not reloaded)
    session.get(url + "/jobs")
    row = f"document.querySelector('#jobs-body tr[data-job=\"{job_id}\"]')"
    first = _wait(lambda: session.execute_script(f"const r = {row}; return r ? r.innerText : ''"), what="the job's row")
    assert "queued" in first or "running" in first, first
    session.execute_script("window.notReloaded = true")
    _wait(lambda: session.execute_script(f"return {row}.querySelector('.state').textContent") in ("done", "failed"),
          timeout_s=240, what="the score job to finish")
    text = session.execute_script(f"return {row}.innerText")
    assert session.execute_script("return window.notReloaded === true")
    assert "done" in text and "score" in text and SUBMISSION in text, text
    session.execute_script(f"{row}.click()")
    _wait(lambda: _text(session, "job-log").strip(), what="the job's log")
    assert job_id in _text(session, "job-detail-id")

    # the leaderboard for the fixture's data and MIG: the submission first, its number linked
    session.get(url + f"/leaderboard?data={FIXTURE.name}&metric=mig")
    row = session.find_element(By.CSS_SELECTOR, "#leaderboard-table tbody tr")
    assert SUBMISSION in row.text and "submission" in row.text
    link = row.find_element(By.CSS_SELECTOR, "a.score-link")
    assert float(link.text) > 0.5
    link.click()
    _wait(lambda: "/submissions/" in session.current_url, what="the submission's page")
    assert session.current_url.endswith("#score-mig")
    assert session.find_element(By.ID, "score-mig").is_displayed()

