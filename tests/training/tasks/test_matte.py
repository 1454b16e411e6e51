"""The matte task for real: a tiny MatteNet trained on matte composites (resuming exactly when killed),
validated on held-out composites, released as `crisp-matte` with its report, and served by `crisp cutout`:
RGBA PNGs whose alpha is the model's matte, and a white render whose border is exactly white."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crisp.commands import cutout as cutout_cmd
from pipeline.matte.predict import MattePredictor
from pipeline.quality import registry_tracking_uri, resolve_model_file
from pipeline.storage import read_uri
from tests.support.cli import run_command
from tests.support.matte_composites import PARTITION
from tests.support.train_callbacks import kill_and_resume
from training.fit.train import load_train_config, train
from training.gates.matte_gates import MatteGatePolicy
from training.registry.release import ReleaseTarget, release
from training.registry.versions import RegistryConfig

REPO = Path(__file__).resolve().parents[3]
NAME = "crisp-matte"
TINY = ["optim.warmup_steps=0", "data.crop=48", "data.batch_size=4", "data.workers=0", "trainer.max_steps=4",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
        "model.arch_options={width: 8, depth: 3, max_width: 16}"]  # fmt: skip

torch.set_num_threads(1)


def _config(storage, output: str, *extra: str):
    overrides = [
        *TINY,
        f"data.root={storage.root}",
        f"data.partitions=[{PARTITION}]",
        f"output={output}",
        *extra,
    ]
    return load_train_config(REPO / "training" / "configs" / "matte_net.yaml", overrides)


@pytest.fixture(scope="module")
def released(matte_root):
    # a permissive deployment policy (four steps of training); the same gates and measures run
    policy = MatteGatePolicy(min_iou=0.0, max_mae=1.0, latency_budget_ms=10_000)
    target = ReleaseTarget(
        model_name=NAME,
        storage=matte_root,
        registry=RegistryConfig(root=matte_root.root, policy=policy, experiment=NAME),
        recipe="matte_composites",
        partitions=[PARTITION],
        task="matte",
    )
    config = _config(matte_root, matte_root.uri("runs/tiny-matte"), "resume=never")
    result = train(config)
    return target, config, release(target, config.model_dump(mode="json"), asdict(result), run_name="tiny")


def test_a_killed_matte_training_resumes_exactly(matte_root, tmp_path):
    kill_and_resume(lambda output, *run: _config(matte_root, output, *run), tmp_path)


def test_the_matte_model_is_measured_gated_registered_and_reported(released):
    _, config, outcome = released
    assert config.task == "matte" and config.model.arch == "matte_net"
    assert outcome.promoted and outcome.version == 1 and outcome.champion == 1
    verdict = outcome.verdict
    assert verdict.meta.task == "matte" and verdict.meta.recipe == "matte_composites"
    assert {g.gate for g in verdict.gates} == {"safe_load", "iou", "mae", "champion", "latency", "export"}
    assert (
        verdict.metrics["samples"] > 0
        and 0 <= verdict.metrics["iou"] <= 1
        and 0 <= verdict.metrics["mae"] <= 1
    )
    assert verdict.export["passed"] and verdict.export["max_abs_diff"] < 1e-4 and verdict.latency_ms > 0
    data = json.loads(read_uri(outcome.report.removesuffix(".html") + ".json"))
    assert data["samples"] == verdict.metrics["samples"]
    assert data["measures"]["model"]["iou"] == pytest.approx(verdict.metrics["iou"], abs=1e-4)
    assert set(data["measures"]["white_threshold"]) == {"iou", "mae", "sad", "grad", "boundary_f"}
    assert "hard_cases.png" in read_uri(outcome.report).decode()


def test_a_stricter_policy_refuses_the_same_candidate(released):
    target, _, outcome = released
    strict = MatteGatePolicy(min_iou=0.999)
    assert any("iou" in reason for reason in strict.failures(outcome.verdict))
    assert MatteGatePolicy(min_iou=0.0, max_mae=1.0, latency_budget_ms=10_000).failures(outcome.verdict) == []


def test_crisp_cutout_writes_the_models_matte_and_an_exactly_white_render(
    released, product_photos, tmp_path, monkeypatch, capsys
):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(product_photos / "mh02-black_main.jpg").convert("RGB").resize((203, 251)).save(
        folder / "hoodie.png"
    )
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    code = run_command(cutout_cmd, "cutout", str(folder), "--out", str(out), "--background", "white")
    assert code == 1 and "broken" in capsys.readouterr().err
    rgba = np.asarray(Image.open(out / "hoodie.png"))
    assert rgba.shape == (251, 203, 4)
    model = resolve_model_file(
        f"models:/{NAME}@champion", tmp_path / "dl", registry_tracking_uri(target.storage.root)
    )
    expected = MattePredictor(model.path).alpha(np.asarray(Image.open(folder / "hoodie.png").convert("RGB")))
    assert np.array_equal(rgba[..., 3], np.clip(np.rint(expected * 255), 0, 255).astype(np.uint8))
    white = np.asarray(Image.open(out / "hoodie_on_white.png"))
    assert white.shape == (251, 203, 3)
    border = np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]])
    assert (border == 255).all()
    assert not (out / "broken.png").exists()


def test_the_registered_pyfunc_mattes_like_the_data_side(released, tmp_path, monkeypatch):
    import mlflow

    target, _, _ = released
    uri = target.registry.resolved_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    model = resolve_model_file(f"models:/{NAME}@champion", tmp_path, uri)
    for height, width in ((37, 53), (411, 297)):  # below and above the model's canvas
        image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        served = pyfunc.predict(image)
        assert served.shape == (height, width)
        np.testing.assert_array_equal(served, MattePredictor(model.path).alpha(image))
