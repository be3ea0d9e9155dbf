"""The service's HTML pages through an HTTP client, on a small real run tree (tests/serve_tree.py):
what each page shows, its sorting, filtering and columns, links that resolve, and one-line
error pages."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from pipelines.serve import catalog  # noqa: E402
from pipelines.serve.pages import fmt_number, fmt_result, fmt_stat  # noqa: E402
from tests.serve_tree import FIGURED_RUN, run_tree  # noqa: E402

pytestmark = pytest.mark.timeout(600)

RUN_LINK = re.compile(r'<tr data-run="([^"]+)">')


def _client(root: Path, token: str | None = None):  # noqa: ANN202
    from fastapi.testclient import TestClient

    from pipelines.serve.app import create_app
    from pipelines.serve.settings import ServeSettings

    return TestClient(create_app(ServeSettings(root=root, workers=0, token=token)), raise_server_exceptions=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_tree(tmp_path_factory)


@pytest.fixture(scope="module")
def client(tree: Path):  # noqa: ANN201
    return _client(tree)


def _page_json(html: str, element_id: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m, element_id
    return json.loads(m.group(1))


def _headers(html: str) -> list[str]:
    head = html.split('<thead>', 1)[1].split('</tr>', 1)[0]
    return [unescape(re.sub(r"<[^>]+>", "", h)).replace("▲", "").replace("▼", "").strip()
            for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]


def test_runs_table_lists_every_run_with_the_varying_settings_and_scores(client, tree: Path) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    ids = RUN_LINK.findall(r.text)
    assert sorted(ids) == sorted(row.id for row in catalog.list_runs(tree)) and len(ids) == 6
    # id, status, seed, the settings that vary (derived ones like family left out), headline scores
    assert _headers(r.text) == ["id", "status", "seed", "model", "beta", "factor_vae", "mig"]
    for run_id in ids:
        assert f'href="/runs/{run_id}"' in r.text
    mig = {row.id: row.metrics["mig"] for row in catalog.list_runs(tree)}
    assert fmt_number(mig[ids[0]]) in r.text


def test_runs_sort_filter_and_columns(client, tree: Path) -> None:
    rows = catalog.list_runs(tree)
    by_mig = [row.id for row in sorted(rows, key=lambda row: row.metrics["mig"], reverse=True)]
    assert RUN_LINK.findall(client.get("/?sort=mig&desc=1").text) == by_mig
    assert RUN_LINK.findall(client.get("/?sort=mig").text) == by_mig[::-1]
    # the header links toggle the direction of the sorted column
    assert "sort=mig&amp;desc=1" in client.get("/?sort=mig").text

    echo = RUN_LINK.findall(client.get("/", params={"f:model": "echo"}).text)
    assert sorted(echo) == sorted(row.id for row in rows if row.config["model"] == "echo") and len(echo) == 4
    high = RUN_LINK.findall(client.get("/", params={"f:beta": ">=2", "f:model": "echo"}).text)
    assert sorted(high) == sorted(row.id for row in rows if row.config["beta"] == 4.0) and len(high) == 2
    assert RUN_LINK.findall(client.get("/", params={"filter": "model:beta_vae"}).text) == [
        row.id for row in rows if row.config["model"] == "beta_vae"]
    # a blank filter field is no filter
    assert len(RUN_LINK.findall(client.get("/", params={"f:model": "", "f:beta": " "}).text)) == 6

    chosen = client.get("/", params=[("col", "id"), ("col", "lr"), ("col", "mig.discrete_mig")]).text
    assert _headers(chosen) == ["id", "lr", "mig.discrete_mig"]
    # the column chooser lists every column, the chosen ones ticked
    for column in catalog.columns(rows):
        assert f'name="col" value="{column}"' in chosen
    assert 'value="lr" checked' in chosen and 'value="beta" checked' not in chosen
    # filtering on a column that is not shown keeps the filter in the form
    kept = client.get("/", params=[("col", "id"), ("f:model", "echo")]).text
    assert '<input type="hidden" name="f:model" value="echo">' in kept


def test_runs_bad_input_is_a_one_line_error_page(client) -> None:
    r = client.get("/", params={"f:beta": ">x"})
    assert r.status_code == 400 and "needs a number" in r.text and "<html" in r.text
    r = client.get("/", params={"col": "nope"})
    assert r.status_code == 400 and "unknown column(s) nope" in r.text
    r = client.get("/", params={"sort": "nope"})
    assert r.status_code == 400 and "unknown column 'nope' to sort by" in unescape(r.text)


def test_grouped_runs_show_mean_and_sd_over_seeds(client, tree: Path) -> None:
    r = client.get("/?grouped=1")
    assert r.status_code == 200
    groups = catalog.grouped_runs(tree)
    assert len(groups) == 3 and all(len(g.runs) == 2 for g in groups)
    for g in groups:
        assert fmt_stat(g.metrics["mig"]) in r.text
        for run_id in g.runs:
            assert f'href="/runs/{run_id}"' in r.text
    # from the per-run view sorted by id, the grouped view drops the sort and keeps the filters
    per_run = client.get("/", params={"sort": "id", "f:model": "echo"}).text
    toggle = unescape(re.search(r'href="([^"]+)" id="toggle-grouped"', per_run).group(1))
    assert client.get("/" + toggle).status_code == 200 and "sort=" not in toggle and "f%3Amodel=echo" in toggle
    echo = client.get("/", params={"grouped": "1", "f:model": "echo"}).text
    assert echo.count("seed 0</a>") == 2 and '<input type="hidden" name="f:model" value="echo">' in echo
    mig = [catalog.MetricStat(mean=0.5, sd=0.25, n=2), catalog.MetricStat(mean=0.5, sd=None, n=1),
           catalog.MetricStat(mean=None, sd=None, n=0)]
    assert [fmt_stat(s) for s in mig] == ["0.5 ± 0.25", "0.5", "–"]


def test_run_page_shows_figures_scores_with_provenance_and_curves(client, tree: Path) -> None:
    r = client.get(f"/runs/{FIGURED_RUN}")
    assert r.status_code == 200
    detail = catalog.run_detail(tree, FIGURED_RUN)
    images = re.findall(r'<img src="([^"]+)"', r.text)
    shown = {Path(u).name for u in images}
    assert shown == {f for f in detail.figures if Path(f).suffix in (".png", ".gif")}
    for section in ("Latent traversals", "Mean latent vs factor (Fig. 4)", "Latent x factor mutual information",
                    "Reconstructions"):
        assert section in unescape(r.text)
    assert any(u.endswith(".gif") for u in images)
    for url in images:
        got = client.get(url)
        assert got.status_code == 200 and got.headers["content-type"].startswith("image/") and got.content[:3] in (
            b"\x89PN", b"GIF")
    for pdf in (f for f in detail.figures if f.endswith(".pdf")):
        assert f"/figures/{pdf}" in r.text
    for metric, value in detail.metrics["headline"].items():
        assert f'id="score-{metric}"' in r.text
        assert fmt_number(value) in r.text
    assert "representation <b>mean</b>" in r.text and "dsprites_real_fixture.npz" in r.text
    plots = _page_json(r.text, "plot-data")
    assert plots["rate"] == pytest.approx(detail.summary["rate_per_dim"])
    assert plots["curves_source"] == "tensorboard" and "train/loss" in plots["curves"]
    assert plots["curves"]["train/loss"] == detail.loss_curves.series["train/loss"]


def test_run_page_without_figures_and_missing_runs(client, tree: Path) -> None:
    other = next(row.id for row in catalog.list_runs(tree) if row.id != FIGURED_RUN)
    r = client.get(f"/runs/{other}")
    assert r.status_code == 200 and "No figures yet" in r.text and f"dis-eval plot {other}" in r.text
    for bad in ("nope", "%2e%2e/%2e%2e/etc", ".dis-eval-service", "model=echo__beta=1__seed=0/figures"):
        r = client.get(f"/runs/{bad}")
        assert r.status_code == 404 and 'id="error-message"' in r.text, bad
    assert client.get("/runs/../x").status_code == 404


def test_parallel_page_data(client, tree: Path) -> None:
    r = client.get("/parallel")
    assert r.status_code == 200
    data = _page_json(r.text, "plot-data")
    assert data["keys"] == ["model", "beta"] and data["numeric_keys"] == ["beta"]
    assert data["scores"] == ["factor_vae", "mig"] and data["x_default"] == "beta"
    rows = {row.id: row for row in catalog.list_runs(tree)}
    assert {run["id"] for run in data["runs"]} == set(rows)
    for run in data["runs"]:
        assert run["config"] == {"model": rows[run["id"]].config["model"], "beta": rows[run["id"]].config["beta"]}
        assert run["scores"]["mig"] == pytest.approx(rows[run["id"]].metrics["mig"])
        assert run["url"] == f"/runs/{run['id']}"
    filtered = _page_json(client.get("/parallel", params={"f:model": "echo"}).text, "plot-data")
    assert len(filtered["runs"]) == 4 and filtered["keys"] == ["beta"]
    # one beta only: still plotted against beta, not a parallel axis
    one = _page_json(client.get("/parallel", params={"f:model": "beta_vae"}).text, "plot-data")
    assert one["keys"] == [] and one["numeric_keys"] == ["beta"] and one["x_default"] == "beta"
    assert [run["config"] for run in one["runs"]] == [{"beta": 1.0}] * 2


def test_compare_page_with_the_papers_numbers(client, tree: Path) -> None:
    from dis_eval.reference.paper import PAPER_CITATION

    r = client.get("/compare")
    assert r.status_code == 200
    table = catalog.compare_table(tree)
    text = unescape(r.text)
    for row in table.rows:
        assert fmt_stat(row.metrics["mig"]) in text
    for label in table.table2_rows:
        assert f"<th>{label}</th>" in text
    papers = [c.paper for line in table.table2_cells for c in line if c.paper is not None]
    shown = re.findall(r'<span class="paper" title="the paper.s Table 2">([^<]+)</span>', r.text)
    assert papers and shown == [fmt_number(p) for p in papers]
    assert PAPER_CITATION in text
    by_model = client.get("/compare", params={"group_by": "model"})
    assert by_model.status_code == 200 and _headers(by_model.text)[:3] == ["model", "n", "seeds"]
    bad = client.get("/compare", params={"group_by": "nope"})
    assert bad.status_code == 400 and "no run has config key(s) nope" in bad.text


def test_leaderboard_numbers_link_to_their_provenance(client, tree: Path) -> None:
    r = client.get("/leaderboard", params={"metric": "mig"})
    assert r.status_code == 200
    rows = catalog.leaderboard(tree, metric="mig")
    links = re.findall(r'<a href="([^"]+)" class="score-link"[^>]*>([^<]+)</a>', r.text)
    assert [text for _, text in links] == [fmt_number(row.value) for row in rows] and len(rows) == 6
    for (url, _), row in zip(links, rows, strict=True):
        page, anchor = url.split("#")
        assert page == f"/runs/{row.id}" and anchor == "score-mig"
        assert f'id="{anchor}"' in client.get(page).text
    # the default board, and every board with scores listed as a link
    default = client.get("/leaderboard").text
    for board in catalog.leaderboard_boards(tree):
        assert f"metric={board['metric']}" in default
    empty = client.get("/leaderboard", params={"metric": "mig", "subset": "nope"})
    assert "No scores on this board yet" in empty.text
    assert client.get("/leaderboard", params={"metric": "nope"}).status_code == 400


def test_jobs_page_lists_the_queue(tmp_path: Path) -> None:
    c = _client(tmp_path)
    assert "No jobs yet" in c.get("/jobs").text
    assert "below the served folder yet" in c.get("/").text
    queue = c.app.state.queue
    job = queue.submit("train", {"name": "page-test", "config": "tiny_cpu"})
    r = c.get("/jobs")
    assert r.status_code == 200
    assert f'data-job="{job.id}"' in r.text and "page-test" in r.text and "state-queued" in r.text
    assert "queued 1" in r.text
    assert _page_json(c.get(f"/jobs?job={job.id}").text, "jobs-data")["selected"] == job.id


def test_submit_page_offers_what_the_upload_accepts(client) -> None:
    from dis_eval.metrics import REGISTRY
    from pipelines.serve.uploads import UPLOAD_KINDS, data_choices

    r = client.get("/submit")
    assert r.status_code == 200
    assert 'action="/api/submissions"' in r.text and 'enctype="multipart/form-data"' in r.text
    for kind in UPLOAD_KINDS:
        assert f'<option value="{kind}">' in r.text
    for metric in REGISTRY:
        assert f'value="{metric}"' in r.text
    settings = client.app.state.settings
    assert _page_json(r.text, "submit-data")["data_choices"] == {k: data_choices(settings, k) for k in UPLOAD_KINDS}


def test_forms_ask_for_the_token_when_the_server_has_one(tmp_path: Path) -> None:
    plain, guarded = _client(tmp_path), _client(tmp_path, token="a-long-token")
    for path in ("/jobs", "/submit"):
        assert 'id="token"' not in plain.get(path).text
        assert 'id="token"' in guarded.get(path).text
    assert _page_json(guarded.get("/submit").text, "submit-data")["needs_token"] is True


def test_submission_page(tree: Path, tmp_path: Path) -> None:
    from dis_eval.atomic import atomic_write_json
    from pipelines.serve.settings import submissions_dir

    c = _client(tmp_path)
    folder = submissions_dir(tmp_path) / "abc123"
    folder.mkdir(parents=True)
    metrics = json.loads((tree / FIGURED_RUN / "metrics.json").read_text())
    atomic_write_json(folder / "metrics.json", metrics)
    atomic_write_json(folder / catalog.SUBMISSION_FILE, {"id": "abc123", "name": "my codes", "kind": "codes",
                                                         "data": "grid", "scored_at": "2026-01-01T00:00:00Z"})
    r = c.get("/submissions/abc123")
    assert r.status_code == 200 and "my codes" in r.text and 'id="score-mig"' in r.text
    board = c.get("/leaderboard", params={"metric": "mig"}).text
    assert 'href="/submissions/abc123#score-mig"' in board
    assert c.get("/submissions/nope").status_code == 404


def test_pages_load_nothing_from_elsewhere(client) -> None:
    for path in ("/", "/?grouped=1", "/parallel", f"/runs/{FIGURED_RUN}", "/compare", "/jobs", "/leaderboard",
                 "/submit"):
        html = client.get(path).text
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs and all(not re.match(r"^(https?:)?//", ref) for ref in refs), path
        assert '<script src="/static/serve.js"></script>' in html
    for name in ("serve.js", "serve.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_job_results_in_words() -> None:
    assert fmt_result({"submission": "ab12", "headline": {"mig": 0.80771, "factor_vae": 1.0}}) == (
        "submission ab12, mig 0.8077, factor_vae 1")
    assert fmt_result({"run": "r", "status": "done", "step": None}) == "run r, status done"
    assert fmt_result(None) == ""


def test_number_formatting() -> None:
    assert [fmt_number(v) for v in (None, 0, 3, 0.0, 0.123456, 12345.678, 1.5e-5, float("nan"), True)] == [
        "–", "0", "3", "0", "0.1235", "1.235e+04", "1.500e-05", "–", "true"]
