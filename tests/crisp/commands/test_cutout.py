"""`crisp cutout` invocations: a .onnx model file serves without a registry, and every bad invocation exits 2
with one line (the end-to-end path with the registered champion is tests/training/tasks/test_matte.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crisp.cli import main
from training.archs.matte_net import MatteNet
from training.serve.export_onnx import export_onnx


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(0)
    exported = export_onnx(MatteNet(width=8, depth=3, max_width=16).eval(), 96, 1e-4, output="alpha")
    path = tmp_path_factory.mktemp("matte-model") / "model.onnx"
    path.write_bytes(exported.data)
    return path


@pytest.fixture
def photo(tmp_path, product_photos):
    path = tmp_path / "shirt.jpg"
    Image.open(product_photos / "mh02-black_main.jpg").convert("RGB").resize((120, 150)).save(path)
    return path


def test_a_model_file_cuts_out_and_renders_on_a_colour(onnx_model, photo, tmp_path, monkeypatch):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path / 'root'}")
    out = tmp_path / "out"
    argv = ["cutout", str(photo), "--out", str(out), "--model", str(onnx_model), "--background", "#102030",
            "--fill", "0.7", "--shadow"]  # fmt: skip
    assert main(argv) == 0
    rgba = np.asarray(Image.open(out / "shirt.png"))
    rendered = np.asarray(Image.open(out / "shirt_on_102030.png"))
    assert rgba.shape == (150, 120, 4) and rendered.shape == (150, 120, 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--background", "#12"], "is none of transparent, white, #RRGGBB or an image file"),
        (["--model", "{tmp}/missing.onnx"], "no such model file or folder"),
        (["--model", "{tmp}/bad.onnx"], "is not a valid ONNX model"),
        (["--model", "models:/crisp-matte@champion"], "no model registry at"),
        (["{tmp}/nothing-here"], "is not an image file, a folder or an images/<YYYY-MM-DD> partition"),
    ],
)
def test_bad_invocations_exit_2_with_one_line(
    tmp_path, photo, onnx_model, monkeypatch, capsys, argv, message
):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path / 'root'}")
    monkeypatch.delenv("CRISP_MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "bad.onnx").write_bytes(b"\x00not a model")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    inputs = [] if not argv[0].startswith("--") else [str(photo)]
    model = [] if "--model" in argv else ["--model", str(onnx_model)]
    assert main(["cutout", *inputs, "--out", str(tmp_path / "out"), *model, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("crisp: ") and message in captured.err
    assert not (tmp_path / "out").exists()
