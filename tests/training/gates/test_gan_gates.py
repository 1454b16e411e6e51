"""The GAN's gate policy: its thresholds against the recorded `gan/*` measurements, re-applied at promotion,
tightening only, and a verdict measured without them refused."""

from __future__ import annotations

import pytest

from training.gates.gan_gates import GanGatePolicy, gan_gates
from training.gates.policy import GatePolicyError
from training.gates.verdict import CheckpointMeta, GanGateConfig, GateConfig, GateResult, SetScore, Verdict

PAIRS = "pairs/realworld_x4:test"
GOOD = {"gan/twin_psnr_y": 24.0, "gan/psnr_drop_db": 1.2, "gan/niqe_gain": 1.8, "gan/edge_psnr_drop_db": 0.9}


def _verdict(policy: GanGatePolicy, metrics: dict[str, float], config=None) -> Verdict:
    meta = CheckpointMeta(task="sr_gan", arch="espcn", scale=4, recipe="realworld_x4", init_from="/twin.ckpt")
    score = SetScore(name=PAIRS, images=8, psnr_y=23.0, ssim_y=0.7, bicubic_psnr_y=22.5, bicubic_ssim_y=0.6)
    return Verdict(
        passed=True,
        checkpoint="file:///gan.ckpt",
        meta=meta,
        scores=[score],
        latency_ms=50.0,
        export={"passed": True, "max_abs_diff": 1e-7},
        gates=[GateResult(gate="safe_load", passed=True), GateResult(gate="golden", passed=True)],
        metrics=metrics,
        config=config or policy.gate_config(pair_recipe="realworld_x4", pair_partitions=["2026-01-01"]),
    )


def test_each_gate_compares_its_measurement_in_the_right_direction():
    policy = GanGatePolicy()
    assert all(g.passed for g in gan_gates(GOOD, policy))
    for key, value, gate in [
        ("gan/psnr_drop_db", 2.6, "gan_psnr_drop"),
        ("gan/niqe_gain", 0.4, "gan_niqe_gain"),
        ("gan/edge_psnr_drop_db", 1.6, "gan_edge_fidelity"),
    ]:
        failed = [g.gate for g in gan_gates({**GOOD, key: value}, policy) if not g.passed]
        assert failed == [gate], (key, failed)


def test_a_missing_measurement_fails_its_gate():
    without_niqe = {k: v for k, v in GOOD.items() if k != "gan/niqe_gain"}  # e.g. only flat tiles
    (niqe,) = [g for g in gan_gates(without_niqe, GanGatePolicy()) if g.gate == "gan_niqe_gain"]
    assert not niqe.passed and "not measured" in niqe.detail
    assert [g.gate for g in gan_gates(GOOD, GanGatePolicy()) if g.gate == "gan_quality_preference"] == []
    with_model = GanGatePolicy(quality_model="/models/quality.onnx")
    (preference,) = [g for g in gan_gates(GOOD, with_model) if g.gate == "gan_quality_preference"]
    assert not preference.passed
    assert [g.passed for g in gan_gates({**GOOD, "gan/quality_preference": 0.75}, with_model)][-1]


def test_failures_reapply_the_gan_gates_to_the_recorded_measurements():
    policy = GanGatePolicy()
    config = policy.gate_config(pair_recipe="realworld_x4", pair_partitions=["2026-01-01"])
    assert isinstance(config, GanGateConfig) and config.settings_key == "gates.sr_gan"
    assert config.max_psnr_drop_db == 2.5 and config.min_niqe_gain == 1.0
    assert policy.gate_config(twin="/twin.ckpt").twin == "/twin.ckpt"  # a GAN-only measurement key
    assert policy.failures(_verdict(policy, GOOD)) == []
    # the verdict says passed, but its measurements do not meet the policy
    problems = policy.failures(_verdict(policy, {**GOOD, "gan/niqe_gain": 0.2}))
    assert any(p.startswith("gan_niqe_gain") for p in problems), problems


def test_a_verdict_json_round_trips_as_a_gan_config():
    policy = GanGatePolicy()
    verdict = _verdict(policy, GOOD)
    again = Verdict.model_validate_json(verdict.model_dump_json())
    assert isinstance(again.config, GanGateConfig) and again.config == verdict.config
    assert (
        type(Verdict.model_validate_json(_verdict(policy, GOOD, GateConfig()).model_dump_json()).config)
        is GateConfig
    )


def test_a_verdict_measured_without_the_gan_gates_does_not_pass():
    policy = GanGatePolicy()
    problems = policy.failures(_verdict(policy, GOOD, config=GateConfig(margin_db=0.0, benchmarks={})))
    assert any("without the GAN gates" in p for p in problems), problems
    looser = policy.gate_config().model_copy(update={"min_niqe_gain": 0.0})
    assert any("min_niqe_gain=0.0 is looser" in p for p in policy.failures(_verdict(policy, GOOD, looser)))


def test_a_trigger_may_tighten_the_gan_gates_but_never_loosen_them():
    policy = GanGatePolicy()
    stricter = policy.tightened({"max_psnr_drop_db": 1.0, "min_niqe_gain": 2.0})
    assert stricter.max_psnr_drop_db == 1.0 and stricter.min_niqe_gain == 2.0
    for looser in ({"max_psnr_drop_db": 5.0}, {"min_niqe_gain": -1.0}, {"max_edge_psnr_drop_db": 3.0}):
        with pytest.raises(GatePolicyError, match="looser"):
            policy.tightened(looser)
    with pytest.raises(GatePolicyError, match="cannot be set by a trigger"):
        policy.tightened({"quality_model": "/elsewhere.onnx"})
