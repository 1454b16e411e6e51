"""bench/results.py: a kept model reads back with its provenance, and a kept model whose bytes no longer
match that provenance (or that was never kept) reads back as None."""

from __future__ import annotations

import json

from bench import results


def test_a_kept_model_reads_back_with_where_it_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv(results.MODELS_DIR_ENV, str(tmp_path / "models"))
    assert results.kept_model("quality") is None
    path = results.keep_model("quality", b"onnx bytes", test_srcc=0.87, photo_limit=None)
    assert path == tmp_path / "models" / "quality.onnx" and path.read_bytes() == b"onnx bytes"
    kept = results.kept_model("quality")
    assert kept["path"] == str(path) and kept["test_srcc"] == 0.87 and kept["photo_limit"] is None
    assert kept["code_version"] == results.code_version() and len(kept["sha256"]) == 64
    assert json.loads((tmp_path / "models" / "quality.json").read_text())["sha256"] == kept["sha256"]


def test_a_model_changed_after_keeping_is_not_taken_for_the_kept_one(tmp_path, monkeypatch):
    monkeypatch.setenv(results.MODELS_DIR_ENV, str(tmp_path))
    path = results.keep_model("quality", b"first")
    path.write_bytes(b"second")
    assert results.kept_model("quality") is None


def test_a_results_file_written_earlier_in_the_run_does_not_make_the_tree_dirty():
    before = results.code_version()
    path = results.RESULTS_DIR / "ingest.json"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b" ")  # what an earlier benchmark of the same call does
        assert results.code_version() == before
    finally:
        path.write_bytes(original)
