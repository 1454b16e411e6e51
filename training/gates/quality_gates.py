"""Promotion gates of the learned quality model, as policy: thresholds, the one place that applies them.

In: a `QualityGatePolicy` (settings `gates.quality.*`) and the measurements of a `Verdict` whose config is
a `QualityGateConfig` (training/gates/verdict.py; measured by training/gates/quality_validate.py). Out: `GateResult`s
(`quality_threshold_gates`), the reasons a recorded verdict does not pass under the policy (`failures`,
which the registry checks before it moves `@champion`), the `QualityGateConfig` of one validation
(`gate_config`), and a stricter policy from a trigger's overrides (`tightened`, shared with SR).

Gates, on the frozen validation grid (references never trained on): SRCC of predicted vs target scores
>= `min_srcc` overall and >= `min_family_srcc` within every distortion family; in-reference pair accuracy
>= `min_pair_accuracy`; SRCC >= the champion's on the same grid - `champion_tolerance`; latency of the
exported model (ONNX Runtime, one thread, a 512-px photo) <= budget; the export matches eager within
`export_atol` score units. With no champion registered the champion gate passes, noted as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from training.gates.policy import ThresholdPolicy
from training.gates.verdict import GateResult, QualityGateConfig, Verdict

FAMILY_PREFIX = "srcc/"  # verdict.metrics key of one family's SRCC: srcc/<family>
CHAMPION_PREFIX = "champion/"  # the champion's metrics on the same grid: champion/srcc


class QualityGatePolicy(ThresholdPolicy):
    """The thresholds every quality candidate must meet (settings `gates.quality.*`)."""

    DIRECTIONS: ClassVar[dict[str, int]] = {
        "min_srcc": +1,
        "min_family_srcc": +1,
        "min_pair_accuracy": +1,
        "champion_tolerance": -1,
        "latency_budget_ms": -1,
        "export_atol": -1,
    }
    SETTINGS: ClassVar[str] = "gates.quality"

    min_srcc: float = 0.8
    min_family_srcc: float = 0.5
    min_pair_accuracy: float = 0.8
    champion_tolerance: float = Field(default=0.01, ge=0)
    latency_budget_ms: float = Field(default=50.0, gt=0)
    export_atol: float = Field(default=1e-4, gt=0)
    reject_threshold: float = Field(
        default=2.5, ge=0, le=5
    )  # the shipped threshold the reject AUC is taken at
    grid_split: str = "val"  # the split of pairs/quality_grid that is the frozen validation grid

    def release_config(self, recipe: str, partitions: Sequence[str], device: str) -> QualityGateConfig:
        return self.gate_config(grid_partitions=list(partitions))  # scored on the CPU: what serving runs

    def gate_config(self, **measurement: Any) -> QualityGateConfig:
        fields = {name: getattr(self, name) for name in self.DIRECTIONS}
        measurement.setdefault("grid_split", self.grid_split)
        return QualityGateConfig.model_validate(
            {**fields, "reject_threshold": self.reject_threshold, **measurement}
        )

    def failures(self, verdict: Verdict) -> list[str]:
        """Why `verdict` does not pass under this policy (empty: it passes). Re-applies every threshold."""
        return self.recorded_failures(
            verdict, QualityGateConfig, "quality", "grid_split", quality_threshold_gates
        )


def _gate(
    name: str, passed: bool, measured: float | None, threshold: float | None, detail: str
) -> GateResult:
    return GateResult(gate=name, passed=passed, measured=measured, threshold=threshold, detail=detail)


def quality_threshold_gates(
    verdict: Verdict, policy: QualityGatePolicy | QualityGateConfig
) -> list[GateResult]:
    """The threshold gates on a quality verdict's measurements (`policy` may be the QualityGateConfig)."""
    metrics = verdict.metrics
    srcc = metrics.get("srcc")
    gates = [
        _gate(
            "srcc",
            srcc is not None and srcc >= policy.min_srcc,
            srcc,
            policy.min_srcc,
            "predicted vs target, whole grid",
        )
    ]
    for key in sorted(k for k in metrics if k.startswith(FAMILY_PREFIX)):
        value = metrics[key]
        gates.append(
            _gate(f"srcc:{key[len(FAMILY_PREFIX):]}", value >= policy.min_family_srcc, value,
                  policy.min_family_srcc, "within the family")
        )  # fmt: skip
    accuracy = metrics.get("pair_accuracy")
    passed = accuracy is not None and accuracy >= policy.min_pair_accuracy
    gates.append(
        _gate("pair_accuracy", passed, accuracy, policy.min_pair_accuracy, "in-reference pairs ordered")
    )
    champion = metrics.get(f"{CHAMPION_PREFIX}srcc")
    if champion is None:
        note = verdict.champion.note if verdict.champion is not None else "no champion compared"
        gates.append(_gate("champion", True, None, None, note or "no champion registered"))
    else:
        floor = champion - policy.champion_tolerance
        gates.append(
            _gate("champion", srcc is not None and srcc >= floor, srcc, floor,
                  f"SRCC vs the champion's {champion:.4f} on the same grid")
        )  # fmt: skip
    if verdict.latency_ms is not None:
        budget = policy.latency_budget_ms
        gates.append(
            _gate("latency", verdict.latency_ms <= budget, verdict.latency_ms, budget,
                  "ms to score a 512-px photo with the exported model on one thread")
        )  # fmt: skip
    diff = verdict.export.get("max_abs_diff", float("inf"))
    passed = bool(verdict.export.get("passed")) and diff <= policy.export_atol
    detail = verdict.export.get("error") or f"ONNX Runtime vs eager on {verdict.export.get('checked_shapes')}"
    gates.append(_gate("export", passed, diff, policy.export_atol, detail))
    return gates
