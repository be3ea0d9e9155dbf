"""Uploads: every kind of bad file is refused with a one-line JSON error (400, or 413 over the
size limit) and leaves nothing behind; good weights and a good ONNX encoder become score jobs
that a worker runs (the ONNX one in its resource-limited process) and that give the same codes;
and ``dis-eval evaluate --encoder`` takes ONNX and ``torch.export`` files."""

from __future__ import annotations

import io
import json
import pickle
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import torch  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from pipelines.serve.settings import ServeSettings  # noqa: E402

pytestmark = pytest.mark.timeout(600)
FIXTURE = Path(__file__).resolve().parent / "data" / "dsprites_real_fixture.npz"
ROWS = 3000  # the fixture's rows
SMALL_MIG = "mig.num_train=256,mig.batch_size=16"


def _client(settings: ServeSettings):  # noqa: ANN202
    from fastapi.testclient import TestClient

    from pipelines.serve.app import create_app

    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ServeSettings:
    root = tmp_path_factory.mktemp("serve_uploads")
    return ServeSettings(root=root, data_files=(str(FIXTURE),), max_codes_bytes=2 * 1024 * 1024,
                         poll_s=0.2, heartbeat_s=0.5)


@pytest.fixture(scope="module")
def client(settings: ServeSettings):  # noqa: ANN201
    return _client(settings)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _post(client, kind: str, payload: bytes, filename: str, **fields):  # noqa: ANN001, ANN202
    data = {"kind": kind, "data": FIXTURE.name, "metrics": "mig", "set": SMALL_MIG, **fields}
    return client.post("/api/submissions", data=data, files={"file": (filename, payload)})


def _refused(response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "\n" not in error and error
    for f in fragments:
        assert f in error, (f, error)
    return error


# ---- ONNX models, built by hand ----------------------------------------------------------------------

def onnx_encoder(latents: int = 3, input_shape=("n", 1, 64, 64), domain: str = "", seed: int = 0) -> onnx.ModelProto:
    """x [N, 1, 64, 64] -> Flatten -> MatMul (4096 x latents): a linear encoder."""
    w = np.random.default_rng(seed).normal(size=(int(np.prod(input_shape[1:])), latents)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["z"])]
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        nodes.append(helper.make_node("Steal", ["z"], ["z2"], domain=domain))
        opsets.append(helper.make_opsetid(domain, 1))
    graph = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
                              [helper.make_tensor_value_info("z2" if domain else "z", TensorProto.FLOAT, ["n", latents])],
                              [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.tobytes(), raw=True)])
    return helper.make_model(graph, opset_imports=opsets)


def test_codes_uploads_are_refused_with_one_line_each(client, settings: ServeSettings) -> None:
    good = np.random.default_rng(0).normal(size=(ROWS, 4)).astype(np.float32)
    nan = good.copy()
    nan[7, 2] = np.nan
    obj = np.empty(ROWS, dtype=object)
    obj[:] = [[1.0]] * ROWS
    cases = [
        (_npz(codes=obj), "object array (a pickle)"),
        (pickle.dumps({"codes": good}), "cannot read codes file"),
        (_npz(codes=nan), "NaN/infinite values (first at row 7)"),
        (_npz(codes=good.reshape(ROWS, 2, 2)), "must be a 2-D array"),
        (_npz(codes=good[:100]), f"has 100 code rows but the data set has {ROWS}"),
        (_npz(codes=np.zeros((ROWS, 4), dtype=np.complex64)), "real numbers"),
        (_npz(latents=good), "has no 'codes' array"),
        (b"", "empty"),
    ]
    for payload, fragment in cases:
        _refused(_post(client, "codes", payload, "c.npz"), 400, fragment)
    big = _npz(codes=np.zeros((ROWS, 200), dtype=np.float32))  # 2.4 MB > this server's 2 MiB for codes
    _refused(_post(client, "codes", big, "c.npz"), 413, "larger than this server's limit of 2 MiB")
    _refused(_post(client, "codes", _npz(codes=good), "c.npz", data="grid"), 400, "has 3000 code rows but the data set has 737280")
    _refused(_post(client, "codes", _npz(codes=good), "c.npz", data="/etc/passwd"), 400, "data must be one of")
    _refused(_post(client, "codes", _npz(codes=good), "c.npz", metrics="nosuch"), 400, "nosuch")
    _refused(_post(client, "pickle", b"x", "c.pkl"), 400, "kind must be one of codes, weights, onnx")
    # nothing refused is kept, no job was made
    assert not any(settings.uploads_dir.iterdir()) if settings.uploads_dir.exists() else True
    assert client.get("/api/jobs").json()["jobs"] == []


def test_a_body_over_the_limit_is_413_before_it_is_read(settings: ServeSettings) -> None:
    small = _client(ServeSettings(root=settings.root, max_codes_bytes=1000, max_weights_bytes=1000, max_onnx_bytes=1000))
    r = small.post("/api/submissions", content=b"x" * 200_000,
                   headers={"content-type": "multipart/form-data; boundary=zz"})
    _refused(r, 413, "larger than this server's limit")


def test_onnx_uploads_are_refused_with_one_line_each(client, tmp_path: Path) -> None:
    external = onnx_encoder()
    path = tmp_path / "ext.onnx"
    onnx.save_model(external, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.bin", size_threshold=0)
    cases = [
        (path.read_bytes(), "keeps tensor 'w' in external data"),
        (onnx_encoder(domain="com.example.evil").SerializeToString(), "outside the standard ONNX domain (com.example.evil)"),
        (onnx_encoder(input_shape=("n", 3, 32, 32)).SerializeToString(), "takes shape ['n', 3, 32, 32]"),
        (b"\x08\x07garbage-not-onnx" * 10, "is not an ONNX model"),
    ]
    for payload, fragment in cases:
        _refused(_post(client, "onnx", payload, "enc.onnx"), 400, fragment)


class NotWeights:
    """A class a weights file may not instantiate (weights_only refuses foreign globals)."""

    def __init__(self) -> None:
        self.x = 1


def _model(model: str, latents: int, d_max: int | None = None) -> torch.nn.Module:
    from dis_eval.models.build import build_model
    from dis_eval.models.spec import ModelSpec

    torch.manual_seed(0)
    return build_model(ModelSpec(model=model, latents=latents, d_max=d_max))[0].eval()


def _torch_bytes(obj) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_weights_uploads_are_refused_with_one_line_each(client) -> None:
    from safetensors.torch import save as save_safetensors

    vae4 = _model("beta_vae", 4).state_dict()
    cases = [
        (_torch_bytes(vae4), "w.pt", {"model": "beta_vae", "latents": "10"}, "do not fit the built-in beta_vae with 10 latents"),
        (save_safetensors(vae4), "w.safetensors", {"model": "beta_vae", "latents": "6"}, "size mismatch"),
        (_torch_bytes(_model("echo", 4, d_max=16).state_dict()), "w.pt", {"model": "beta_vae", "latents": "4"},
         "do not fit the built-in beta_vae"),
        (_torch_bytes({"x": NotWeights()}), "w.pt", {"model": "beta_vae"}, "weights_only=True"),
        (_torch_bytes(vae4), "w.pt", {}, "give model, latents"),
        (_torch_bytes(vae4), "w.pt", {"model": "resnet50"}, "model must be one of"),
        (b"not safetensors", "w.safetensors", {"model": "beta_vae", "latents": "4"}, "not a readable safetensors file"),
        (_torch_bytes(vae4), "w.pt", {"model": "echo", "latents": "4"}, "d_max"),
    ]
    for payload, filename, fields, fragment in cases:
        _refused(_post(client, "weights", payload, filename, **fields), 400, fragment)


# ---- good uploads become score jobs -------------------------------------------------------------------

def _export_onnx(model: torch.nn.Module, path: Path) -> None:
    class Encoder(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m.encode(x)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(model), (torch.rand(2, 1, 64, 64),), str(path), input_names=["x"],
                          output_names=["z"], dynamic_axes={"x": {0: "n"}, "z": {0: "n"}}, dynamo=False)


def test_weights_and_onnx_of_one_model_score_alike(client, settings: ServeSettings, tmp_path: Path) -> None:
    from safetensors.torch import save as save_safetensors

    from pipelines.serve.worker import run_worker

    model = _model("beta_vae", 4)
    _export_onnx(model, tmp_path / "enc.onnx")
    w = _post(client, "weights", save_safetensors(model.state_dict()), "w.safetensors", model="beta_vae", latents="4",
              name="vae weights")
    o = _post(client, "onnx", (tmp_path / "enc.onnx").read_bytes(), "enc.onnx", name="vae onnx")
    assert w.status_code == 201 and o.status_code == 201, (w.text, o.text)
    assert w.json()["params"]["architecture"] == {"model": "beta_vae", "latents": 4, "d_max": None}
    t = threading.Thread(target=run_worker, args=(settings, "uploads-worker"), kwargs={"max_jobs": 2})
    t.start()
    t.join(timeout=500)
    jobs = {j: client.get(f"/api/jobs/{j}").json() for j in (w.json()["id"], o.json()["id"])}
    for job in jobs.values():
        assert job["state"] == "done", (job["error"], job["log_tail"])
    codes = [np.load(settings.uploads_dir / j / "codes.npz")["codes"] for j in jobs]
    expected = model.encode(torch.as_tensor(_fixture_images()[:64]))[0].detach().numpy()
    np.testing.assert_allclose(codes[0][:64], expected, atol=1e-5)  # the weights job encoded with this model
    np.testing.assert_allclose(codes[1], codes[0], atol=1e-4)  # onnxruntime gives the same codes
    assert "pipelines.serve.onnx_runner" in jobs[o.json()["id"]]["log_tail"] and "--memory-bytes" in jobs[o.json()["id"]]["log_tail"]
    board = client.get("/api/leaderboard", params={"metric": "mig", "data": FIXTURE.name}).json()["rows"]
    assert sorted(r["name"] for r in board) == ["vae onnx", "vae weights"]
    assert {r["model"] for r in board if r["name"] == "vae weights"} == {"beta_vae"}
    for job_id in jobs:
        info = json.loads((settings.submissions_dir / job_id / "submission.json").read_text())
        assert info["id"] == job_id


def _fixture_images() -> np.ndarray:
    with np.load(FIXTURE) as f:
        return f["imgs"][:, None].astype(np.float32)


def test_onnx_runner_limits_memory(tmp_path: Path) -> None:
    """An encoder needing more memory than its limit stops with a one-line error, not the server."""
    import subprocess
    import sys

    path = tmp_path / "enc.onnx"
    path.write_bytes(onnx_encoder().SerializeToString())
    r = subprocess.run([sys.executable, "-m", "pipelines.serve.onnx_runner", str(path), "--data", str(FIXTURE),
                        "--out", str(tmp_path / "c.npz"), "--memory-bytes", str(200 * 1024 * 1024), "--cpu-s", "60"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and not (tmp_path / "c.npz").exists()
    assert r.stderr.strip().splitlines()[-1] == "error: the ONNX encoder ran out of its memory limit (200 MiB)"


# ---- dis-eval evaluate --encoder: ONNX and torch.export -------------------------------------------------

EVAL = ["--data", str(FIXTURE), "--metrics", "mig", "--set", "mig.num_train=256", "--set", "mig.batch_size=16",
        "--device", "cpu", "--json"]


def _evaluate(encoder: Path, capsys, *extra: str) -> dict:  # noqa: ANN001
    from pipelines.cli import main

    capsys.readouterr()
    assert main(["evaluate", "--encoder", str(encoder), *EVAL, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_takes_an_onnx_encoder(tmp_path: Path, capsys) -> None:
    model = _model("beta_vae", 4)
    _export_onnx(model, tmp_path / "enc.onnx")
    result = _evaluate(tmp_path / "enc.onnx", capsys, "--save-codes", str(tmp_path / "codes.npz"))
    assert 0.0 <= result["headline"]["mig"] <= 1.0 and result["encoder"]["path"].endswith("enc.onnx")
    saved = np.load(tmp_path / "codes.npz")
    with torch.no_grad():
        expected = model.encode(torch.as_tensor(_fixture_images()[:64]))[0].numpy()
    np.testing.assert_allclose(saved["codes"][:64], expected, atol=1e-4)  # onnxruntime ran the model
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    from dis_eval.encode import load_encoder
    from dis_eval.errors import UserError

    with pytest.raises(UserError, match="cannot be loaded by onnxruntime"):
        load_encoder(str(tmp_path / "bad.onnx"))


def test_evaluate_takes_a_torch_export_program(tmp_path: Path, capsys) -> None:
    model = _model("beta_vae", 4)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m.encode(x)[0]

    program = torch.export.export(Encoder(), (torch.rand(4, 1, 64, 64),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("n", min=1, max=4096)}})
    torch.export.save(program, str(tmp_path / "enc.pt2"))
    result = _evaluate(tmp_path / "enc.pt2", capsys)
    torchscript = tmp_path / "enc.pt"
    torch.jit.save(torch.jit.trace(Encoder(), torch.rand(2, 1, 64, 64)), str(torchscript))
    assert result["headline"]["mig"] == pytest.approx(_evaluate(torchscript, capsys)["headline"]["mig"], abs=1e-6)
    (tmp_path / "bad.pt2").write_bytes(b"not a program")
    from dis_eval.encode import load_encoder
    from dis_eval.errors import UserError

    with pytest.raises(UserError, match="is not a torch.export program"):
        load_encoder(str(tmp_path / "bad.pt2"))
