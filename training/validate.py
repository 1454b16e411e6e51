"""Decide whether a checkpoint may serve: measure it, then apply the promotion gates.

In: a checkpoint URI, a `GateConfig`, optionally the current champion (`models:/<name>@champion` or a
checkpoint path), a `Storage` (for a pair test split) and a registry config. Out: a `Verdict` (pydantic,
JSON-serializable) with every measured value, one `GateResult` per gate and the reasons of any failure.

Steps: safe load (training/safe_load.py: weights-only, meta/arch/scale consistency, finite weights);
a golden forward pass on a fixed deterministic input (finite, right shape, values in range); the
benchmark sets and the pair test split (training/measure.py), each next to bicubic and, when there is
one, the champion on the same images; latency of the serving path (tiled upscale) on a reference
image; a TorchScript export checked against eager within `export_atol` (training/export.py).

Gates, all configurable: PSNR-Y >= bicubic + margin_db on every set; PSNR-Y >= champion - tolerance on
every set; mean PSNR-Y gain over the champion >= min_improvement_db (default 0.0: a challenger at least
as good on average may replace the champion; raise it to demand a real gain before switching);
latency <= budget; the golden pass; the export. With no champion registered yet the champion gates
pass, noted as such; a champion of another scale fails `champion_scale` (it cannot be replaced by it).
A randomly initialised model fails the margin gate (it is far below bicubic).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from pipeline.reference_data import benchmark_dir
from training import measure
from training.archs import build_arch
from training.export import export_torchscript
from training.safe_load import CheckpointMeta, CheckpointRejected, LoadReason, safe_load
from training.upscale import resolve_device


def _default_benchmarks() -> dict[str, Path]:
    return {name: benchmark_dir(name) for name in ("Set5", "Set14")}


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    margin_db: float = 0.3  # PSNR-Y over bicubic required on every set
    champion_tolerance_db: float = Field(default=0.05, ge=0)  # per-set slack below the champion
    min_improvement_db: float = 0.0  # mean gain over the champion needed to replace it
    latency_budget_ms: float = Field(default=10_000.0, gt=0)  # reference image, tiled path; loose CPU default
    reference_image: Path | None = None  # an LR photo; None = a deterministic synthetic image
    reference_lr_size: int = Field(default=256, ge=8)  # side of the synthetic reference (x4 -> 1024 px)
    latency_repeats: int = Field(default=3, ge=1)
    scale: int | None = None  # the scale served; None = the checkpoint's own
    benchmarks: dict[str, Path] = Field(
        default_factory=_default_benchmarks
    )  # Set5/Set14 of CRISP_SHARED_DATA
    pair_recipe: str | None = None  # e.g. bicubic_x4: also score this recipe's pair split
    pair_partitions: list[str] = []  # partition dates of pairs/<pair_recipe>
    pair_split: str = "test"
    max_pairs: int = Field(default=200, ge=1)
    golden_size: int = Field(default=32, ge=8)  # LR side of the golden input
    golden_output_range: tuple[float, float] = (-0.25, 1.25)
    export_format: Literal["torchscript"] = "torchscript"
    export_atol: float = Field(default=1e-5, gt=0)
    tile: int = 256  # serving tile (LR px) used for the latency measurement
    overlap: int = 16
    device: str = "cpu"  # "auto" uses CUDA when present


class SetScore(BaseModel):
    name: str
    images: int
    psnr_y: float
    ssim_y: float
    bicubic_psnr_y: float
    bicubic_ssim_y: float
    champion_psnr_y: float | None = None
    champion_ssim_y: float | None = None


class GateResult(BaseModel):
    gate: str
    passed: bool
    measured: float | None = None
    threshold: float | None = None
    detail: str = ""


class ChampionRef(BaseModel):
    uri: str
    found: bool
    version: int | None = None
    scale: int | None = None
    note: str = ""


class Verdict(BaseModel):
    passed: bool
    checkpoint: str
    checkpoint_sha256: str | None = None
    meta: CheckpointMeta | None = None
    scores: list[SetScore] = []
    golden: dict[str, Any] = {}
    latency_ms: float | None = None
    export: dict[str, Any] = {}
    champion: ChampionRef | None = None
    gates: list[GateResult] = []
    reasons: list[str] = []
    config: GateConfig
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def score(self, name: str) -> SetScore:
        return next(s for s in self.scores if s.name == name)

    def gate(self, name: str) -> GateResult:
        return next(g for g in self.gates if g.gate == name)


def _resolve_champion(uri: str | None, registry: Any) -> tuple[nn.Module | None, ChampionRef | None]:
    if not uri:
        return None, None
    if uri.startswith("models:/"):
        from training.registry import UnknownModelError, load_model

        try:
            module, meta = load_model(uri, registry)
        except UnknownModelError as exc:
            return None, ChampionRef(uri=uri, found=False, note=f"no champion yet: {exc}")
    else:
        module, meta = safe_load(uri)
    return module, ChampionRef(uri=uri, found=True, version=meta.registry_version, scale=meta.scale)


def _sha256(uri: str, options: Any) -> str | None:
    try:
        with fsspec.open(uri, "rb", **dict(options or {})) as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:  # a missing file is reported by safe_load with its reason
        return None


def _scores(results: dict[str, dict[str, Any]]) -> list[SetScore]:
    scores = []
    for name, roles in results.items():
        champion = roles.get("champion", (None, None))
        scores.append(
            SetScore(
                name=name,
                images=roles["images"],
                psnr_y=roles["model"][0],
                ssim_y=roles["model"][1],
                bicubic_psnr_y=roles["bicubic"][0],
                bicubic_ssim_y=roles["bicubic"][1],
                champion_psnr_y=champion[0],
                champion_ssim_y=champion[1],
            )
        )
    return scores


def _gate(
    name: str, passed: bool, measured: float | None, threshold: float | None, detail: str
) -> GateResult:
    return GateResult(gate=name, passed=passed, measured=measured, threshold=threshold, detail=detail)


def _quality_gates(verdict: Verdict, config: GateConfig, scale: int) -> list[GateResult]:
    gates = []
    for s in verdict.scores:
        gain = s.psnr_y - s.bicubic_psnr_y
        detail = f"{s.psnr_y:.3f} dB vs bicubic {s.bicubic_psnr_y:.3f} dB"
        gates.append(
            _gate(f"bicubic_margin:{s.name}", gain >= config.margin_db, gain, config.margin_db, detail)
        )
    champion = verdict.champion
    if champion is not None and champion.found and champion.scale != scale:
        detail = f"champion {champion.uri} is x{champion.scale}, the candidate x{scale}: it cannot replace it"
        return [*gates, _gate("champion_scale", False, None, None, detail)]
    compared = [s for s in verdict.scores if s.champion_psnr_y is not None]
    tolerance = config.champion_tolerance_db
    for s in compared:
        delta = s.psnr_y - s.champion_psnr_y
        detail = f"{s.psnr_y:.3f} dB vs champion {s.champion_psnr_y:.3f} dB"
        gates.append(_gate(f"champion_tolerance:{s.name}", delta >= -tolerance, delta, -tolerance, detail))
    if compared:
        gain = float(np.mean([s.psnr_y - s.champion_psnr_y for s in compared]))
        passed, detail = gain >= config.min_improvement_db, "mean PSNR-Y gain over the champion"
    else:
        gain, passed = None, True
        detail = champion.note if champion is not None else "no champion given: nothing to beat"
    return [*gates, _gate("min_improvement", passed, gain, config.min_improvement_db, detail)]


def validate_checkpoint(
    uri: str,
    config: GateConfig | None = None,
    champion: str | None = None,
    *,
    storage: Any = None,
    registry: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Verdict:
    """Measure checkpoint `uri` and apply the gates; bad configuration raises ValueError.

    `storage` (a pipeline Storage) is where pair partitions are read; `storage_options` open the
    checkpoint (default: the storage's options when `uri` is on the same scheme); `registry` is the
    RegistryConfig used to resolve a `models:/` champion.
    """
    config = config or GateConfig()
    uri = str(uri)
    same_store = storage is not None and uri.startswith(f"{storage.scheme}://")
    options = storage_options if storage_options is not None else storage.options if same_store else None
    verdict = Verdict(passed=False, checkpoint=uri, checkpoint_sha256=_sha256(uri, options), config=config)
    try:
        model, meta = safe_load(uri, expected_scale=config.scale, storage_options=options)
    except CheckpointRejected as exc:
        gate = _gate("safe_load", False, None, None, str(exc))
        return verdict.model_copy(update={"gates": [gate], "reasons": [str(exc)]})
    scale = meta.scale
    golden, problem = measure.golden_check(model, config.golden_size, scale, config.golden_output_range)
    gates = [_gate("safe_load", True, None, None, f"{meta.arch} x{scale}, {meta.weights} weights")]
    gates.append(_gate("golden", problem is None, None, None, problem or "finite, right shape, in range"))
    verdict = verdict.model_copy(update={"meta": meta, "golden": golden})
    if problem is not None:  # nothing downstream is meaningful for a model that emits garbage
        return verdict.model_copy(update={"gates": gates, "reasons": [f"golden: {problem}"]})

    # export on CPU, before the measurements move the model to the configured device
    exported = export_torchscript(model, measure.golden_input(config.golden_size), config.export_atol)
    champion_model, champion_ref = _resolve_champion(champion, registry)
    models = {"model": model, "bicubic": build_arch("bicubic", scale)}
    if champion_model is not None and champion_ref.scale == scale:
        models["champion"] = champion_model
    device = str(resolve_device(config.device))
    pairs = {}
    if config.pair_recipe and config.pair_partitions:
        if storage is None:
            raise ValueError(
                "GateConfig.pair_partitions is set but no storage was given to read the pairs from"
            )
        pair_set = f"pairs/{config.pair_recipe}:{config.pair_split}"
        pairs[pair_set] = measure.load_pair_split(
            storage, config.pair_recipe, config.pair_partitions, config.pair_split, config.max_pairs, scale
        )
    if not config.benchmarks and not pairs:  # with no set to score, no quality gate would run at all
        raise ValueError("no benchmark sets and no pair partitions configured: set GateConfig.benchmarks")
    scores = _scores(measure.score_sets(models, config.benchmarks, scale, pairs, device))
    reference = measure.reference_image(config.reference_image, config.reference_lr_size)
    latency = measure.latency_ms(
        model, reference, scale, config.tile, config.overlap, device, config.latency_repeats
    )
    export = {
        "format": config.export_format,
        "max_abs_diff": exported.max_abs_diff,
        "passed": exported.passed,
        "shape_generic": exported.shape_generic,
        "input_shape": list(exported.input_shape),
        "error": exported.error,
    }
    verdict = verdict.model_copy(
        update={"champion": champion_ref, "scores": scores, "latency_ms": latency, "export": export}
    )
    gates += _quality_gates(verdict, config, scale)
    budget = config.latency_budget_ms
    gates.append(_gate("latency", latency <= budget, latency, budget, "ms to upscale the reference image"))
    detail = exported.error or f"TorchScript vs eager on {list(exported.input_shape)}"
    gates.append(_gate("export", exported.passed, exported.max_abs_diff, config.export_atol, detail))
    reasons = [
        f"{g.gate}: {g.detail} (measured {g.measured}, threshold {g.threshold})"
        for g in gates
        if not g.passed
    ]
    return verdict.model_copy(update={"gates": gates, "reasons": reasons, "passed": not reasons})


def exit_code(verdict: Verdict) -> int:
    """CLI convention: 0 passed; 1 failed a gate or was rejected; 2 nothing to validate (no such file)."""
    if verdict.passed:
        return 0
    missing = any(r.startswith(LoadReason.NOT_FOUND.value) for r in verdict.reasons)
    return 2 if missing else 1
