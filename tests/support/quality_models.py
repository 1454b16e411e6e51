"""Tiny real quality models for the tests of pipeline/quality and `crisp quality`, and a registry holding one.

In: a folder (and for the registry a tracking URI and artifact location). Out: ONNX files exported by
torch.onnx from `TinyQualityNet` (strided convs, global average pooling, a sigmoid * 5 head: the quality
model contract of pipeline/quality/model_file.py, with `canvas_long_side` in metadata_props), an MLflow
model folder laid out as a registered version (`MLmodel`, `artifacts/model.onnx`, `artifacts/meta.json`)
and a version of it in a real MLflow SQLite registry with an alias. A registered version is logged with
`MlflowClient.log_artifacts` plus `create_model_version` (what training/registry/versions.py does), not
`mlflow.pyfunc.log_model`: the scorer reads only the files, and the pyfunc machinery takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

TEST_CANVAS_LONG_SIDE = 96  # a small canvas keeps the tests fast; the default is 384


class TinyQualityNet(nn.Module):
    """RGB N x 3 x H x W in [0, 1] -> N scores in (0, 5) (N x 1 with `keep_dim`; `scale` stretches the
    head so a score can leave [0, 5] when `squash` is False)."""

    def __init__(
        self, widths: tuple[int, ...] = (8, 16), keep_dim: bool = False, squash: bool = True, scale=1.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)
        self.keep_dim, self.squash, self.scale = keep_dim, squash, scale

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pooled = self.features(image).mean(dim=(2, 3))
        logit = self.head(pooled) * self.scale
        score = torch.sigmoid(logit) * 5 if self.squash else logit
        return score if self.keep_dim else score.squeeze(1)


def make_net(seed: int = 0, **kwargs) -> TinyQualityNet:
    torch.manual_seed(seed)
    return TinyQualityNet(**kwargs).eval()


def export_onnx(
    net: nn.Module,
    path: Path,
    canvas_long_side: int | str | None = TEST_CANVAS_LONG_SIDE,
    input_name: str = "image",
    output_name: str = "score",
    canvas_version: int | str | None = None,
) -> Path:
    """`net` exported with dynamic N, H, W; `canvas_long_side` and `canvas_version` (None: left out) in
    metadata_props."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, 64, 48)
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: "n", 2: "h", 3: "w"}, output_name: {0: "n"}},
        dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
    )
    metadata = {"canvas_long_side": canvas_long_side, "canvas_version": canvas_version}
    if any(value is not None for value in metadata.values()):
        model = onnx.load(str(path))
        for key, value in metadata.items():
            if value is not None:
                entry = model.metadata_props.add()
                entry.key, entry.value = key, str(value)
        onnx.save(model, str(path))
    return path


def torch_score(net: nn.Module, canvas: np.ndarray) -> float:
    """The torch net's score of one uint8 H x W x 3 canvas, prepared as the scorer prepares it."""
    batch = torch.from_numpy(canvas.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(net(batch).reshape(-1)[0])


def write_model_dir(folder: Path, onnx_path: Path | None) -> Path:
    """An MLflow model folder as a registered version lays it out (no model.onnx when `onnx_path` is None)."""
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    if onnx_path is not None:
        shutil.copyfile(onnx_path, artifacts / "model.onnx")
    (artifacts / "meta.json").write_text(json.dumps({"task": "quality", "arch": "tiny-test"}))
    return folder


def register_version(
    tracking_uri: str,
    artifact_location: str,
    model_dir: Path,
    name: str = "crisp-quality",
    alias: str | None = "champion",
) -> int:
    """Log `model_dir` in a run and register it as a new version of `name` (with `alias`); its number."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name("crisp-quality-test")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("crisp-quality-test", artifact_location=artifact_location)
    )
    run_id = client.create_run(experiment_id).info.run_id
    client.log_artifacts(run_id, str(model_dir), "model")
    client.set_terminated(run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = int(client.create_model_version(name, source=source, run_id=run_id).version)
    if alias:
        client.set_registered_model_alias(name, alias, str(version))
    return version
