"""The records of a validation: what was measured (`GateConfig`), what came out (`Verdict`).

In: nothing (plain pydantic records, JSON round-trip). Out: `CheckpointMeta` (what a checkpoint says it
is, training/gates/safe_load.py fills it), `GateConfig` (which sets to score, how, and
the thresholds the gates applied), `SetScore` (PSNR-Y / SSIM-Y of the model, bicubic and the champion on
one set), `GateResult` (one gate: passed, measured, threshold), `ChampionRef` (which champion was
compared), and `Verdict` (all of them plus the checkpoint's identity and the failure reasons).

These records import nothing that measures, loads or registers (no torch either: the settings own the
gate policy, training/gates/policy.py, and load fast), so the validator, the gate policy, the
registry and the report can all read a verdict without importing each other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from pipeline.reference_sets import PREFIX as REFERENCE_PREFIX

# A benchmark set reference: a path relative to the storage root (pushed with `crisp reference push`), an
# fsspec URI, or an absolute local folder (pipeline/reference_sets.py). Paths are accepted and kept as text.
BenchmarkRef = Annotated[str, BeforeValidator(lambda value: str(value) if isinstance(value, Path) else value)]


def _default_benchmarks() -> dict[str, str]:
    return {name: f"{REFERENCE_PREFIX}/{name}" for name in ("Set5", "Set14")}


class CheckpointMeta(BaseModel):
    """What the checkpoint says it is (crisp_meta), plus which weights were loaded and from where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = "sr"  # the model kind (training/tasks) whose arch zoo builds `arch`
    arch: str
    scale: int | None = None  # None for models that do not upscale (quality)
    arch_kwargs: dict[str, Any] = {}
    data_manifest_hash: Any = None  # str, or one hash per partition; recorded as-is for lineage
    recipe: str | None = None
    schema_version: int | str | None = None
    code_version: str | None = None
    pair_partitions: list[str] = []
    init_from: str | None = None  # the checkpoint training started from (a GAN's L1 twin)
    weights: str = "live"  # "ema" or "live"
    source: str = ""
    registry_name: str | None = None
    registry_version: int | None = None


class GateConfig(BaseModel):
    """One validation's inputs: the thresholds (see training/gates/policy.py) and how to measure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin_db: float = 0.3  # PSNR-Y over bicubic required on every set
    champion_tolerance_db: float = Field(default=0.05, ge=0)  # per-set slack below the champion
    min_improvement_db: float = 0.0  # mean gain over the champion needed to replace it
    latency_budget_ms: float = Field(default=10_000.0, gt=0)  # reference image, tiled path; loose CPU default
    reference_image: Path | None = None  # an LR photo; None = a deterministic synthetic image
    reference_lr_size: int = Field(default=256, ge=8)  # side of the synthetic reference (x4 -> 1024 px)
    latency_repeats: int = Field(default=3, ge=1)
    scale: int | None = None  # the scale served; None = the checkpoint's own
    benchmarks: dict[str, BenchmarkRef] = Field(default_factory=_default_benchmarks)  # reference/Set5, ...
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
    settings_key: str = "gates.sr"  # where the policy's thresholds and sets live: messages name it


class GanGateConfig(GateConfig):
    """A GAN model's validation: the SR gates plus its own against the L1 twin it was fine-tuned from
    (training/gates/gan_gates.py), on the same held-out pairs."""

    max_psnr_drop_db: float = 2.5  # mean PSNR-Y below the twin's
    min_niqe_gain: float = 1.0  # mean NIQE of the twin's outputs minus the GAN's (lower NIQE = more natural)
    max_edge_psnr_drop_db: float = 1.5  # PSNR-Y on the HR's edge / text mask below the twin's
    edge_threshold: float = Field(default=100.0, gt=0)  # Sobel magnitude of the HR's Y (0-255) on the mask
    quality_model: str | None = None  # the learned quality model (ONNX / models:/...): preference measured
    min_quality_preference: float = Field(default=0.7, ge=0, le=1)  # share of images it scores higher
    twin: str | None = None  # the L1 twin's checkpoint; None: the one the candidate was started from


class QualityGateConfig(BaseModel):
    """One quality-model validation's inputs: the thresholds (training/gates/quality_gates.py) and what to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_srcc: float = 0.8  # Spearman of predicted vs target scores on the frozen validation grid
    min_family_srcc: float = 0.5  # ... and within every distortion family
    min_pair_accuracy: float = 0.8  # in-reference pairs with different targets ordered correctly
    champion_tolerance: float = Field(default=0.01, ge=0)  # SRCC slack below the champion
    latency_budget_ms: float = Field(default=50.0, gt=0)  # exported model, one thread, a 512-px photo
    export_atol: float = Field(default=1e-4, gt=0)  # ONNX Runtime vs eager, in score units
    reject_threshold: float = Field(default=2.5, ge=0, le=5)  # the shipped ingest.min_quality default
    grid_partitions: list[str] = []  # pairs/quality_grid partitions holding the frozen validation grid
    grid_split: str = "val"
    max_groups: int | None = Field(default=None, ge=1)  # references scored (None: all of the split)
    latency_repeats: int = Field(default=5, ge=1)


class MatteGateConfig(BaseModel):
    """One matte-model validation's inputs: the thresholds (training/gates/matte_gates.py) and what to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_iou: float = 0.9  # mean IoU of the alpha >= 0.5 masks on held-out composites
    max_mae: float = Field(default=0.05, gt=0)  # mean absolute alpha error
    champion_tolerance: float = Field(default=0.005, ge=0)  # IoU slack below the champion
    latency_budget_ms: float = Field(default=150.0, gt=0)  # exported model + guided upsampling, 1000 px photo
    export_atol: float = Field(default=1e-4, gt=0)  # ONNX Runtime vs eager, alpha units
    canvas_long_side: int = Field(default=320, ge=32)  # the size the served model predicts at
    sample_partitions: list[str] = []  # pairs/matte_composites partitions holding the held-out composites
    sample_split: str = "val"
    max_samples: int | None = Field(default=None, ge=1)  # composites scored (None: all of the split)
    latency_repeats: int = Field(default=3, ge=1)


class VsrGateConfig(BaseModel):
    """One video-SR validation's inputs: the thresholds (training/gates/vsr_gates.py) and what to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_gain_db: float = 0.3  # centre-frame PSNR-Y over bicubic on held-out clips
    max_temporal_ratio: float = Field(default=1.0, gt=0)  # temporal error <= this x bicubic's
    vsr_champion_tolerance_db: float = Field(default=0.05, ge=0)  # PSNR-Y slack below the champion
    min_gain_over_single_frame_db: float = 0.0  # PSNR-Y over the single-frame (image) SR champion
    max_single_frame_temporal_ratio: float = Field(default=1.0, gt=0)  # temporal error <= this x its
    frame_latency_budget_ms: float = Field(default=2000.0, gt=0)  # one 640 x 360 output frame, one thread
    export_atol: float = Field(default=1e-4, gt=0)
    clip_partitions: list[str] = []  # pairs/synthetic_clips_x4 partitions holding the held-out clips
    clip_split: str = "val"
    max_clips: int | None = Field(default=None, ge=1)  # clips scored (None: all of the split)
    latency_repeats: int = Field(default=2, ge=1)


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

    def reason(self) -> str:
        """The one line a verdict's reasons and a refused promotion give for this gate."""
        return f"{self.gate}: {self.detail} (measured {self.measured}, threshold {self.threshold})"


def failed_reasons(gates: list[GateResult]) -> list[str]:
    """The reason of every gate that did not pass, in order."""
    return [g.reason() for g in gates if not g.passed]


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
    metrics: dict[str, float] = {}  # task measurements without a benchmark set (quality: srcc, plcc, ...)
    config: (
        GateConfig | GanGateConfig | QualityGateConfig | MatteGateConfig | VsrGateConfig
    )  # by shape: all forbid extra keys
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def score(self, name: str) -> SetScore:
        return next(s for s in self.scores if s.name == name)

    def gate(self, name: str) -> GateResult:
        return next(g for g in self.gates if g.gate == name)

    def summary(self) -> str:
        """A short line for a registry tag (tag values have size limits; the full verdict is an artifact)."""
        head = "passed" if self.passed else "failed"
        sets = ", ".join(f"{s.name} {s.psnr_y:.2f} dB (bicubic {s.bicubic_psnr_y:.2f})" for s in self.scores)
        sets = sets or ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items() if "/" not in k)
        failed = ", ".join(g.gate for g in self.gates if not g.passed)
        return f"{head}: {sets}" + (f"; failed {failed}" if failed else "")
