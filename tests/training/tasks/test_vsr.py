"""The video-SR task for real: a tiny FrameFusion trained on synthetic clips (resuming exactly when killed),
validated on held-out clips against bicubic with the temporal error, released as `crisp-vsr-x4` with its
report, and served by `crisp upscale` on a real clip with its sound: each frame from its own window."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from crisp.commands import upscale as upscale_cmd
from pipeline.storage import read_uri
from tests.support.cli import run_command
from tests.support.synthetic_clips import PARTITION
from tests.support.train_callbacks import kill_and_resume
from tests.support.videos import real_clip_excerpt
from training.fit.train import load_train_config, train
from training.gates.validate import Champion
from training.gates.verdict import ChampionRef
from training.gates.vsr_gates import VsrGatePolicy, vsr_threshold_gates
from training.gates.vsr_validate import validate_vsr
from training.registry.release import ReleaseTarget, release
from training.registry.versions import RegistryConfig, load_model

REPO = Path(__file__).resolve().parents[3]
NAME = "crisp-vsr-x4"
TINY = ["optim.warmup_steps=0", "data.crop=12", "data.batch_size=4", "data.workers=0", "trainer.max_steps=4",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
        "model.arch_options={frames: 3, features: 8, blocks: 1, align: flow,"
        " neighbour_residuals: true}"]  # fmt: skip
PERMISSIVE = VsrGatePolicy(min_gain_db=-100.0, max_temporal_ratio=1000.0, frame_latency_budget_ms=60_000)

torch.set_num_threads(1)


def _config(storage, output: str, *extra: str):
    overrides = [
        *TINY,
        f"data.root={storage.root}",
        f"data.partitions=[{PARTITION}]",
        f"output={output}",
        *extra,
    ]
    return load_train_config(REPO / "training" / "configs" / "frame_fusion_x4.yaml", overrides)


@pytest.fixture(scope="module")
def released(clips_root):
    target = ReleaseTarget(
        model_name=NAME,
        storage=clips_root,
        registry=RegistryConfig(root=clips_root.root, policy=PERMISSIVE, experiment=NAME),
        recipe="synthetic_clips_x4",
        partitions=[PARTITION],
        task="vsr",
    )
    config = _config(clips_root, clips_root.uri("runs/tiny-vsr"), "resume=never")
    result = train(config)
    return target, config, release(target, config.model_dump(mode="json"), asdict(result), run_name="tiny")


def test_a_killed_vsr_training_resumes_exactly(clips_root, tmp_path):
    kill_and_resume(lambda output, *run: _config(clips_root, output, *run), tmp_path)


def test_the_vsr_model_is_measured_gated_registered_and_reported(released):
    _, config, outcome = released
    assert config.task == "vsr" and config.model.arch == "frame_fusion"
    assert outcome.promoted and outcome.version == 1 and outcome.champion == 1
    verdict = outcome.verdict
    assert verdict.meta.task == "vsr" and verdict.meta.recipe == "synthetic_clips_x4"
    assert {g.gate for g in verdict.gates} == {
        "safe_load",
        "gain",
        "temporal",
        "champion",
        "single_frame",  # no crisp-sr-x4 registered here: noted, bicubic is the reference
        "latency",
        "export",
    }
    metrics = verdict.metrics
    assert metrics["clips"] > 0 and 10 < metrics["bicubic_psnr_y"] < 60 and metrics["temporal_error"] >= 0
    assert verdict.export["passed"] and verdict.latency_ms > 0
    data = json.loads(read_uri(outcome.report.removesuffix(".html") + ".json"))
    assert data["measures"]["model"]["psnr_y"] == pytest.approx(metrics["psnr_y"], abs=1e-6)
    assert data["measures"]["bicubic"]["temporal_error"] == pytest.approx(
        metrics["bicubic_temporal_error"], abs=1e-6
    )
    assert "temporal_profile.png" in read_uri(outcome.report).decode()
    assert VsrGatePolicy(min_gain_db=50.0).failures(verdict)  # a stricter deployment refuses the same model


class _TorchBicubic(torch.nn.Module):
    """A single-frame x4 'champion': torch's bicubic upscale (close to, not equal to, Pillow's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)


def test_the_single_frame_champion_is_scored_on_the_same_clips_and_gates_the_candidate(released):
    target, _, outcome = released
    reference = Champion(
        _TorchBicubic(), ChampionRef(uri="models:/crisp-sr-x4@champion", found=True, scale=4)
    )
    config = PERMISSIVE.gate_config(clip_partitions=[PARTITION])
    verdict = validate_vsr(outcome.checkpoint, config, storage=target.storage, reference=reference).verdict
    metrics = verdict.metrics
    assert metrics["single_frame/psnr_y"] == pytest.approx(metrics["bicubic_psnr_y"], abs=0.5)
    gain = verdict.gate("single_frame_gain")
    assert gain.threshold == pytest.approx(metrics["single_frame/psnr_y"])
    assert gain.passed == (metrics["psnr_y"] >= metrics["single_frame/psnr_y"])
    assert verdict.gate("single_frame_temporal").threshold == pytest.approx(
        metrics["single_frame/temporal_error"]
    )
    lenient = PERMISSIVE.model_copy(
        update={"min_gain_over_single_frame_db": -100.0, "max_single_frame_temporal_ratio": 100.0}
    )
    assert all(g.passed for g in vsr_threshold_gates(verdict, lenient))  # the same measures, re-gated
    wide = Champion(torch.nn.Identity(), ChampionRef(uri="models:/crisp-sr-x4@champion", found=True, scale=2))
    with pytest.raises(ValueError, match="not a x4 image model"):
        validate_vsr(outcome.checkpoint, config, storage=target.storage, reference=wide)


def test_crisp_upscale_serves_a_real_clip_through_the_window(released, tmp_path, monkeypatch, capsys):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    clip = real_clip_excerpt(tmp_path / "spin.mp4", frames=4, width=32)
    out = tmp_path / "out"
    code = run_command(
        upscale_cmd, "upscale", str(clip), "--model", f"models:/{NAME}@champion", "--out", str(out)
    )
    assert code == 0, capsys.readouterr().err
    model, meta = load_model(f"models:/{NAME}@champion", RegistryConfig(root=target.storage.root))
    assert meta.task == "vsr" and model.frames == 3 and model.prealigned  # served windows are aligned
    with av.open(str(clip)) as a, av.open(str(out / "spin_x4.mp4")) as b:
        lr = np.stack([f.to_ndarray(format="rgb24") for f in a.decode(video=0)])
        got = np.stack([f.to_ndarray(format="rgb24") for f in b.decode(video=0)])
        assert b.streams.audio[0].codec_context.name == "aac"
    from training.gates.vsr_validate import upscale_clip

    want = upscale_clip(model.eval(), lr).astype(float)  # the first frame's window repeats it
    assert got.shape == want.shape == (4, 4 * lr.shape[1], 4 * lr.shape[2], 3)
    assert np.abs(got - want).mean() < 4.0  # up to the H.264 re-encode


def test_the_registered_pyfunc_upscales_a_clip_like_crisp(released, monkeypatch):
    import mlflow

    from training.gates.vsr_validate import upscale_clip

    target, _, _ = released
    uri = target.registry.resolved_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    model, _ = load_model(f"models:/{NAME}@champion", RegistryConfig(root=target.storage.root))
    clip = np.random.default_rng(3).integers(0, 256, (4, 13, 19, 3), dtype=np.uint8)
    served = pyfunc.predict(clip)
    assert served.shape == (4, 52, 76, 3) and served.dtype == np.uint8
    assert np.abs(served.astype(int) - upscale_clip(model.eval(), clip)).max() <= 1
    with pytest.raises(mlflow.exceptions.MlflowException, match="does not match expected shape"):
        pyfunc.predict(clip[0])  # one frame is not a clip: the signature refuses it


def test_without_a_model_a_video_gets_the_video_champion(released, tmp_path, monkeypatch, capsys):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    clip = real_clip_excerpt(tmp_path / "spin.mp4", frames=3, width=32)
    code = run_command(upscale_cmd, "upscale", str(clip), "--out", str(tmp_path / "out"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"with models:/{NAME}/1" in captured.out and (tmp_path / "out" / "spin_x4.mp4").is_file()
