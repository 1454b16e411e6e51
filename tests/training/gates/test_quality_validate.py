"""The quality model through the shared stack, on a real grid: trained by training/fit/train.py, validated on
the frozen val split (metrics, ONNX parity, data-side latency), registered as crisp-quality with its ONNX
file, promoted under the policy and scored by the data side from models:/crisp-quality@champion; a
stricter policy refuses the same verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.quality.model_file import resolve_model_file
from pipeline.quality.scorer import QualityScorer
from tests.support.quality_grid import PARTITION
from training.fit.train import TrainConfig, train
from training.gates.quality_gates import QualityGatePolicy
from training.gates.quality_validate import reject_auc, validate_quality
from training.registry.versions import CHAMPION, PromotionRefused, RegistryConfig, promote, register

LOOSE = QualityGatePolicy(min_srcc=-1.0, min_family_srcc=-1.0, min_pair_accuracy=0.0, latency_budget_ms=5_000)


@pytest.fixture(scope="module")
def trained(grid_root, tmp_path_factory):
    output = tmp_path_factory.mktemp("quality-run")
    config = TrainConfig(
        task="quality",
        data={
            "root": grid_root.root,
            "crop": 64,
            "groups_per_batch": 2,
            "samples_per_group": 4,
            "workers": 0,
        },
        optim={"lr": 1e-3},
        trainer={
            "max_steps": 12,
            "val_check_interval": 6,
            "accelerator": "cpu",
            "enable_progress_bar": False,
        },
        output=f"file://{output}",
    )
    return train(config)


def test_the_shared_trainer_trains_a_quality_model_and_keeps_the_best_srcc(trained):
    assert trained.global_step == 12 and trained.best_ckpt_uri is not None
    assert -1.0 <= trained.metrics["val/srcc"] <= 1.0 and trained.metrics["val/samples"] == 22


def test_validation_measures_the_grid_the_export_and_the_latency(trained, grid_root):
    config = LOOSE.gate_config(grid_partitions=[PARTITION])
    verdict = validate_quality(trained.best_ckpt_uri, config, storage=grid_root).verdict
    assert verdict.passed, verdict.reasons
    assert verdict.meta.task == "quality" and verdict.meta.scale is None
    metrics = verdict.metrics
    assert metrics["samples"] == 22 and {"srcc/gaussian_blur", "srcc/jpeg"} <= set(metrics)
    assert all(-1 <= metrics[k] <= 1 for k in ("srcc", "plcc", "krcc", "srcc/jpeg"))
    assert 0 <= metrics["pair_accuracy"] <= 1 and verdict.export["passed"]
    assert verdict.export["max_abs_diff"] <= config.export_atol and verdict.latency_ms > 0
    assert (verdict.export["canvas_long_side"], verdict.export["canvas_version"]) == (96, 2)  # the grid's
    assert {g.gate for g in verdict.gates} >= {
        "safe_load",
        "srcc",
        "pair_accuracy",
        "champion",
        "latency",
        "export",
    }


def test_an_sr_checkpoint_is_not_a_quality_model(grid_root, tmp_path):
    from tests.support.checkpoints import random_state, write_checkpoint

    checkpoint = write_checkpoint(tmp_path / "sr.ckpt", random_state(), scale=4)
    verdict = validate_quality(str(checkpoint), LOOSE.gate_config(), storage=grid_root).verdict
    assert not verdict.passed and "not a quality model" in verdict.reasons[0]


def test_registered_promoted_and_scored_by_the_data_side(trained, grid_root, tmp_path):
    registry = RegistryConfig(root=f"file://{tmp_path / 'root'}", experiment="crisp-quality", policy=LOOSE)
    validation = validate_quality(trained.best_ckpt_uri, LOOSE.gate_config(grid_partitions=[PARTITION]),
                                  storage=grid_root)  # fmt: skip
    version = register(trained.best_ckpt_uri, validation.verdict, "crisp-quality", config=registry,
                       data=validation.checkpoint_bytes, exported=validation.exported, task="quality")  # fmt: skip
    strict = registry.model_copy(update={"policy": QualityGatePolicy(min_srcc=0.999)})
    with pytest.raises(PromotionRefused, match="srcc"):
        promote("crisp-quality", version, strict)  # the policy, not the caller, decides
    promote("crisp-quality", version, registry)
    model = resolve_model_file(
        f"models:/crisp-quality@{CHAMPION}", tmp_path / "dl", registry.resolved_tracking_uri()
    )
    scorer = QualityScorer(model.path)
    score = scorer.score_rgb(np.full((200, 150, 3), 200, dtype=np.uint8))
    assert 0.0 <= score <= 5.0 and (scorer.canvas_long_side, scorer.canvas_version) == (96, 2)


def test_reject_auc_is_the_probability_a_good_sample_outscores_a_bad_one():
    targets = np.array([1.0, 2.0, 3.0, 4.0])
    assert reject_auc(np.array([0.1, 0.2, 0.9, 0.8]), targets, 2.5) == 1.0
    assert reject_auc(np.array([0.9, 0.8, 0.1, 0.2]), targets, 2.5) == 0.0
    assert reject_auc(np.array([0.5, 0.5, 0.5, 0.5]), targets, 2.5) == 0.5
    assert math.isnan(reject_auc(np.array([0.1, 0.2]), np.array([4.0, 5.0]), 2.5))
