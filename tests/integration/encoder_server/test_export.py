"""The exported model repository: its structure, and a stock ``tritonserver`` serving it.

Structure: every ``config.pbtxt`` is parsed with Triton's own protobuf
(``model_config_pb2`` + ``text_format``), so a typo the server would reject
fails here too; each version directory rebuilds the same encoder in-process.

Real server: the ``tritonserver`` binary and Python backend shipped in
``nvidia-pytriton`` are started directly, as a production deployment would
start its own, with what such a deployment must provide (measured here):

* ``--backend-directory`` holding ``python/libtriton_python.so`` *and* a
  ``python/triton_python_backend_stub`` built for this Python; PyTriton ships
  the stubs per Python version under ``tritonserver/python_backend_stubs``,
  so the test copies the backend directory and puts the 3.11 stub in it;
* ``LD_LIBRARY_PATH`` with this interpreter's ``LIBDIR`` (the stub links
  libpython; the system one fails with ``'_thread.RLock' object has no
  attribute '_recursion_count'`` under pyenv) and PyTriton's bundled
  ``nvidia_pytriton.libs`` (the stub's RPATH is relative to where PyTriton
  keeps it, so a copied stub fails with ``libcudart-....so: cannot open
  shared object file`` without it);
* ``PATH`` starting with the venv's ``bin``: the stub's embedded Python
  finds its environment (``sys.prefix``, site-packages, ``.pth`` files) from
  the ``python3`` on ``PATH``, as PyTriton also arranges. The exported
  ``model.py`` imports this package, torch and transformers, so that
  environment must have them (in a serving image: ``pip install .``).
  Measured: with ``PYTHONPATH`` naming the venv's site-packages but the
  system ``python3`` first on ``PATH``, the load fails with
  ``ModuleNotFoundError: No module named 'torch'``; with ``PATH`` set it
  loads, ``PYTHONPATH`` or not.

If the binary is missing the real-server test is skipped with that reason;
everything else is checked regardless.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from bertctr.harness.procs import free_ports
from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoder
from encoder_server.projection import Projection
from encoder_server.serving.export import export_encoders, export_repository
from encoder_server.serving.loader import load_encoders
from encoder_server.serving.triton_model import TritonPythonModel, build_encoder
from simulator.catalogue import build_catalogue
from simulator.render import render_png

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def encoders() -> list[Encoder]:
    return load_encoders()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, encoders: list[Encoder]) -> Path:
    root = tmp_path_factory.mktemp("model-repository")
    export_encoders(root, encoders)
    return root


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    entries = build_catalogue(np.random.default_rng(3), 3, 2)
    return [render_png(e, 224, i) for i, e in enumerate(entries[:3])]


def parse_config(path: Path) -> Any:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize(
    ("model", "field", "dim"), [(IMAGE_ENCODER, "image", 64), (TEXT_ENCODER, "text", 32)]
)
def test_config_declares_the_served_tensors(
    repository: Path, model: str, field: str, dim: int
) -> None:
    config = parse_config(repository / model / "config.pbtxt")
    assert config.name == model
    assert config.backend == "python"
    assert config.max_batch_size == 64
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert config.version_policy.latest.num_versions == 1
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        (field, model_config_pb2.TYPE_STRING, [1])
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("embedding", model_config_pb2.TYPE_FP32, [dim]),
        ("error", model_config_pb2.TYPE_STRING, [1]),
    ]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["bertctr_projection_kind"] == "random"
    assert params["bertctr_projection_version"] == "1"
    assert sorted(p.name for p in (repository / model / "1").iterdir()) == [
        "encoder.json",
        "model.py",
        "projection.npz",
    ]
    assert "TritonPythonModel" in (repository / model / "1" / "model.py").read_text()


def test_version_directory_rebuilds_the_same_encoder(
    repository: Path, encoders: list[Encoder], images: list[bytes]
) -> None:
    image, text = encoders
    rebuilt = build_encoder(repository / IMAGE_ENCODER / "1")
    assert (rebuilt.name, rebuilt.version, rebuilt.dim) == (image.name, 1, 64)
    np.testing.assert_array_equal(
        rebuilt.encode(images).embeddings, image.encode(images).embeddings
    )
    titles = [b"red shoe", b"blue lamp"]
    rebuilt_text = build_encoder(repository / TEXT_ENCODER / "1")
    np.testing.assert_array_equal(
        rebuilt_text.encode(titles).embeddings, text.encode(titles).embeddings
    )


def test_a_fitted_head_is_exported_as_its_version(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    head = Projection(
        mean=np.zeros(1280, np.float32),
        components=rng.standard_normal((8, 1280)).astype(np.float32),
        version=3,
        kind="pca",
        note="test",
    )
    head_file = tmp_path / "head.npz"
    head.save(head_file)
    written = export_repository(tmp_path / "repo", image_projection=head_file, input_size=96)
    assert [p.relative_to(tmp_path / "repo").as_posix() for p in written] == [
        "image_encoder/3",
        "text_encoder/1",
    ]
    config = parse_config(tmp_path / "repo" / IMAGE_ENCODER / "config.pbtxt")
    assert list(config.output[0].dims) == [8]
    spec = json.loads((tmp_path / "repo" / IMAGE_ENCODER / "3" / "encoder.json").read_text())
    assert spec == {"encoder": "efficientnet-lite0", "input_size": 96}
    saved = Projection.load(tmp_path / "repo" / IMAGE_ENCODER / "3" / "projection.npz")
    np.testing.assert_array_equal(saved.components, head.components)


class _FakeTensor:
    def __init__(self, name: str, data: Any) -> None:
        self.name, self.data = name, data

    def as_numpy(self) -> Any:
        return self.data


class _FakeResponse:
    def __init__(self, output_tensors: list[_FakeTensor]) -> None:
        self.outputs = {t.name: t.data for t in output_tensors}


def test_python_model_splits_a_dynamic_batch_back_into_requests(
    repository: Path, monkeypatch: pytest.MonkeyPatch, images: list[bytes]
) -> None:
    """execute() in-process, with a stand-in for the stub-only pb_utils module."""
    fake = types.ModuleType("triton_python_backend_utils")
    fake.get_input_tensor_by_name = lambda request, name: request[name]  # type: ignore[attr-defined]
    fake.Tensor = _FakeTensor  # type: ignore[attr-defined]
    fake.InferenceResponse = _FakeResponse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    model = TritonPythonModel()
    model.initialize({"model_repository": str(repository / IMAGE_ENCODER), "model_version": "1"})
    requests = [
        {"image": _FakeTensor("image", np.array([[images[0]], [b"junk"]], dtype=object))},
        {"image": _FakeTensor("image", np.array([[images[1]]], dtype=object))},
    ]
    responses = model.execute(requests)
    assert [r.outputs["embedding"].shape for r in responses] == [(2, 64), (1, 64)]
    assert [list(r.outputs["error"].reshape(-1)) for r in responses] == [
        [b"", b"not an image"],
        [b""],
    ]
    expected = model.encoder.encode(images[:2]).embeddings
    np.testing.assert_allclose(responses[0].outputs["embedding"][0], expected[0], atol=1e-6)
    np.testing.assert_allclose(responses[1].outputs["embedding"][0], expected[1], atol=1e-6)
    model.finalize()


def _pytriton_server_dir() -> Path:
    """The Triton build shipped in nvidia-pytriton (a pinned dependency)."""
    import pytriton

    path = Path(pytriton.__file__).parent / "tritonserver"
    assert (path / "bin" / "tritonserver").exists(), f"no tritonserver binary under {path}"
    return path


@pytest.fixture(scope="module")
def stock_server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain ``tritonserver --model-repository`` on the exported repository."""
    server_dir = _pytriton_server_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    work = tmp_path_factory.mktemp("stock-triton")
    backends = work / "backends"
    shutil.copytree(server_dir / "backends", backends)
    shutil.copy(stub, backends / "python" / "triton_python_backend_stub")
    libs = server_dir.parent.parent / "nvidia_pytriton.libs"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (sysconfig.get_config_var("LIBDIR"), str(libs), env.get("LD_LIBRARY_PATH")) if p
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    grpc_port, http_port, metrics_port = free_ports(3)
    log_path = work / "tritonserver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(server_dir / "bin" / "tritonserver"),
                f"--model-repository={repository}",
                f"--backend-directory={backends}",
                f"--grpc-port={grpc_port}",
                f"--http-port={http_port}",
                f"--metrics-port={metrics_port}",
                "--grpc-address=127.0.0.1",
                "--http-address=127.0.0.1",
                "--allow-gpu-metrics=false",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"127.0.0.1:{grpc_port}"
    try:
        client = grpcclient.InferenceServerClient(url)
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(Exception):
                if client.is_model_ready(IMAGE_ENCODER) and client.is_model_ready(TEXT_ENCODER):
                    break
            text = log_path.read_text(errors="replace")
            why = [
                line[:400]
                for line in text.splitlines()
                if "UNAVAILABLE" in line or "error while loading shared libraries" in line
            ]
            if why or proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("tritonserver did not load the repository:\n" + "\n".join(why))
            time.sleep(0.3)
        client.close()
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_stock_tritonserver_serves_the_repository(
    stock_server: str, encoders: list[Encoder], images: list[bytes]
) -> None:
    client = grpcclient.InferenceServerClient(stock_server)
    meta = client.get_model_metadata(IMAGE_ENCODER, as_json=True)
    assert (meta["platform"], meta["versions"]) == ("python", ["1"])
    items = [images[0], b"not an image", images[1], images[2]]
    tensor = grpcclient.InferInput("image", [len(items), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[x] for x in items], dtype=object))
    result = client.infer(IMAGE_ENCODER, [tensor])
    errors = [e.decode() for e in result.as_numpy("error").reshape(-1)]
    embeddings = result.as_numpy("embedding")
    assert errors == ["", "not an image", "", ""]
    assert not embeddings[1].any()
    np.testing.assert_allclose(
        embeddings[[0, 2, 3]], encoders[0].encode(images).embeddings, atol=1e-5
    )
    titles = [b"vintage red shoe", b"\xff"]
    text = grpcclient.InferInput("text", [2, 1], "BYTES")
    text.set_data_from_numpy(np.array([[t] for t in titles], dtype=object))
    result = client.infer(TEXT_ENCODER, [text])
    assert [e.decode() for e in result.as_numpy("error").reshape(-1)] == ["", "invalid UTF-8"]
    np.testing.assert_allclose(
        result.as_numpy("embedding")[0], encoders[1].encode(titles[:1]).embeddings[0], atol=1e-5
    )
    client.close()
