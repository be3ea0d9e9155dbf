"""The JSON API, every endpoint through an HTTP client, on a small real run tree (trained,
scored and plotted by the project's own code: tests/serve_tree.py): the numbers it serves are
the run folders' numbers, jobs posted to it run and land in the run folders, writes need the
token when the server listens beyond loopback."""

from __future__ import annotations

import io
import json
import shutil
import statistics
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from dis_eval.errors import UserError  # noqa: E402
from dis_eval.run_dir import RunDir  # noqa: E402
from pipelines.serve.settings import ServeSettings  # noqa: E402
from tests.serve_tree import FIGURED_RUN, FIXTURE, run_tree  # noqa: E402

pytestmark = pytest.mark.timeout(600)
TOKEN = "s3cret-token-for-tests"


def _client(settings: ServeSettings):  # noqa: ANN202
    from fastapi.testclient import TestClient

    from pipelines.serve.app import create_app

    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's run tree (this module's jobs write into it)."""
    copy = tmp_path_factory.mktemp("serve_api") / "runs"
    shutil.copytree(run_tree(tmp_path_factory), copy, ignore=shutil.ignore_patterns(".dis-eval-service*"))
    return copy


@pytest.fixture(scope="module")
def settings(root: Path) -> ServeSettings:
    return ServeSettings(root=root, data_files=(str(FIXTURE),), poll_s=0.2, heartbeat_s=0.5)


@pytest.fixture(scope="module")
def client(settings: ServeSettings):  # noqa: ANN201
    return _client(settings)


def _metrics(root: Path, run_id: str) -> dict:
    return json.loads(RunDir(root / run_id).metrics.read_text())


def _run_ids(root: Path) -> list[str]:
    return sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("config.yaml"))


# ---- reads ---------------------------------------------------------------------------------------

def test_healthz_and_openapi(client, root: Path) -> None:
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["root"] == str(root.resolve()) and h["jobs"]["queued"] == 0
    spec = client.get("/openapi.json").json()
    for path in ("/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/figures/{name}", "/api/compare",
                 "/api/leaderboard", "/api/jobs", "/api/jobs/{job_id}", "/api/submissions", "/healthz"):
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200


def test_runs_are_the_run_folders_with_their_scores(client, root: Path) -> None:
    body = client.get("/api/runs").json()
    assert sorted(r["id"] for r in body["rows"]) == _run_ids(root) and len(body["rows"]) == 6
    for row in body["rows"]:
        m = _metrics(root, row["id"])
        assert row["metrics"]["mig"] == m["headline"]["mig"]
        assert row["metrics"]["factor_vae.eval_accuracy"] == m["scores"]["factor_vae"]["eval_accuracy"]
        assert row["status"] == "done" and row["seed"] in (0, 1)
        assert "seed" not in row["group"] and row["group"]["model"] in ("echo", "beta_vae")
    assert {"id", "model", "beta", "mig", "factor_vae"} <= set(body["columns"])
    assert client.get("/api/runs/" + FIGURED_RUN).json()["figures"]  # the plotted run lists figures


def test_filter_sort_and_columns(client, root: Path) -> None:
    rows = client.get("/api/runs", params={"filter": ["model:echo", "beta:>=2"], "sort": "mig", "desc": True}).json()["rows"]
    assert sorted(r["id"] for r in rows) == [i for i in _run_ids(root) if "echo" in i and "beta=4" in i]
    migs = [r["metrics"]["mig"] for r in rows]
    assert migs == sorted(migs, reverse=True)
    picked = client.get("/api/runs", params={"columns": "mig,beta"}).json()["rows"][0]
    assert set(picked["config"]) == {"beta"} and set(picked["metrics"]) == {"mig"}
    bad = client.get("/api/runs", params={"filter": "nosuch:1"})
    assert bad.status_code == 400 and "unknown column 'nosuch'" in bad.json()["error"]
    assert client.get("/api/runs", params={"filter": "beta"}).status_code == 400
    assert client.get("/api/runs", params={"filter": "beta:>x"}).status_code == 400


def test_grouped_runs_give_mean_sd_n_over_seeds(client, root: Path) -> None:
    groups = client.get("/api/runs", params={"grouped": True}).json()["groups"]
    assert len(groups) == 3 and all(len(g["runs"]) == 2 for g in groups)
    for g in groups:
        values = [_metrics(root, r)["headline"]["mig"] for r in g["runs"]]
        stat = g["metrics"]["mig"]
        assert stat["n"] == 2 and stat["mean"] == pytest.approx(statistics.mean(values))
        assert stat["sd"] == pytest.approx(statistics.stdev(values))
        assert sorted(g["seeds"]) == [0, 1]
    assert {tuple(sorted(g["group"].items())) for g in groups} == {
        (("beta", 1.0), ("model", "echo")), (("beta", 4.0), ("model", "echo")), (("beta", 1.0), ("model", "beta_vae"))}


def test_run_detail_has_provenance_figures_and_loss_curves(client, root: Path) -> None:
    d = client.get(f"/api/runs/{FIGURED_RUN}").json()
    m = _metrics(root, FIGURED_RUN)
    assert d["metrics"]["versions"] == m["versions"] and d["metrics"]["evaluated_at"] == m["evaluated_at"]
    assert d["metrics"]["evaluations"]["mig"]["representation"] == "mean"
    assert d["summary"]["status"] == "done" and d["config"]["model"] == "echo" and d["trained"]
    curves = d["loss_curves"]
    assert curves["source"] == "tensorboard"
    steps = [s for s, _ in curves["series"]["train/loss"]]
    assert steps == sorted(steps) and steps[-1] == d["summary"]["step"]
    assert any(n.endswith(".gif") for n in d["figures"]) and any(n.endswith(".png") for n in d["figures"])
    assert client.get("/api/runs/nope").status_code == 404
    assert client.get("/api/runs/nope").json() == {"error": "no run 'nope' below the served folder"}


def test_figures_are_served_and_decode_and_nothing_else_is(client, root: Path) -> None:
    from PIL import Image

    names = client.get(f"/api/runs/{FIGURED_RUN}").json()["figures"]
    for name in names:
        if not name.endswith((".png", ".gif")):
            continue
        r = client.get(f"/api/runs/{FIGURED_RUN}/figures/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == ("image/gif" if name.endswith(".gif") else "image/png")
        img = Image.open(io.BytesIO(r.content))
        assert img.size[0] > 0 and img.size[1] > 0
        assert r.content == (root / FIGURED_RUN / "figures" / name).read_bytes()
    for bad in ("../config.yaml", "..%2Fconfig.yaml", "missing.png", "%2e%2e%2fmetrics.json"):
        assert client.get(f"/api/runs/{FIGURED_RUN}/figures/{bad}").status_code == 404, bad
    assert client.get("/api/runs/..%2F..%2Fetc/figures/passwd").status_code == 404
    link = root / FIGURED_RUN / "figures" / "link.png"
    link.symlink_to(root / FIGURED_RUN / "config.yaml")
    try:
        assert client.get(f"/api/runs/{FIGURED_RUN}/figures/link.png").status_code == 404
        assert "link.png" not in client.get(f"/api/runs/{FIGURED_RUN}").json()["figures"]
    finally:
        link.unlink()


def test_compare_table_two_layout_with_the_papers_numbers(client, root: Path) -> None:
    t = client.get("/api/compare").json()
    assert t["group_by"] == ["model", "beta"] and t["scores"] == ["factor_vae", "mig"]
    assert len(t["rows"]) == 3 and all(r["n"] == 2 for r in t["rows"])
    rows = {label: cells for label, cells in zip(t["table2_rows"], t["table2_cells"], strict=True)}
    cols = [tuple(c) for c in t["table2_columns"]]
    assert ("full", "factor_vae", "echo") in cols and ("full", "mig", "vae") in cols
    beta1 = dict(zip(cols, rows["β = 1"], strict=True))
    assert beta1[("full", "factor_vae", "echo")]["paper"] == 0.83   # the paper's independent-factor row
    assert beta1[("full", "mig", "vae")]["paper"] == 0.07
    echo_b1 = [r for r in _run_ids(root) if "model=echo__beta=1__" in r]
    values = [_metrics(root, r)["headline"]["mig"] for r in echo_b1]
    from dis_eval.results import format_cell

    assert beta1[("full", "mig", "echo")]["text"] == format_cell(statistics.mean(values), statistics.stdev(values), 2)
    assert dict(zip(cols, rows["β = 4"], strict=True))[("full", "mig", "echo")]["paper"] is None  # not identified
    by_model = client.get("/api/compare", params={"group_by": "model"}).json()
    assert sorted(r["group"]["model"] for r in by_model["rows"]) == ["beta_vae", "echo"]
    assert {r["group"]["model"]: r["n"] for r in by_model["rows"]} == {"beta_vae": 2, "echo": 4}
    assert client.get("/api/compare", params={"group_by": "nosuchkey"}).status_code == 400


def test_leaderboard_ranks_scores_with_their_provenance(client, root: Path) -> None:
    lb = client.get("/api/leaderboard", params={"metric": "mig"}).json()
    values = [r["value"] for r in lb["rows"]]
    assert values == sorted(values, reverse=True) and len(values) == 6
    for row in lb["rows"]:
        assert row["kind"] == "run" and row["value"] == _metrics(root, row["id"])["headline"]["mig"]
        assert row["provenance"]["versions"]["torch"] and row["provenance"]["evaluation"]["protocol"] == row["protocol"]
    assert {"data": "dsprites_real_fixture.npz", "subset": "full", "protocol": "full", "metric": "mig"} in lb["boards"]
    assert client.get("/api/leaderboard", params={"metric": "mig", "protocol": "subset"}).json()["rows"] == []
    assert client.get("/api/leaderboard", params={"metric": "bogus"}).status_code == 400


# ---- jobs and submissions -----------------------------------------------------------------------------

def _run_jobs(settings: ServeSettings, n: int) -> None:
    from pipelines.serve.worker import run_worker

    t = threading.Thread(target=run_worker, args=(settings, "api-test-worker"), kwargs={"max_jobs": n})
    t.start()
    t.join(timeout=400)
    assert not t.is_alive()


def test_jobs_and_a_submission_run_and_land_in_runs_and_leaderboard(client, settings: ServeSettings, root: Path) -> None:
    target = sorted(i for i in _run_ids(root) if "beta_vae" in i)[0]
    before = _metrics(root, target)
    r = client.post("/api/jobs", json={"kind": "evaluate", "params": {
        "run": target, "metrics": ["sap"], "set": ["sap.num_train=200", "sap.num_test=100", "sap.batch_size=16"]}})
    assert r.status_code == 201, r.text
    evaluate_id = r.json()["id"]
    buf = io.BytesIO()
    np.savez(buf, codes=np.random.default_rng(0).normal(size=(3000, 5)).astype(np.float32))
    s = client.post("/api/submissions", data={"kind": "codes", "name": "random codes", "data": FIXTURE.name,
                                              "metrics": "mig", "set": "mig.num_train=256,mig.batch_size=16"},
                    files={"file": ("codes.npz", buf.getvalue())})
    assert s.status_code == 201, s.text
    sub_id = s.json()["id"]
    queued = client.post("/api/jobs", json={"kind": "train", "params": {"config": "tiny_cpu", "name": "never"}}).json()
    twice = client.post("/api/jobs", json={"kind": "train", "params": {"config": "tiny_cpu", "name": "never"}})
    assert twice.status_code == 400 and twice.json()["error"] == f"job {queued['id']} already writes never; choose another name"
    cancelled = client.delete(f"/api/jobs/{queued['id']}").json()
    assert cancelled["state"] == "cancelled"
    jobs = client.get("/api/jobs").json()
    assert jobs["counts"]["queued"] == 2 and jobs["counts"]["cancelled"] == 1
    assert [j["id"] for j in jobs["jobs"]][:3] == [queued["id"], sub_id, evaluate_id]  # newest first

    _run_jobs(settings, 2)

    ev = client.get(f"/api/jobs/{evaluate_id}").json()
    assert ev["state"] == "done", ev["error"]
    after = _metrics(root, target)
    assert ev["result"]["headline"]["sap"] == after["headline"]["sap"]
    assert after["headline"]["mig"] == before["headline"]["mig"]  # merged, not replaced
    assert "sap" in ev["log_tail"]
    assert client.get("/api/runs", params={"filter": f"id:{target}"}).json()["rows"][0]["metrics"]["sap"] == after["headline"]["sap"]
    sub = client.get(f"/api/jobs/{sub_id}").json()
    assert sub["state"] == "done", sub["error"]
    mig = sub["result"]["headline"]["mig"]
    lb = client.get("/api/leaderboard", params={"metric": "mig", "data": FIXTURE.name}).json()["rows"]
    mine = [r for r in lb if r["kind"] == "submission"]
    assert len(mine) == 1 and mine[0]["id"] == sub_id and mine[0]["name"] == "random codes" and mine[0]["value"] == mig
    assert mine[0]["provenance"]["encoder"]["kind"] == "codes"
    subs = client.get("/api/submissions").json()["submissions"]
    assert [x["id"] for x in subs] == [sub_id] and subs[0]["metrics"]["headline"]["mig"] == mig
    assert client.get("/api/jobs/nope").status_code == 404


def test_job_requests_are_validated(client) -> None:
    cases = [
        ({"kind": "train", "params": {"config": "../../etc/passwd"}}, "config must be one of"),
        ({"kind": "train", "params": {"config": "tiny_cpu", "overrides": {"beta": -1}}}, "beta must be"),
        ({"kind": "train", "params": {"config": "tiny_cpu", "name": "../outside"}}, "relative folder name"),
        ({"kind": "train", "params": {"config": "tiny_cpu", "name": FIGURED_RUN}}, "already exists"),
        ({"kind": "evaluate", "params": {"run": "nope"}}, "no run 'nope'"),
        ({"kind": "evaluate", "params": {"run": FIGURED_RUN, "metrics": ["nosuch"]}}, "nosuch"),
        ({"kind": "sweep", "params": {"sweep": "echo"}}, "unknown key"),
        ({"kind": "score", "params": {}}, "POST /api/submissions"),
        ({"kind": "train", "params": {"config": "tiny_cpu", "rm": 1}}, "unknown parameter"),
    ]
    for body, message in cases:
        r = client.post("/api/jobs", json=body)
        assert r.status_code in (400, 404), (body, r.text)
        assert message in r.json()["error"] and "\n" not in r.json()["error"], (body, r.json())
    assert client.post("/api/jobs", content=b"not json").status_code == 400


def test_writes_need_the_token_beyond_loopback(root: Path) -> None:
    with pytest.raises(UserError, match="--token"):
        ServeSettings(root=root, host="0.0.0.0")
    c = _client(ServeSettings(root=root, host="0.0.0.0", token=TOKEN))
    job = {"kind": "train", "params": {"config": "tiny_cpu", "name": "tokened"}}
    for headers in ({}, {"Authorization": "Bearer wrong-token-123"}, {"X-Token": "nope"}):
        r = c.post("/api/jobs", json=job, headers=headers)
        assert r.status_code == 401 and "token" in r.json()["error"]
    assert c.post("/api/submissions", files={"file": ("c.npz", b"x")}, data={"kind": "codes"}).status_code == 401
    assert c.get("/api/runs").status_code == 200  # reads are open
    ok = c.post("/api/jobs", json=job, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201
    assert c.delete(f"/api/jobs/{ok.json()['id']}").status_code == 401
    assert c.delete(f"/api/jobs/{ok.json()['id']}", headers={"X-Token": TOKEN}).json()["state"] == "cancelled"


def test_run_cache_reuses_an_unchanged_run_and_rereads_a_changed_one(tmp_path: Path) -> None:
    """The service keeps runs read (pipelines.serve.catalog.RunCache) only while their files are
    unchanged: a rewritten, removed or re-created metrics.json or config is read again."""
    from dis_eval.atomic import atomic_write_json
    from pipelines.serve.catalog import RunCache

    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("model: echo\nseed: 0\n")
    atomic_write_json(run / "metrics.json", {"headline": {"mig": 0.1}})
    cache = RunCache(size=1)
    first = cache.load(run)
    assert cache.load(run) is first and first.scores()["mig"] == 0.1
    atomic_write_json(run / "metrics.json", {"headline": {"mig": 0.2}})  # how evaluate writes it
    assert cache.load(run).scores()["mig"] == 0.2
    (run / "metrics.json").unlink()
    assert cache.load(run).metrics is None
    (run / "config.yaml").write_text("model: echo\nseed: 1\n")
    assert cache.load(run).seed == 1
    other = tmp_path / "o"
    shutil.copytree(run, other)
    kept = cache.load(run)
    cache.load(other)  # size 1: the least recently used run goes
    assert cache.load(run) is not kept
