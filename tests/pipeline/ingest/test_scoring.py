"""Scoring: the run's learned quality model resolved on the driver ("auto", "off", a reference; with
min_quality), one scorer per process and model, and the rank of each product's images.

The registry is a real MLflow SQLite store under a file:// root, where `registry_tracking_uri` looks
when the settings name no tracking URI; versions are logged as training/registry/versions.py logs them.
"""

from __future__ import annotations

import hashlib
import pickle

import pytest

from pipeline.ingest import scoring
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.scoring import QualityModel, rank_in_product, resolve_quality_model
from pipeline.quality import QualityModelError, registry_tracking_uri
from schemas.errors import InputError
from tests.support.quality_models import register_version, write_model_dir


def one_line_error(config: IngestConfig, root: str, match: str, tracking_uri: str | None = None) -> str:
    with pytest.raises(QualityModelError, match=match) as caught:
        resolve_quality_model(config, root, tracking_uri)
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)
    return str(caught.value)


def test_off_and_auto_without_a_registry_score_nothing(tmp_path):
    root = f"file://{tmp_path / 'root'}"
    assert resolve_quality_model(IngestConfig(quality_model="off"), root) is None
    assert resolve_quality_model(IngestConfig(), root) is None
    assert resolve_quality_model(IngestConfig(), root, f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "root").exists() and not (tmp_path / "none.db").exists()  # nothing created
    for config in (IngestConfig(min_quality=2.5), IngestConfig(quality_model="off", min_quality=2.5)):
        message = one_line_error(config, root, r"^ingest\.min_quality=2\.5 needs a quality model, but ")
        assert "unset ingest.min_quality" in message


def test_a_model_file_resolves_to_its_bytes_once(tmp_path, quality_model_file):
    config = IngestConfig(quality_model=str(quality_model_file), min_quality=1.5)
    model = resolve_quality_model(config, f"file://{tmp_path}")
    data = quality_model_file.read_bytes()
    assert (model.source, model.onnx, model.min_quality) == (str(quality_model_file), data, 1.5)
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    assert pickle.loads(pickle.dumps(model)) == model  # what the driver scatters to the workers
    assert "onnx=" not in repr(model)  # the bytes stay out of logs
    assert model.too_low(1.49) and not model.too_low(1.5)


def test_a_reference_that_does_not_resolve_is_one_clear_error(tmp_path):
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x01garbage")
    root = f"file://{tmp_path / 'root'}"
    cases = {
        str(tmp_path / "missing.onnx"): "no such model file or folder",
        str(text): "is not an ONNX file",
        str(broken): "is not a valid ONNX model",
        "models:/crisp-quality@champion": "no model registry at",  # named explicitly: it must resolve
        "models:/crisp-quality": "malformed model URI",
    }
    for reference, problem in cases.items():
        message = one_line_error(IngestConfig(quality_model=reference), root, problem)
        assert message.startswith(f"ingest.quality_model={reference!r}: ")
        assert reference in message.split(": ", 1)[1] or reference.startswith("models:/")  # the file named
    assert not (tmp_path / "root").exists()


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory, quality_model_file):
    """A file:// root whose SQLite registry holds crisp-quality v1 (@champion, the model) and v2 (@broken,
    registered without model.onnx)."""
    root = tmp_path_factory.mktemp("registry-root")
    (root / "mlflow").mkdir()
    uri = registry_tracking_uri(f"file://{root}")
    artifacts = str(root / "artifacts")
    register_version(uri, artifacts, write_model_dir(root / "good", quality_model_file), alias="champion")
    register_version(uri, artifacts, write_model_dir(root / "empty", None), alias="broken")
    return root


def test_auto_takes_the_registered_champion_and_a_broken_one_stops_the_run(registry_root, quality_model_file):
    from mlflow import MlflowClient

    root = f"file://{registry_root}"
    model = resolve_quality_model(IngestConfig(), root)
    assert model.source == "models:/crisp-quality/1" and model.onnx == quality_model_file.read_bytes()
    uri = registry_tracking_uri(root)
    assert resolve_quality_model(IngestConfig(), "file:///elsewhere", uri).source == model.source
    one_line_error(
        IngestConfig(quality_model="models:/crisp-quality@broken"), root, "has no artifacts/model.onnx"
    )
    one_line_error(IngestConfig(quality_model="models:/crisp-quality@staging"), root, "has no alias @staging")

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.set_registered_model_alias("crisp-quality", "champion", "2")  # a champion that is no model
        one_line_error(IngestConfig(), root, r"^ingest\.quality_model='auto': models:/crisp-quality/2 has no")
        client.delete_registered_model_alias("crisp-quality", "champion")  # a registry without a champion
        assert resolve_quality_model(IngestConfig(), root) is None
        one_line_error(IngestConfig(min_quality=2.0), root, "is not registered at")
    finally:
        client.set_registered_model_alias("crisp-quality", "champion", "1")


def test_each_process_keeps_one_scorer_per_model_bytes(quality_model_file):
    data = quality_model_file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    first = QualityModel("a", data, digest).scorer()
    assert QualityModel("the same bytes elsewhere", data, digest).scorer() is first
    for n in range(scoring.SCORERS_KEPT):  # later models push the oldest one out
        QualityModel(f"m{n}", data, f"other-{n}").scorer()
    assert digest not in scoring._SCORERS and len(scoring._SCORERS) == scoring.SCORERS_KEPT
    assert QualityModel("a", data, digest).scorer() is not first  # rebuilt when needed again


def test_rank_in_product_orders_each_products_scores_best_first_ties_by_image_id():
    def record(key: str, product: str, image: str, score: float | None) -> dict:
        return {"row_key": key, "product_id": product, "image_id": image, "quality_learned": score}

    records = [
        record("f:1", "P1", "c", 2.0),
        record("f:2", "P1", "a", 3.0),
        record("f:3", "P1", "b", 2.0),
        record("f:4", "P2", "d", 1.0),
        record("f:5", "P2", "e", None),
        record("f:6", "P3", "f", None),
    ]
    ranked = rank_in_product(records)
    assert [r["rank_in_product"] for r in ranked] == [3, 1, 2, 1, None, None]
    assert [{k: v for k, v in r.items() if k != "rank_in_product"} for r in ranked] == records
    assert all("rank_in_product" not in r for r in records)  # the input is left as it was
