"""Promotion gates of a GAN-fine-tuned SR model, as policy: its thresholds and the one place that applies them.

In: a `GanGatePolicy` (settings `gates.sr_gan.*`) and the measurements of a `Verdict` whose config is a
`GanGateConfig` (training/gates/verdict.py; the `gan/*` metrics are measured by training/gates/gan_validate.py).
Out: `GateResult`s (`gan_gates`), the reasons a recorded verdict does not pass (`failures`, which the
registry checks before it moves `@champion`: the SR gates and these), the `GanGateConfig` of one
validation (`gate_config`) and a stricter policy from a trigger's overrides (`tightened`, shared).

Why these gates: a GAN's loss rewards texture, and texture can be invented. Against the L1 twin it was
fine-tuned from, on the same held-out pairs, the GAN may lose at most `max_psnr_drop_db` of PSNR-Y and
`max_edge_psnr_drop_db` on the HR's edge / text mask (product details, print and logos live there, and a
hallucinated stroke costs PSNR there first), and must gain at least `min_niqe_gain` of NIQE (pipeline/niqe.py:
the look the fine-tuning is for, measured by a model the loss never saw). With `quality_model` set, the
learned quality model (trained separately, never in the loss) must prefer the GAN's output on at least
`min_quality_preference` of the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from training.gates.policy import _DIRECTION, THRESHOLDS, GatePolicy, _gate
from training.gates.verdict import (
    BenchmarkRef,
    GanGateConfig,
    GateConfig,
    GateResult,
    Verdict,
    failed_reasons,
)

GAN_THRESHOLDS = ("max_psnr_drop_db", "min_niqe_gain", "max_edge_psnr_drop_db", "min_quality_preference")


class GanGatePolicy(GatePolicy):
    """A GAN-fine-tuned x4 model's thresholds (settings `gates.sr_gan.*`): the SR gates on the held-out pairs
    of its real-world recipe (`margin_db` over bicubic 0 by default: adversarial texture costs PSNR, so the
    L1 model's 0.3 dB would refuse a good GAN model; no bicubic benchmark folder, a real-world model is not
    trained for bicubic inputs), and its own against the L1 twin it was fine-tuned from, on the same pairs
    (training/gates/gan_validate.py measures them): the mean PSNR-Y drop, the NIQE gain, the PSNR-Y drop on
    the HR's edge / text mask and, when `quality_model` names one, the share of images the learned quality
    model (trained separately, never in the loss) scores higher than the twin's output."""

    SETTINGS: ClassVar[str] = "gates.sr_gan"
    DIRECTIONS: ClassVar[dict[str, int]] = {
        **_DIRECTION,
        "max_psnr_drop_db": -1,
        "min_niqe_gain": +1,
        "max_edge_psnr_drop_db": -1,
        "min_quality_preference": +1,
    }

    margin_db: float = 0.0
    benchmarks: dict[str, BenchmarkRef] = Field(default_factory=dict)
    max_psnr_drop_db: float = 2.5
    min_niqe_gain: float = 1.0
    max_edge_psnr_drop_db: float = 1.5
    edge_threshold: float = Field(default=100.0, gt=0)
    quality_model: str | None = None
    min_quality_preference: float = Field(default=0.7, ge=0, le=1)

    def thresholds(self) -> tuple[str, ...]:
        return (*THRESHOLDS, *GAN_THRESHOLDS)

    def gate_config(self, **measurement: Any) -> GanGateConfig:
        sr = {k: v for k, v in measurement.items() if k in GateConfig.model_fields}  # e.g. not `twin`
        own = {name: getattr(self, name) for name in (*GAN_THRESHOLDS, "edge_threshold", "quality_model")}
        return GanGateConfig.model_validate({**super().gate_config(**sr).model_dump(), **own, **measurement})

    def looser(self, other: GatePolicy | GateConfig) -> list[str]:
        if not isinstance(other, GanGatePolicy | GanGateConfig):
            return ["measured without the GAN gates (a GateConfig, not a GanGateConfig)"]
        problems = super().looser(other)
        if other.edge_threshold != self.edge_threshold:
            problems.append(
                f"edge_threshold={other.edge_threshold} is not the policy's {self.edge_threshold}"
            )
        if self.quality_model and not other.quality_model:
            problems.append(f"the quality preference was not measured (policy: {self.quality_model})")
        return problems

    def failures(self, verdict: Verdict) -> list[str]:
        problems = super().failures(verdict)
        problems += failed_reasons(gan_gates(verdict.metrics, self))
        return list(dict.fromkeys(problems))


def gan_gates(metrics: Mapping[str, float], policy: GanGatePolicy | GanGateConfig) -> list[GateResult]:
    """The GAN's gates on its recorded measurements against the twin (`gan/*` in verdict.metrics); a
    measurement that is missing (not taken, or undefined such as NIQE on flat tiles only) fails its gate."""
    twin = f"twin {metrics['gan/twin_psnr_y']:.3f} dB" if "gan/twin_psnr_y" in metrics else "no twin"
    checks = [
        ("gan_psnr_drop", "gan/psnr_drop_db", -1, policy.max_psnr_drop_db, f"PSNR-Y below the L1 {twin}"),
        ("gan_niqe_gain", "gan/niqe_gain", +1, policy.min_niqe_gain, "twin's NIQE minus the GAN's (lower = more natural)"),
        ("gan_edge_fidelity", "gan/edge_psnr_drop_db", -1, policy.max_edge_psnr_drop_db, "PSNR-Y drop on the HR's edge / text mask"),
    ]  # fmt: skip
    if policy.quality_model:
        checks.append(
            ("gan_quality_preference", "gan/quality_preference", +1, policy.min_quality_preference,
             f"share of images {policy.quality_model} scores above the twin's output")
        )  # fmt: skip
    gates = []
    for gate, key, direction, threshold, detail in checks:
        measured = metrics.get(key)
        if measured is None or not np.isfinite(measured):
            gates.append(_gate(gate, False, None, threshold, f"{detail}: not measured"))
            continue
        passed = (measured - threshold) * direction >= 0
        gates.append(_gate(gate, passed, float(measured), threshold, detail))
    return gates
