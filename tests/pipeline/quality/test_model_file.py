"""pipeline/quality/model_file.py: model references to local ONNX files, and the ONNX contract.

Registered versions live in a real MLflow SQLite registry under tmp_path, logged as training/registry/versions.py
logs them (a run's artifacts, then a model version with an alias).
"""

from __future__ import annotations

import pytest

from pipeline.quality.model_file import (
    DEFAULT_CANVAS_LONG_SIDE,
    QualityModelError,
    canvas_version,
    open_session,
    registry_tracking_uri,
    resolve_model_file,
)
from schemas.errors import InputError
from tests.support.quality_models import (
    TEST_CANVAS_LONG_SIDE,
    export_onnx,
    make_net,
    register_version,
    write_model_dir,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, quality_onnx):
    """A SQLite registry: crisp-quality v1 (@champion) holds the model; v2 (@broken) has no model.onnx."""
    base = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    artifacts = str(base / "artifacts")
    register_version(uri, artifacts, write_model_dir(base / "good", quality_onnx), alias="champion")
    register_version(uri, artifacts, write_model_dir(base / "empty", None), alias="broken")
    return uri


def test_paths_and_model_folders_resolve_to_the_onnx_file(tmp_path, quality_onnx):
    assert resolve_model_file(str(quality_onnx), tmp_path).path == quality_onnx
    folder = write_model_dir(tmp_path / "version", quality_onnx)
    found = resolve_model_file(str(folder), tmp_path)
    assert found.path == folder / "artifacts" / "model.onnx" and found.source == str(folder)
    assert resolve_model_file(str(folder / "artifacts"), tmp_path).path == folder / "artifacts" / "model.onnx"
    assert found.path.read_bytes() == quality_onnx.read_bytes()


@pytest.mark.parametrize("alias_or_version", ["@champion", "/1"])
def test_registered_versions_are_downloaded(tmp_path, registry, quality_onnx, alias_or_version):
    found = resolve_model_file(f"models:/crisp-quality{alias_or_version}", tmp_path / "dl", registry)
    assert found.source == "models:/crisp-quality/1"
    assert found.path.is_file() and found.path.is_relative_to(tmp_path / "dl")
    assert found.path.read_bytes() == quality_onnx.read_bytes()
    _, canvas = open_session(found.path)
    assert canvas == TEST_CANVAS_LONG_SIDE


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("models:/crisp-quality@staging", r"has no alias @staging; its aliases: \['broken', 'champion'\]"),
        ("models:/nope@champion", r"no registered model 'nope' .*registered models: \['crisp-quality'\]"),
        ("models:/crisp-quality/7", "has no version 7"),
        ("models:/crisp-quality@broken", "models:/crisp-quality/2 has no artifacts/model.onnx artifact"),
        ("models:/crisp-quality", "malformed model URI"),
    ],
)
def test_unknown_registered_models_are_one_clear_error(tmp_path, registry, reference, message):
    with pytest.raises(QualityModelError, match=message) as caught:
        resolve_model_file(reference, tmp_path, registry)
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)


def test_a_missing_sqlite_registry_is_not_created(tmp_path):
    uri = registry_tracking_uri(f"file://{tmp_path / 'root'}")
    with pytest.raises(QualityModelError, match="no model registry at .*mlflow.db"):
        resolve_model_file("models:/crisp-quality@champion", tmp_path / "dl", uri)
    assert not (tmp_path / "root").exists()


def test_bad_paths_are_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.ckpt").write_bytes(b"not onnx")
    cases = {
        str(tmp_path / "missing.onnx"): "no such model file or folder",
        str(tmp_path / "empty"): "has no artifacts/model.onnx",
        str(tmp_path / "weights.ckpt"): r"is not an ONNX file \(.onnx\)",
    }
    for reference, message in cases.items():
        with pytest.raises(QualityModelError, match=message):
            resolve_model_file(reference, tmp_path)


def test_files_that_are_not_onnx_models_are_refused(tmp_path):
    for name, data in (("garbage.onnx", b"\x00garbage"), ("empty.onnx", b"")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(QualityModelError, match="is not a valid ONNX model") as caught:
            open_session(tmp_path / name)
        assert "\n" not in str(caught.value)


def test_models_off_the_contract_are_refused(tmp_path):
    net = make_net()
    renamed_input = export_onnx(net, tmp_path / "x.onnx", input_name="x")
    with pytest.raises(QualityModelError, match=r"contract: expected one input 'image'.*got inputs \['x'\]"):
        open_session(renamed_input)
    renamed_output = export_onnx(net, tmp_path / "q.onnx", output_name="quality")
    with pytest.raises(QualityModelError, match=r"outputs \['quality'\]"):
        open_session(renamed_output)


def test_canvas_long_side_comes_from_the_metadata(tmp_path):
    net = make_net()
    assert open_session(export_onnx(net, tmp_path / "a.onnx", canvas_long_side=None))[1] == 384
    assert DEFAULT_CANVAS_LONG_SIDE == 384
    assert open_session(export_onnx(net, tmp_path / "b.onnx", canvas_long_side=512))[1] == 512
    with pytest.raises(QualityModelError, match="canvas_long_side='big' is not a canvas size"):
        open_session(export_onnx(net, tmp_path / "c.onnx", canvas_long_side="big"))
    with pytest.raises(QualityModelError, match="threads must be"):
        open_session(tmp_path / "b.onnx", threads=0)


def test_canvas_version_comes_from_the_metadata_and_is_1_when_unrecorded(tmp_path):
    net = make_net()
    for name, recorded, expected in (("none.onnx", None, 1), ("v1.onnx", 1, 1), ("v2.onnx", 2, 2)):
        path = export_onnx(net, tmp_path / name, canvas_version=recorded)
        assert canvas_version(open_session(path)[0], path) == expected
    future = export_onnx(net, tmp_path / "v9.onnx", canvas_version=9)
    with pytest.raises(QualityModelError, match="canvas_version='9' is not a known canvas version"):
        canvas_version(open_session(future)[0], future)


def test_the_tracking_uri_is_the_registrys_own_rule(tmp_path, monkeypatch):
    from training.registry.versions import RegistryConfig

    monkeypatch.chdir(tmp_path)
    for root in (f"file://{tmp_path / 'root'}", "s3://bucket/crisp"):
        assert registry_tracking_uri(root) == RegistryConfig(root=root).resolved_tracking_uri()
    assert registry_tracking_uri(f"file://{tmp_path}", "http://mlflow:5000") == "http://mlflow:5000"
    assert (
        registry_tracking_uri(f"file://{tmp_path / 'r'}")
        == f"sqlite:///{tmp_path / 'r' / 'mlflow' / 'mlflow.db'}"
    )
