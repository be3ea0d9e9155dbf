"""Uploaded ONNX encoders: checked without running them (``check_onnx_model``), then run by
onnxruntime's CPU provider in a throw-away process with memory and CPU-time limits
(``python -m pipelines.serve.onnx_runner``: one job step).

Refused: a file that is not an ONNX model, tensors whose data lies in external files (the
runner would read files beside the model), operators or functions from any domain but the
standard one (custom operators are native code), and models that do not map one
``[N, 1, 64, 64]`` float input to one ``[N, D]`` output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError

STANDARD_DOMAINS: frozenset[str] = frozenset({"", "ai.onnx"})
INPUT_SHAPE: tuple[int, int, int] = (1, 64, 64)  # after the batch dimension
# How running out of address space reads in the errors of Python, the loader and onnxruntime.
MEMORY_WORDS: tuple[str, ...] = ("failed to map segment", "cannot allocate memory", "bad_alloc",
                                 "failed to allocate", "out of memory")


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in a graph and its subgraphs (initializers and attribute values)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def _nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def _dims(value_info: Any) -> list[int | str | None]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def check_onnx_model(data: bytes, what: str = "the ONNX model") -> Any:
    """The parsed model when it is safe to hand to onnxruntime and has the encoder's shape;
    else a one-line ``UserError`` saying why not."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - random bytes, truncated files
        raise UserError(f"{what} is not an ONNX model ({type(exc).__name__})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise UserError(f"{what} has no graph")
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise UserError(f"{what} keeps tensor {tensor.name!r} in external data; embed every tensor in the "
                            "file (onnx.save_model(..., save_as_external_data=False))")
    custom = sorted({o.domain for o in model.opset_import if o.domain not in STANDARD_DOMAINS}
                    | {n.domain for n in _nodes(model.graph) if n.domain not in STANDARD_DOMAINS})
    if custom or len(model.functions):
        names = ", ".join(custom) or "local functions"
        raise UserError(f"{what} uses operators outside the standard ONNX domain ({names}); only standard "
                        "operators can run here")
    stored = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in stored]
    if len(inputs) != 1:
        raise UserError(f"{what} has {len(inputs)} inputs; an encoder takes one [N, 1, 64, 64] float tensor")
    dims = _dims(inputs[0])
    if len(dims) != 4 or tuple(dims[1:]) != INPUT_SHAPE:
        raise UserError(f"{what} takes shape {dims}; an encoder takes [N, 1, 64, 64]")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UserError(f"{what} takes {onnx.TensorProto.DataType.Name(inputs[0].type.tensor_type.elem_type)}; "
                        "an encoder takes float32 images in [0, 1]")
    if len(model.graph.output) < 1 or len(_dims(model.graph.output[0])) != 2:
        shape = _dims(model.graph.output[0]) if len(model.graph.output) else "nothing"
        raise UserError(f"{what} returns {shape}; an encoder returns codes [N, D]")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - onnx's checker errors are one kind for the user
        raise UserError(f"{what} is not a valid ONNX model: {str(exc).splitlines()[0][:200]}") from None
    return model


def limit_resources(memory_bytes: int, cpu_s: int) -> None:
    """This process: at most ``memory_bytes`` of address space and ``cpu_s`` CPU seconds."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def encode_with_onnx(model_path: Path, source: str, subset: str | None, out: Path, threads: int = 1) -> int:
    """Encode every row of the data with the model; write a codes file; the number of rows."""
    from dis_eval.encode import encode_data
    from dis_eval.encode.encoders import OnnxEncoder
    from pipelines.evaluate.codes_file import save_codes_file
    from pipelines.evaluate.data import load_eval_data

    data_bytes = model_path.read_bytes()
    check_onnx_model(data_bytes, f"the ONNX encoder {model_path.name}")  # again, in the limited process
    encoder = OnnxEncoder(data_bytes, f"the ONNX encoder {model_path.name}", threads=threads)
    data = load_eval_data(source, subset, "cpu")
    codes = encode_data(encoder, data, batch_size=256, device="cpu", channels_last=False)
    save_codes_file(out, codes, data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.serve.onnx_runner",
                                description="Encode a data set with an ONNX encoder, under resource limits.")
    p.add_argument("model")
    p.add_argument("--data", required=True)
    p.add_argument("--subset", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--memory-bytes", type=int, required=True)
    p.add_argument("--cpu-s", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    limit_resources(args.memory_bytes, args.cpu_s)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        rows = encode_with_onnx(Path(args.model), args.data, args.subset, Path(args.out), args.threads)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - whatever fails under the limits is one line for the job's log
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or any(w in text.lower() for w in MEMORY_WORDS):
            print(f"error: the ONNX encoder ran out of its memory limit ({args.memory_bytes // (1024 * 1024)} MiB)",
                  file=sys.stderr)
        else:
            print(f"error: the ONNX encoder failed: {text.splitlines()[0][:200]}", file=sys.stderr)
        return 2
    print(f"encoded {rows} rows with {Path(args.model).name} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
