"""Promotion gates of the video super-resolution model, as policy: thresholds, the one place that applies them.

In: a `VsrGatePolicy` (settings `gates.vsr.*`) and the measurements of a `Verdict` whose config is a
`VsrGateConfig` (training/gates/verdict.py; measured by training/gates/vsr_validate.py). Out: `GateResult`s
(`vsr_threshold_gates`), the reasons a recorded verdict does not pass under the policy (`failures`), the
`VsrGateConfig` of one validation (`gate_config`), and a stricter policy from a trigger's overrides.

Gates, on held-out clips (products never trained on): centre-frame PSNR-Y >= bicubic + `min_gain_db`;
temporal error (pipeline/video/measure.py: flicker beyond the true frame-to-frame change) <= bicubic's x
`max_temporal_ratio` (bicubic, frame by frame, is the single-frame reference every clip has); PSNR-Y >=
the champion's on the same clips - `vsr_champion_tolerance_db` (passes, noted, with no champion); against
the single-frame champion (`crisp-sr-x4@champion`, the image model the video path falls back to, scored frame
by frame on the same clips): PSNR-Y >= its + `min_gain_over_single_frame_db` and temporal error <= its x
`max_single_frame_temporal_ratio` (one passing, noted gate when none is registered); the latency of one
640 x 360 output frame (a 160 x 90 window, one thread) <= budget; the TorchScript export
matches eager within `export_atol`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from training.gates.policy import ThresholdPolicy
from training.gates.verdict import GateResult, Verdict, VsrGateConfig

CHAMPION_PREFIX = "champion/"
SINGLE_FRAME_PREFIX = "single_frame/"  # the single-frame champion's measures on the same clips


class VsrGatePolicy(ThresholdPolicy):
    """The thresholds every video-SR candidate must meet (settings `gates.vsr.*`)."""

    DIRECTIONS: ClassVar[dict[str, int]] = {
        "min_gain_db": +1,
        "max_temporal_ratio": -1,
        "vsr_champion_tolerance_db": -1,
        "min_gain_over_single_frame_db": +1,
        "max_single_frame_temporal_ratio": -1,
        "frame_latency_budget_ms": -1,
        "export_atol": -1,
    }
    SETTINGS: ClassVar[str] = "gates.vsr"

    min_gain_db: float = 0.3
    max_temporal_ratio: float = Field(default=1.0, gt=0)
    vsr_champion_tolerance_db: float = Field(default=0.05, ge=0)
    min_gain_over_single_frame_db: float = 0.0
    max_single_frame_temporal_ratio: float = Field(default=1.0, gt=0)
    frame_latency_budget_ms: float = Field(default=2000.0, gt=0)
    export_atol: float = Field(default=1e-4, gt=0)
    clip_split: str = "val"  # the split of pairs/synthetic_clips_x4 that is held out

    def release_config(self, recipe: str, partitions: Sequence[str], device: str) -> VsrGateConfig:
        return self.gate_config(clip_partitions=list(partitions))  # scored on the CPU: what serving runs

    def gate_config(self, **measurement: Any) -> VsrGateConfig:
        fields = {name: getattr(self, name) for name in self.DIRECTIONS}
        measurement.setdefault("clip_split", self.clip_split)
        return VsrGateConfig.model_validate({**fields, **measurement})

    def failures(self, verdict: Verdict) -> list[str]:
        """Why `verdict` does not pass under this policy (empty: it passes). Re-applies every threshold."""
        return self.recorded_failures(verdict, VsrGateConfig, "video-SR", "clip_split", vsr_threshold_gates)


def _gate(
    name: str, passed: bool, measured: float | None, threshold: float | None, detail: str
) -> GateResult:
    return GateResult(gate=name, passed=passed, measured=measured, threshold=threshold, detail=detail)


def vsr_threshold_gates(verdict: Verdict, policy: VsrGatePolicy | VsrGateConfig) -> list[GateResult]:
    """The threshold gates on a video-SR verdict's measurements (`policy` may be the VsrGateConfig)."""
    metrics = verdict.metrics
    psnr, bicubic = metrics.get("psnr_y"), metrics.get("bicubic_psnr_y")
    gain = psnr - bicubic if psnr is not None and bicubic is not None else None
    temporal, bicubic_temporal = metrics.get("temporal_error"), metrics.get("bicubic_temporal_error")
    ceiling = bicubic_temporal * policy.max_temporal_ratio if bicubic_temporal is not None else None
    gates = [
        _gate("gain", gain is not None and gain >= policy.min_gain_db, gain, policy.min_gain_db,
              "centre-frame PSNR-Y over bicubic, held-out clips (dB)"),
        _gate("temporal", temporal is not None and ceiling is not None and temporal <= ceiling, temporal, ceiling,
              "temporal error (gray levels) vs bicubic frame by frame x max_temporal_ratio"),
    ]  # fmt: skip
    champion = metrics.get(f"{CHAMPION_PREFIX}psnr_y")
    if champion is None:
        note = verdict.champion.note if verdict.champion is not None else "no champion compared"
        gates.append(_gate("champion", True, None, None, note or "no champion registered"))
    else:
        floor = champion - policy.vsr_champion_tolerance_db
        gates.append(_gate("champion", psnr is not None and psnr >= floor, psnr, floor,
                           f"PSNR-Y vs the champion's {champion:.3f} dB on the same clips"))  # fmt: skip
    gates += _single_frame_gates(verdict, policy)
    if verdict.latency_ms is not None:
        budget = policy.frame_latency_budget_ms
        gates.append(_gate("latency", verdict.latency_ms <= budget, verdict.latency_ms, budget,
                           "ms for one 640 x 360 output frame (a 160 x 90 window, tiled), one thread"))  # fmt: skip
    diff = verdict.export.get("max_abs_diff", float("inf"))
    passed = bool(verdict.export.get("passed")) and diff <= policy.export_atol
    detail = verdict.export.get("error") or f"TorchScript vs eager on {verdict.export.get('checked_shapes')}"
    gates.append(_gate("export", passed, diff, policy.export_atol, detail))
    return gates


def _single_frame_gates(verdict: Verdict, policy: VsrGatePolicy | VsrGateConfig) -> list[GateResult]:
    metrics = verdict.metrics
    single = metrics.get(f"{SINGLE_FRAME_PREFIX}psnr_y")
    if single is None:
        return [_gate("single_frame", True, None, None,
                      "no single-frame champion compared (none registered): bicubic is the reference")]  # fmt: skip
    psnr, temporal = metrics.get("psnr_y"), metrics.get("temporal_error")
    floor = single + policy.min_gain_over_single_frame_db
    ceiling = metrics[f"{SINGLE_FRAME_PREFIX}temporal_error"] * policy.max_single_frame_temporal_ratio
    return [
        _gate("single_frame_gain", psnr is not None and psnr >= floor, psnr, floor,
              f"PSNR-Y vs the single-frame champion's {single:.3f} dB + min_gain_over_single_frame_db"),
        _gate("single_frame_temporal", temporal is not None and temporal <= ceiling, temporal, ceiling,
              "temporal error vs the single-frame champion's x max_single_frame_temporal_ratio"),
    ]  # fmt: skip
