"""`crisp quality score`: files, folders and partitions in, one score per image out, through `crisp.cli`.

A tiny real ONNX model (tests/support/quality_models.py) is registered as crisp-quality@champion in a
SQLite registry copied under the storage root, which is where the command looks by default. Scores are checked
against the torch net on the canvas of the photo as ingest's normalizer decodes it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from crisp.cli import main
from pipeline.clean.normalize import decode_rgb
from pipeline.distort.canvas import quality_canvas
from pipeline.storage import Storage
from schemas.reasons import Reason
from tests.support.bad_images import corrupt_jpeg
from tests.support.image_partitions import write_image_partition
from tests.support.quality_models import (
    TEST_CANVAS_LONG_SIDE,
    export_onnx,
    make_net,
    register_version,
    torch_score,
    write_model_dir,
)


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory):
    net = make_net(seed=0)
    return net, export_onnx(net, tmp_path_factory.mktemp("quality-model") / "model.onnx")


@pytest.fixture(scope="module")
def registry_db(tmp_path_factory, quality_model):
    """A SQLite registry holding the model as crisp-quality@champion (created once: MLflow's schema
    migrations take seconds); each test's root gets a copy of the database file."""
    base = tmp_path_factory.mktemp("registry")
    model_dir = write_model_dir(base / "model-dir", quality_model[1])
    register_version(f"sqlite:///{base / 'mlflow.db'}", str(base / "artifacts"), model_dir)
    return base / "mlflow.db"


@pytest.fixture
def root(tmp_path, monkeypatch, registry_db):
    """A storage root whose default registry (<root>/mlflow/mlflow.db) holds crisp-quality@champion."""
    root = tmp_path / "root"
    for name in ("CRISP_CONFIG", "CRISP_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRISP_ROOT", f"file://{root}")
    (root / "mlflow").mkdir(parents=True)
    shutil.copyfile(registry_db, root / "mlflow" / "mlflow.db")
    return root


def _expected(net, data_or_path) -> float:
    return torch_score(
        net, quality_canvas(np.asarray(decode_rgb(data_or_path)), TEST_CANVAS_LONG_SIDE, version=1)
    )


def _json_rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_folder_is_scored_and_a_corrupt_file_reported(
    tmp_path, root, product_photos, quality_model, capsys
):
    net, _ = quality_model
    photos = sorted(product_photos.glob("*.jpg"))[:12]
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for i, photo in enumerate(photos):  # some in a subfolder: folders are searched recursively
        shutil.copy(photo, (folder / "nested" if i % 3 == 0 else folder) / photo.name)
    (folder / "broken.jpg").write_bytes(corrupt_jpeg(1))
    (folder / "notes.txt").write_text("not an image")
    assert main(["quality", "score", str(folder), "--json"]) == 1
    captured = capsys.readouterr()
    rows = _json_rows(captured.out)
    assert len(rows) == len(photos)  # every photo scored despite the broken file
    for row in rows:
        assert set(row) == {"path", "score", "width", "height", "product_id", "image_id"}
        assert row["product_id"] is None and row["image_id"] is None
        assert row["score"] == pytest.approx(_expected(net, row["path"]), abs=1e-3)
        assert 0 <= row["score"] <= 5 and row["score"] == round(row["score"], 3)
        assert (row["width"], row["height"]) == decode_rgb(row["path"]).size
    assert sorted(r["path"].rsplit("/", 1)[1] for r in rows) == sorted(p.name for p in photos)
    reported = [line for line in captured.err.splitlines() if line.startswith("crisp quality:")]
    assert len(reported) == 1 and f"broken.jpg: {Reason.DECODE_ERROR}: " in reported[0]
    assert "Traceback" not in captured.err


def test_files_and_a_partition_with_the_table_and_json(tmp_path, root, product_photos, quality_model, capsys):
    net, onnx_path = quality_model
    photos = sorted(product_photos.glob("*.jpg"))[:3]
    manifest = write_image_partition(Storage(f"file://{root}"), "2026-03-01", photos, max_side=160)
    assert manifest is not None
    single = tmp_path / "single.png"
    shutil.copy(photos[0], tmp_path / "single.jpg")
    decode_rgb(tmp_path / "single.jpg").resize((300, 200)).save(single)

    # the partition, and a file, scored by an explicit .onnx model and by the registry default
    assert (
        main(["quality", "score", "images/2026-03-01", str(single), "--json", "--model", str(onnx_path)]) == 0
    )
    explicit = _json_rows(capsys.readouterr().out)
    assert main(["quality", "score", "images/2026-03-01", str(single), "--json", "--threads", "2"]) == 0
    registered = _json_rows(capsys.readouterr().out)
    assert explicit == registered and len(explicit) == 4
    members, file_row = explicit[:3], explicit[3]
    assert {r["product_id"] for r in members} == {p.stem for p in photos}
    for row in members:
        assert (
            row["path"] == f"images/2026-03-01/{row['image_id']}" and max(row["width"], row["height"]) == 160
        )
    assert file_row == {
        "path": str(single),
        "score": round(_expected(net, single), 3),
        "width": 300,
        "height": 200,
        "product_id": None,
        "image_id": None,
    }

    # without --json: an aligned table of path and score, the same scores
    assert main(["quality", "score", "images/2026-03-01", str(single)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["path", "score"] and len(lines) == 5
    assert len({line.rindex(" ") for line in lines}) == 1  # the score column starts at one place
    assert [float(line.split()[-1]) for line in lines[1:]] == [round(r["score"], 3) for r in explicit]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "models:/crisp-quality@staging"], "has no alias @staging"),
        (["--model", "models:/other@champion"], "no registered model 'other'"),
        (["--model", "{tmp}/missing.onnx"], "no such model file or folder"),
        (["--model", "{tmp}/bad.onnx"], "is not a valid ONNX model"),
        (["{tmp}/nothing-here"], "is not an image file, a folder or an images/<YYYY-MM-DD> partition"),
        (["images/2026-01-09"], "images/2026-01-09"),
        (["{tmp}/empty"], "no images found in the inputs"),
    ],
)
def test_bad_invocations_exit_2_with_one_line(tmp_path, root, product_photos, capsys, argv, message):
    (tmp_path / "bad.onnx").write_bytes(b"\x00not a model")
    (tmp_path / "empty").mkdir()
    photo = str(sorted(product_photos.glob("*.jpg"))[0])
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    inputs = [] if argv[0] != "--model" else [photo]
    assert main(["quality", "score", *inputs, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("crisp: ")
    assert message in captured.err


def test_a_root_without_a_registry_says_so(tmp_path, monkeypatch, product_photos, capsys):
    monkeypatch.delenv("CRISP_MLFLOW_TRACKING_URI", raising=False)
    photo = str(sorted(product_photos.glob("*.jpg"))[0])
    assert main(["quality", "score", photo, "--root", f"file://{tmp_path / 'fresh'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model registry at" in err
    assert not (tmp_path / "fresh").exists()
