"""The video-SR gates as policy: bicubic and the single-frame champion are references on the same clips, a
missing single-frame champion is a noted pass, and a trigger may only tighten."""

from __future__ import annotations

import pytest

from training.gates.policy import GatePolicyError
from training.gates.verdict import Verdict, VsrGateConfig
from training.gates.vsr_gates import VsrGatePolicy, vsr_threshold_gates

EXPORT = {"passed": True, "max_abs_diff": 1e-6, "checked_shapes": [[24, 40]]}
MEASURED = {"psnr_y": 34.0, "temporal_error": 1.2, "bicubic_psnr_y": 30.0, "bicubic_temporal_error": 1.5}


def _verdict(**metrics) -> Verdict:
    return Verdict(passed=True, checkpoint="file:///c.ckpt", config=VsrGateConfig(),
                   metrics={**MEASURED, **metrics}, export=EXPORT, latency_ms=900.0)  # fmt: skip


def _gates(verdict: Verdict, policy: VsrGatePolicy | None = None) -> dict:
    return {g.gate: g for g in vsr_threshold_gates(verdict, policy or VsrGatePolicy())}


def test_without_a_single_frame_champion_bicubic_is_the_reference_and_that_is_said():
    gates = _gates(_verdict())
    assert all(g.passed for g in gates.values())
    assert set(gates) == {"gain", "temporal", "champion", "single_frame", "latency", "export"}
    assert "bicubic is the reference" in gates["single_frame"].detail


def test_the_single_frame_champion_must_be_beaten_on_psnr_and_on_flicker():
    beaten = _gates(_verdict(**{"single_frame/psnr_y": 33.8, "single_frame/temporal_error": 1.25}))
    assert beaten["single_frame_gain"].passed and beaten["single_frame_temporal"].passed
    assert "single_frame" not in beaten
    better = _verdict(**{"single_frame/psnr_y": 34.2, "single_frame/temporal_error": 1.1})
    failing = [g.gate for g in vsr_threshold_gates(better, VsrGatePolicy()) if not g.passed]
    assert failing == ["single_frame_gain", "single_frame_temporal"]
    stricter = VsrGatePolicy(min_gain_over_single_frame_db=0.5)
    close = _verdict(**{"single_frame/psnr_y": 33.8, "single_frame/temporal_error": 1.25})
    assert _gates(close, stricter)["single_frame_gain"].threshold == pytest.approx(34.3)
    assert not _gates(close, stricter)["single_frame_gain"].passed


def test_a_trigger_may_only_tighten_the_single_frame_gates():
    policy = VsrGatePolicy()
    assert policy.tightened({"min_gain_over_single_frame_db": 0.5}).min_gain_over_single_frame_db == 0.5
    with pytest.raises(GatePolicyError, match="only tighten"):
        policy.tightened({"min_gain_over_single_frame_db": -1.0})
    with pytest.raises(GatePolicyError, match="only tighten"):
        policy.tightened({"max_single_frame_temporal_ratio": 2.0})
