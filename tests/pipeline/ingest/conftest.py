"""Fixtures for the ingest tests: a real learned quality model, as training exports it.

`quality_model_file` is a seeded, randomly initialised small `QualityNet` exported by
`training/serve/export_onnx.py` (the exporter the release flow uses, which checks ONNX against eager and writes
`canvas_long_side` into the file's metadata). Its scores carry no meaning, but they are a real model's
scores: the tests check that ingest stores, ranks and filters by exactly what the data side's scorer says.
torch is imported only by the tests that ask for the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CANVAS_LONG_SIDE = 128  # a small canvas keeps scoring cheap in tests (the shipped model uses 384)


@pytest.fixture(scope="session")
def quality_model_file(tmp_path_factory) -> Path:
    import torch

    from training.archs.quality_net import QualityNet
    from training.serve.export_onnx import export_onnx

    torch.set_num_threads(1)
    torch.manual_seed(13)
    net = QualityNet(width=8, depth=3, head_width=16).eval()
    exported = export_onnx(net, CANVAS_LONG_SIDE, atol=1e-4)
    assert exported.passed and exported.data is not None, exported.error
    path = tmp_path_factory.mktemp("quality-model") / "model.onnx"
    path.write_bytes(exported.data)
    return path
