"""Fixtures for the pipeline/quality tests: one tiny real ONNX quality model and the torch net behind it."""

from __future__ import annotations

import pytest
import torch

from tests.support.quality_models import export_onnx, make_net

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def quality_net():
    return make_net(seed=0)


@pytest.fixture(scope="session")
def quality_onnx(quality_net, tmp_path_factory):
    return export_onnx(quality_net, tmp_path_factory.mktemp("quality-model") / "model.onnx")
