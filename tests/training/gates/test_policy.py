"""Gate policy: tightening only, the looser-threshold check, and re-applying thresholds to a verdict."""

from __future__ import annotations

import pytest

from training.gates.policy import GatePolicy, GatePolicyError, threshold_gates
from training.gates.verdict import CheckpointMeta, GateResult, SetScore, Verdict

SETS = {"Set5": "/reference/Set5"}


def _verdict(policy: GatePolicy, gain: float, latency: float = 50.0, **update) -> Verdict:
    meta = CheckpointMeta.model_validate(
        {"arch": "espcn", "scale": 4, "arch_kwargs": {}, "recipe": "bicubic_x4"}
    )
    score = SetScore(
        name="Set5", images=5, psnr_y=28.4 + gain, ssim_y=0.8, bicubic_psnr_y=28.4, bicubic_ssim_y=0.8
    )
    verdict = Verdict(
        passed=True,
        checkpoint="file:///ckpt",
        meta=meta,
        scores=[score],
        latency_ms=latency,
        export={"passed": True, "max_abs_diff": 1e-7, "checked_shapes": [[37, 53]]},
        gates=[GateResult(gate="safe_load", passed=True), GateResult(gate="golden", passed=True)],
        config=policy.gate_config(),
    )
    return verdict.model_copy(update=update)


def test_a_trigger_may_tighten_but_never_loosen():
    policy = GatePolicy(benchmarks=SETS)
    stricter = policy.tightened(
        {"margin_db": 0.5, "latency_budget_ms": 100.0, "golden_output_range": [-0.1, 1.1]}
    )
    assert stricter.margin_db == 0.5 and stricter.latency_budget_ms == 100.0
    assert policy.tightened(None) == policy and policy.tightened({}) == policy
    for looser, message in [
        ({"margin_db": -100}, "margin_db=-100.0 is looser than the policy's 0.3"),
        ({"champion_tolerance_db": 1.0}, "champion_tolerance_db=1.0 is looser"),
        ({"latency_budget_ms": 1e9}, "latency_budget_ms"),
        ({"export_atol": 1.0}, "export_atol"),
        ({"golden_output_range": [-1, 2]}, "golden_output_range=[-1.0, 2.0] is wider"),
    ]:
        with pytest.raises(GatePolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
            policy.tightened(looser)
    with pytest.raises(GatePolicyError, match=r"\['benchmarks'\] cannot be set by a trigger"):
        policy.tightened({"benchmarks": {}})
    with pytest.raises(GatePolicyError, match="invalid gates"):
        policy.tightened({"margin_db": "lots"})


def test_failures_reapply_every_threshold_to_the_recorded_measurements():
    policy = GatePolicy(benchmarks=SETS, pair_split=None)
    assert policy.failures(_verdict(policy, gain=0.5)) == []
    # the verdict says passed, but its measurements do not meet the policy
    assert any("bicubic_margin:Set5" in p for p in policy.failures(_verdict(policy, gain=0.1)))
    assert any(p.startswith("latency") for p in policy.failures(_verdict(policy, 0.5, latency=1e6)))
    loose = policy.model_copy(update={"margin_db": -5.0})
    assert "verdict measured with margin_db=-5.0 is looser than the policy's 0.3" in policy.failures(
        _verdict(loose, gain=0.5)
    )
    failed = _verdict(policy, 0.5, passed=False, reasons=["golden: NaN"])
    assert policy.failures(failed)[0] == "golden: NaN"


def test_required_sets_include_the_pair_split_of_the_checkpoints_recipe():
    policy = GatePolicy(benchmarks={**SETS, "Set14": "/reference/Set14"})
    problems = policy.failures(_verdict(policy, gain=0.5))
    assert "required set 'Set14' was not scored" in problems
    assert "required set 'pairs/bicubic_x4:test' was not scored" in problems
    assert policy.gate_config(pair_recipe="bicubic_x4").pair_split == "test"
    assert GatePolicy(pair_split=None).gate_config(pair_recipe="bicubic_x4").pair_recipe is None


def test_threshold_gates_compare_with_the_champion():
    policy = GatePolicy(benchmarks=SETS, min_improvement_db=0.1)
    verdict = _verdict(policy, gain=0.5)
    verdict.scores[0].champion_psnr_y = verdict.scores[0].psnr_y - 0.05
    gates = {g.gate: g for g in threshold_gates(verdict, policy, 4)}
    assert gates["champion_tolerance:Set5"].passed and not gates["min_improvement"].passed
    assert gates["min_improvement"].measured == pytest.approx(0.05)
    assert gates["export"].passed and "[[37, 53]]" in gates["export"].detail
