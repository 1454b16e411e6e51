"""The release flow for real: a tiny model trained, validated, registered into its training run and
promoted; MLflow holds what its users expect, and the champion serves any size through pyfunc."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.storage import Storage
from tests.support.pairs_fixture import TINY_PARTITION, copy_root, tiny_pairs  # noqa: F401 (fixture)
from training.data.catalog import load_catalog
from training.fit.train import load_train_config, train
from training.gates.policy import GatePolicy, GatePolicyError
from training.registry.release import ReleaseTarget, release, tighten_gates
from training.registry.versions import RegistryConfig, load_model
from training.serve.upscale import upscale_image

REPO = Path(__file__).resolve().parents[3]
TINY = ["optim.warmup_steps=0", "data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.workers=0",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false", "trainer.max_steps=2",
        "trainer.accelerator=cpu"]  # fmt: skip
NAME = "crisp-sr-x4"


@pytest.fixture(scope="module")
def released(tmp_path_factory, tiny_pairs, shared_data):  # noqa: F811 (the fixture imported above)
    storage = Storage(f"file://{tmp_path_factory.mktemp('release')}/root")
    copy_root(tiny_pairs, storage)
    # a permissive deployment policy (two steps of training); the tiny fixture has no test split
    policy = GatePolicy(
        margin_db=-100.0,
        golden_output_range=(-1.0, 2.0),
        benchmarks={"Set5": shared_data / "sr_benchmarks" / "Set5"},
        pair_split=None,
    )
    target = ReleaseTarget(
        model_name=NAME,
        storage=storage,
        registry=RegistryConfig(root=storage.root, policy=policy),
        recipe="bicubic_x4",
        partitions=[TINY_PARTITION],
    )
    overrides = [*TINY, f"data.root={storage.root}", f"data.partitions=[{TINY_PARTITION}]",
                 f"output={storage.uri('runs/tiny')}", "resume=never"]  # fmt: skip
    config = load_train_config(REPO / "training" / "configs" / "espcn_x4.yaml", overrides)
    result = train(config)
    return target, config, release(target, config.model_dump(mode="json"), asdict(result), run_name="tiny")


def test_the_version_lives_in_the_training_run_with_everything_mlflow_users_expect(released):
    from mlflow import MlflowClient

    target, config, outcome = released
    assert outcome.promoted and outcome.version == 1 and outcome.champion == 1
    uri = target.registry.resolved_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version(NAME, "1")
    assert version.run_id == outcome.run_id  # the version's run is the training run
    run = client.get_run(outcome.run_id)
    params = run.data.params
    assert params["model.arch"] == "espcn" and params["trainer.max_steps"] == "2"
    assert params["data.recipe"] == "bicubic_x4" and params["output"] == config.output
    assert len(params) >= 30  # the whole resolved config, one param per key
    history = client.get_metric_history(outcome.run_id, "val/psnr_y")  # the curve, step by step
    assert [m.step for m in history] == [1] and 0 < history[0].value < 100
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "report")}
    assert {"report/report.html", "report/verdict.json"} <= artifacts
    model_files = {a.path for a in client.list_artifacts(outcome.run_id, "model-v1/artifacts")}
    assert "model-v1/artifacts/checkpoint.ckpt" in model_files
    assert "model-v1/artifacts/verdict.json" in model_files
    # a signature and an input example
    local = Path(client.download_artifacts(outcome.run_id, "model-v1"))
    mlmodel = (local / "MLmodel").read_text()
    assert "signature:" in mlmodel and "saved_input_example_info" in mlmodel
    # the pair partitions as a dataset input whose digest is the data manifest hash
    manifest_hash = load_catalog(target.storage, "bicubic_x4", [TINY_PARTITION], 4).manifest_hash
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "pairs/bicubic_x4"
    assert dataset_input.dataset.digest == manifest_hash[:36]  # MLflow caps digests at 36 characters
    assert manifest_hash in dataset_input.dataset.profile and manifest_hash in dataset_input.dataset.source
    assert run.data.tags["crisp.data_manifest_hash"] == manifest_hash


def test_the_champion_pyfunc_serves_odd_sizes_like_crisp_upscale(released, monkeypatch):
    import mlflow

    target, _, _ = released
    uri = target.registry.resolved_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    model, meta = load_model(f"models:/{NAME}@champion", target.registry)
    for height, width in ((37, 53), (211, 97)):
        lr = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        # the model's values: the exported pyfunc vs the eager module `crisp upscale` tiles over
        served = pyfunc.predict(lr, params={"output": "float"})
        with torch.inference_mode():
            eager = model(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0)[0].clamp(0, 1)
        assert served.shape == (height * 4, width * 4, 3)
        assert np.abs(served - eager.permute(1, 2, 0).numpy()).max() <= 1e-4
        # the served photo: 8-bit rounding may flip a value sitting on .5 by one level, nothing more
        photo = pyfunc.predict(lr).astype(int)
        upscaled = upscale_image(model, lr, meta.scale, device="cpu").astype(int)
        assert photo.shape == upscaled.shape
        assert np.abs(photo - upscaled).max() <= 1 and (photo != upscaled).mean() < 1e-3


def test_a_trigger_cannot_loosen_the_release_policy(released):
    target, _, _ = released
    with pytest.raises(GatePolicyError, match="looser"):
        tighten_gates(target.registry.policy, {"margin_db": -200.0})
    assert tighten_gates(target.registry.policy, {"margin_db": 0.0}).margin_db == 0.0


def test_without_a_video_model_crisp_upscale_serves_videos_with_the_image_champion(
    released, tmp_path, monkeypatch, capsys
):
    from crisp.commands import upscale as upscale_cmd
    from tests.support.cli import run_command
    from tests.support.videos import real_clip_excerpt

    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    clip = real_clip_excerpt(tmp_path / "spin.mp4", frames=3, width=32)
    code = run_command(upscale_cmd, "upscale", str(clip), "--out", str(tmp_path / "out"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"with models:/{NAME}/1" in captured.out and (tmp_path / "out" / "spin_x4.mp4").is_file()
