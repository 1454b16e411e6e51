"""The matte gates as policy: each threshold applied to the measured figures, the champion compared on the
same composites, a trigger may only tighten, and a verdict of another validator is refused."""

from __future__ import annotations

import pytest

from training.gates.matte_gates import MatteGatePolicy, matte_threshold_gates
from training.gates.policy import GatePolicyError
from training.gates.verdict import GateConfig, MatteGateConfig, Verdict

EXPORT = {"passed": True, "max_abs_diff": 1e-6, "checked_shapes": [[384, 288]]}


def _verdict(**metrics) -> Verdict:
    return Verdict(passed=True, checkpoint="file:///c.ckpt", config=MatteGateConfig(), metrics=metrics,
                   export=EXPORT, latency_ms=90.0)  # fmt: skip


def test_each_threshold_is_applied():
    gates = {g.gate: g for g in matte_threshold_gates(_verdict(iou=0.95, mae=0.01), MatteGatePolicy())}
    assert all(g.passed for g in gates.values()) and set(gates) == {
        "iou",
        "mae",
        "champion",
        "latency",
        "export",
    }
    failing = {
        g.gate for g in matte_threshold_gates(_verdict(iou=0.85, mae=0.08), MatteGatePolicy()) if not g.passed
    }
    assert failing == {"iou", "mae"}
    slow = _verdict(iou=0.95, mae=0.01).model_copy(update={"latency_ms": 400.0})
    assert [g.gate for g in matte_threshold_gates(slow, MatteGatePolicy()) if not g.passed] == ["latency"]


def test_the_champion_is_compared_on_the_same_composites():
    gates = {g.gate: g for g in matte_threshold_gates(_verdict(iou=0.95, mae=0.01, **{"champion/iou": 0.97}),
                                                      MatteGatePolicy())}  # fmt: skip
    assert not gates["champion"].passed and gates["champion"].threshold == pytest.approx(0.965)


def test_a_trigger_may_only_tighten_and_other_verdicts_are_refused():
    policy = MatteGatePolicy()
    assert policy.tightened({"min_iou": 0.97}).min_iou == 0.97
    with pytest.raises(GatePolicyError, match="only tighten"):
        policy.tightened({"min_iou": 0.5})
    with pytest.raises(GatePolicyError, match="cannot be set"):
        policy.tightened({"sample_split": "train"})
    sr = Verdict(passed=True, checkpoint="x", config=GateConfig())
    assert policy.release_config("matte_composites", ["2026-11-22"], "cpu").sample_partitions == [
        "2026-11-22"
    ]
    assert "no loaded checkpoint" in policy.failures(sr)[0]
