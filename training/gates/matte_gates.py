"""Promotion gates of the background-removal model, as policy: thresholds, the one place that applies them.

In: a `MatteGatePolicy` (settings `gates.matte.*`) and the measurements of a `Verdict` whose config is a
`MatteGateConfig` (training/gates/verdict.py; measured by training/gates/matte_validate.py). Out:
`GateResult`s (`matte_threshold_gates`), the reasons a recorded verdict does not pass under the policy
(`failures`, which the registry checks before it moves `@champion`), the `MatteGateConfig` of one
validation (`gate_config`), and a stricter policy from a trigger's overrides (`tightened`, shared).

Gates, on held-out composites (products never trained on): mean IoU >= `min_iou`; mean alpha MAE <=
`max_mae`; IoU >= the champion's on the same composites - `champion_tolerance` (passes, noted, with no
champion); latency of the served path (the exported model through pipeline/matte/predict.py, one thread,
guided upsampling included, a 1000 x 1000 photo) <= budget; the export matches eager within `export_atol`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from training.gates.policy import ThresholdPolicy
from training.gates.verdict import GateResult, MatteGateConfig, Verdict

CHAMPION_PREFIX = "champion/"  # the champion's metrics on the same composites: champion/iou


class MatteGatePolicy(ThresholdPolicy):
    """The thresholds every matte candidate must meet (settings `gates.matte.*`)."""

    DIRECTIONS: ClassVar[dict[str, int]] = {
        "min_iou": +1,
        "max_mae": -1,
        "champion_tolerance": -1,
        "latency_budget_ms": -1,
        "export_atol": -1,
    }
    SETTINGS: ClassVar[str] = "gates.matte"

    min_iou: float = 0.9
    max_mae: float = Field(default=0.05, gt=0)
    champion_tolerance: float = Field(default=0.005, ge=0)
    latency_budget_ms: float = Field(default=150.0, gt=0)
    export_atol: float = Field(default=1e-4, gt=0)
    sample_split: str = "val"  # the split of pairs/matte_composites that is held out

    def release_config(self, recipe: str, partitions: Sequence[str], device: str) -> MatteGateConfig:
        return self.gate_config(sample_partitions=list(partitions))  # scored on the CPU: what serving runs

    def gate_config(self, **measurement: Any) -> MatteGateConfig:
        fields = {name: getattr(self, name) for name in self.DIRECTIONS}
        measurement.setdefault("sample_split", self.sample_split)
        return MatteGateConfig.model_validate({**fields, **measurement})

    def failures(self, verdict: Verdict) -> list[str]:
        """Why `verdict` does not pass under this policy (empty: it passes). Re-applies every threshold."""
        return self.recorded_failures(
            verdict, MatteGateConfig, "matte", "sample_split", matte_threshold_gates
        )


def _gate(
    name: str, passed: bool, measured: float | None, threshold: float | None, detail: str
) -> GateResult:
    return GateResult(gate=name, passed=passed, measured=measured, threshold=threshold, detail=detail)


def matte_threshold_gates(verdict: Verdict, policy: MatteGatePolicy | MatteGateConfig) -> list[GateResult]:
    """The threshold gates on a matte verdict's measurements (`policy` may be the MatteGateConfig)."""
    metrics = verdict.metrics
    iou, mae = metrics.get("iou"), metrics.get("mae")
    gates = [
        _gate(
            "iou",
            iou is not None and iou >= policy.min_iou,
            iou,
            policy.min_iou,
            "mean IoU, held-out composites",
        ),
        _gate("mae", mae is not None and mae <= policy.max_mae, mae, policy.max_mae, "mean alpha MAE"),
    ]
    champion = metrics.get(f"{CHAMPION_PREFIX}iou")
    if champion is None:
        note = verdict.champion.note if verdict.champion is not None else "no champion compared"
        gates.append(_gate("champion", True, None, None, note or "no champion registered"))
    else:
        floor = champion - policy.champion_tolerance
        gates.append(_gate("champion", iou is not None and iou >= floor, iou, floor,
                           f"IoU vs the champion's {champion:.4f} on the same composites"))  # fmt: skip
    if verdict.latency_ms is not None:
        budget = policy.latency_budget_ms
        gates.append(_gate("latency", verdict.latency_ms <= budget, verdict.latency_ms, budget,
                           "ms to matte a 1000 x 1000 photo: exported model + guided upsampling, one thread"))  # fmt: skip
    diff = verdict.export.get("max_abs_diff", float("inf"))
    passed = bool(verdict.export.get("passed")) and diff <= policy.export_atol
    detail = verdict.export.get("error") or f"ONNX Runtime vs eager on {verdict.export.get('checked_shapes')}"
    gates.append(_gate("export", passed, diff, policy.export_atol, detail))
    return gates
