"""Promotion gates as policy: the configured thresholds, the one place that applies them, and tightening.

In: a `GatePolicy` (settings `gates.sr.*`: thresholds, the benchmark sets every candidate is scored on,
the pair split) and the measurements of a `Verdict` (training/gates/verdict.py). Out: `GateResult`s
(`threshold_gates`), the reasons a recorded verdict does not pass under the policy (`failures`, which
the registry checks before it moves `@champion`), a `GateConfig` for one validation run
(`gate_config`), and a stricter policy from a trigger's overrides (`tightened`; looser values raise
`GatePolicyError` naming the setting).

The same `threshold_gates` runs when a checkpoint is validated and again when a version is promoted, on
the measurements recorded in its verdict: a verdict that passed under looser thresholds (a trigger's,
a hand-written JSON's) does not pass here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import InputError
from training.gates.verdict import (
    BenchmarkRef,
    GateConfig,
    GateResult,
    Verdict,
    _default_benchmarks,
    failed_reasons,
)

# threshold -> +1 when a larger value is stricter, -1 when a smaller one is
_DIRECTION = {
    "margin_db": +1,
    "min_improvement_db": +1,
    "champion_tolerance_db": -1,
    "latency_budget_ms": -1,
    "export_atol": -1,
}
THRESHOLDS = (*_DIRECTION, "golden_output_range")


class GatePolicyError(InputError, ValueError):
    """A gate override is looser than the configured policy, or not a threshold at all."""


class ThresholdPolicy(BaseModel):
    """The tightening rules every model kind's gate policy shares: `DIRECTIONS` names each threshold a
    trigger may set (+1: larger is stricter, -1: smaller is), `SETTINGS` the settings section it lives in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    DIRECTIONS: ClassVar[dict[str, int]] = {}
    SETTINGS: ClassVar[str] = "gates"

    def thresholds(self) -> tuple[str, ...]:
        return tuple(self.DIRECTIONS)

    def failures(self, verdict: Verdict) -> list[str]:
        """Why a recorded verdict does not pass under this policy (empty: it passes)."""
        raise NotImplementedError

    def recorded_failures(
        self, verdict: Verdict, config_type: type, measured_by: str, split_field: str,
        gates: Callable[[Verdict, Any], list[GateResult]],
    ) -> list[str]:  # fmt: skip
        """`failures` of a kind whose verdicts carry a `config_type` config scored on the held-out split named
        `split_field` (on the policy and on the config): the verdict's own reasons, a failed safe load, a
        verdict of another validator or split, thresholds looser than this policy's, and `gates(verdict, self)`
        re-applied."""
        problems = list(verdict.reasons) if not verdict.passed else []
        problems += [f"{g.gate}: {g.detail}" for g in verdict.gates if g.gate == "safe_load" and not g.passed]
        if verdict.meta is None:
            return problems or ["the verdict has no loaded checkpoint"]
        if not isinstance(verdict.config, config_type):
            return [*problems, f"the verdict was not measured by the {measured_by} validator"]
        scored, required = getattr(verdict.config, split_field), getattr(self, split_field)
        if scored != required:
            problems.append(f"verdict scored split {scored!r}, the policy requires {required!r}")
        problems += [f"verdict measured with {p}" for p in self.looser(verdict.config)]
        problems += failed_reasons(gates(verdict, self))
        return list(dict.fromkeys(problems))

    def release_config(self, recipe: str, partitions: Sequence[str], device: str) -> Any:
        """The gate config of a release (training/registry/release.py): these thresholds, measured on the sample
        partitions the candidate was trained from (their held-out split), on `device`."""
        raise NotImplementedError

    def tightened(self, overrides: Mapping[str, Any] | None) -> ThresholdPolicy:
        """This policy with a trigger's thresholds; GatePolicyError for a looser one or another key."""
        overrides = dict(overrides or {})
        allowed = self.thresholds()
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise GatePolicyError(
                f"gates {unknown} cannot be set by a trigger; it may tighten only {list(allowed)} "
                f"(the sets and the rest are settings: {self.SETTINGS}.*)"
            )
        try:
            candidate = type(self).model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            raise GatePolicyError(
                f"invalid gates: {exc.errors()[0]['msg']} ({exc.errors()[0]['loc']})"
            ) from None
        looser = self.looser(candidate)
        if looser:
            raise GatePolicyError(
                "a trigger may only tighten the gates: "
                + "; ".join(looser)
                + f" ({self.SETTINGS}.* in the settings)"
            )
        return candidate

    def looser(self, other: Any) -> list[str]:
        """Each threshold of `other` (a policy or the config a verdict was measured with) that is looser
        than this policy's, as 'name=value < policy value'."""
        problems = []
        for name, direction in self.DIRECTIONS.items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if (theirs - mine) * direction < 0:
                problems.append(f"{name}={theirs} is looser than the policy's {mine}")
        return problems


class GatePolicy(ThresholdPolicy):
    """The thresholds every candidate must meet; owned by the deployment's settings, not by a trigger."""

    DIRECTIONS: ClassVar[dict[str, int]] = _DIRECTION
    SETTINGS: ClassVar[str] = "gates.sr"

    margin_db: float = 0.3  # PSNR-Y over bicubic required on every set
    champion_tolerance_db: float = Field(default=0.05, ge=0)  # per-set slack below the champion
    min_improvement_db: float = 0.0  # mean gain over the champion needed to replace it
    latency_budget_ms: float = Field(default=10_000.0, gt=0)  # the reference image through the tiled path
    export_atol: float = Field(default=1e-5, gt=0)  # exported model vs eager
    golden_output_range: tuple[float, float] = (-0.25, 1.25)
    # every set is required; references as in pipeline/reference_sets.py (default: reference/<name> on the root)
    benchmarks: dict[str, BenchmarkRef] = Field(default_factory=_default_benchmarks)
    pair_split: str | None = "test"  # also required: the split of the checkpoint's recipe; None = not scored

    def thresholds(self) -> tuple[str, ...]:
        return THRESHOLDS

    def release_config(self, recipe: str, partitions: Sequence[str], device: str) -> GateConfig:
        return self.gate_config(pair_recipe=recipe, pair_partitions=list(partitions), device=device)

    def gate_config(self, **measurement: Any) -> GateConfig:
        """The GateConfig of one validation: these thresholds and sets, plus how to measure."""
        fields = {name: getattr(self, name) for name in THRESHOLDS}
        fields["benchmarks"] = self.benchmarks
        fields["settings_key"] = self.SETTINGS
        if self.pair_split is None:
            measurement["pair_recipe"] = None
        else:
            measurement.setdefault("pair_split", self.pair_split)
        return GateConfig.model_validate({**fields, **measurement})

    def looser(self, other: GatePolicy | GateConfig) -> list[str]:
        problems = super().looser(other)
        (low, high), (other_low, other_high) = self.golden_output_range, other.golden_output_range
        if other_low < low or other_high > high:
            problems.append(
                f"golden_output_range={list(other.golden_output_range)} is wider than the policy's "
                f"{list(self.golden_output_range)}"
            )
        return problems

    def failures(self, verdict: Verdict) -> list[str]:
        """Why `verdict` does not pass under this policy (empty: it passes). Re-applies every threshold."""
        problems = list(verdict.reasons) if not verdict.passed else []
        problems += [
            f"{g.gate}: {g.detail}"
            for g in verdict.gates
            if g.gate in ("safe_load", "golden") and not g.passed
        ]
        if verdict.meta is None:
            return problems or ["the verdict has no loaded checkpoint"]
        scored = {s.name for s in verdict.scores}
        required = set(self.benchmarks)
        if self.pair_split is not None and verdict.meta.recipe:
            required.add(f"pairs/{verdict.meta.recipe}:{self.pair_split}")
        problems += [f"required set {name!r} was not scored" for name in sorted(required - scored)]
        problems += [f"verdict measured with {p}" for p in self.looser(verdict.config)]
        problems += failed_reasons(threshold_gates(verdict, self, verdict.meta.scale))
        return list(dict.fromkeys(problems))


class RestoreGatePolicy(GatePolicy):
    """A restorer's thresholds (scale 1, settings `gates.restore.*`): its PSNR-Y over the degraded input
    (the baseline role at scale 1) on the held-out pairs of the recipe it was trained on. No HR benchmark
    folder by default: the gates' folders are degraded by bicubic downscaling, which a restorer never sees."""

    SETTINGS: ClassVar[str] = "gates.restore"

    margin_db: float = 1.0  # PSNR-Y over the degraded input required on every set
    benchmarks: dict[str, BenchmarkRef] = Field(default_factory=dict)


def _gate(
    name: str, passed: bool, measured: float | None, threshold: float | None, detail: str
) -> GateResult:
    return GateResult(gate=name, passed=passed, measured=measured, threshold=threshold, detail=detail)


def threshold_gates(verdict: Verdict, policy: GatePolicy | GateConfig, scale: int) -> list[GateResult]:
    """The threshold gates on a verdict's measurements: margin over bicubic (a restorer: its input) per set, the champion's
    scale, tolerance and mean improvement, latency, export. `policy` may be a GateConfig (same names)."""
    gates = []
    baseline = "the degraded input" if scale == 1 else "bicubic"
    for s in verdict.scores:
        gain = s.psnr_y - s.bicubic_psnr_y
        detail = f"{s.psnr_y:.3f} dB vs {baseline} {s.bicubic_psnr_y:.3f} dB"
        gates.append(
            _gate(f"bicubic_margin:{s.name}", gain >= policy.margin_db, gain, policy.margin_db, detail)
        )
    gates += _champion_gates(verdict, policy, scale)
    if verdict.latency_ms is not None:
        budget = policy.latency_budget_ms
        gates.append(
            _gate(
                "latency",
                verdict.latency_ms <= budget,
                verdict.latency_ms,
                budget,
                "ms to upscale the reference image",
            )
        )
    if verdict.export:
        diff = verdict.export.get("max_abs_diff", float("inf"))
        passed = bool(verdict.export.get("passed")) and diff <= policy.export_atol
        shapes = verdict.export.get("checked_shapes") or [verdict.export.get("input_shape")]
        detail = verdict.export.get("error") or f"exported vs eager on {shapes}"
        gates.append(_gate("export", passed, diff, policy.export_atol, detail))
    return gates


def _champion_gates(verdict: Verdict, policy: GatePolicy | GateConfig, scale: int) -> list[GateResult]:
    champion = verdict.champion
    if champion is not None and champion.found and champion.scale != scale:
        detail = f"champion {champion.uri} is x{champion.scale}, the candidate x{scale}: it cannot replace it"
        return [_gate("champion_scale", False, None, None, detail)]
    gates = []
    compared = [s for s in verdict.scores if s.champion_psnr_y is not None]
    tolerance = policy.champion_tolerance_db
    for s in compared:
        delta = s.psnr_y - s.champion_psnr_y
        detail = f"{s.psnr_y:.3f} dB vs champion {s.champion_psnr_y:.3f} dB"
        gates.append(_gate(f"champion_tolerance:{s.name}", delta >= -tolerance, delta, -tolerance, detail))
    if compared:
        gain = float(np.mean([s.psnr_y - s.champion_psnr_y for s in compared]))
        passed, detail = gain >= policy.min_improvement_db, "mean PSNR-Y gain over the champion"
    else:
        gain, passed = None, True
        detail = champion.note if champion is not None else "no champion given: nothing to beat"
    return [*gates, _gate("min_improvement", passed, gain, policy.min_improvement_db, detail)]
