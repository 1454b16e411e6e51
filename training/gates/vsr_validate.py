"""Decide whether a video-SR checkpoint may serve: score held-out clips, then apply the gates.

In: a checkpoint URI, a `VsrGateConfig` (thresholds from `VsrGatePolicy` plus which clip partitions and
split to score), optionally the loaded champion (`Champion`) and the single-frame champion (`reference`, the
image SR model a video falls back to), and a `Storage` holding
`pairs/synthetic_clips_x4`. Out: a `Validation` whose `Verdict` holds the metrics (over every frame
of every clip: psnr_y / ssim_y and bicubic_psnr_y / bicubic_ssim_y, `temporal_error` and its bicubic twin
(pipeline/video/measure.py), the champion's as `champion/<name>` and the single-frame champion's as
`single_frame/<name>` on the same clips), the TorchScript
export check and one output frame's latency, with one `GateResult` per gate (training/gates/vsr_gates.py,
the same code promotion re-applies).

Every frame of a clip is upscaled from its own window (the clip's ends repeated, as `crisp upscale`
serves a video), so the temporal error sees exactly what a viewer would.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import numpy as np
import torch

from pipeline.degrade.bicubic import bicubic_upscale
from pipeline.sr_metrics import ssim_y
from pipeline.video.clips import CLIPS, SCALE
from pipeline.video.measure import frame_psnr_y, temporal_error
from training.archs import input_frames
from training.data.catalog import DataError
from training.data.clips import SPANS, decode_clip, load_clip_catalog
from training.data.samples import MemberReader
from training.gates.safe_load import CheckpointRejected, LoadReason, safe_load
from training.gates.validate import Champion, Validation, read_candidate
from training.gates.verdict import GateResult, VsrGateConfig, failed_reasons
from training.gates.vsr_gates import CHAMPION_PREFIX, SINGLE_FRAME_PREFIX, vsr_threshold_gates
from training.serve.export import export_torchscript
from training.serve.upscale import upscale_window

LATENCY_LR = (90, 160)  # a 640 x 360 output frame


def held_out_clips(storage: Any, config: VsrGateConfig) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """(HR frames, LR frames, matrices) of the held-out clips (first `max_clips` by sample_id)."""
    catalog = load_clip_catalog(storage, config.clip_partitions or "all")
    splits = catalog.rows["split"].to_pylist()
    rows = [r for r, name in enumerate(splits) if name == config.clip_split][: config.max_clips]
    if not rows:
        raise DataError(f"no {config.clip_split!r} clips in pairs/{CLIPS} {catalog.partitions}")
    reader = MemberReader(catalog.rows, storage.root, storage.options, SPANS)
    frames, params = catalog.rows["frames"].to_pylist(), catalog.rows["params"].to_pylist()
    clips = []
    for row, members in zip(rows, reader.read_members(rows), strict=True):
        hr, lr = decode_clip(members, frames[row])
        clips.append((hr, lr, json.loads(params[row])["matrices"]))
    return clips


def upscale_clip(model: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    """Every frame of `lr` (frames x h x w x 3) super-resolved from its window, the ends repeated."""
    window = input_frames(model)
    half = window // 2
    padded = [lr[0]] * half + list(lr) + [lr[-1]] * half
    tile = max(lr.shape[1:3]) + 1
    return np.stack(
        [upscale_window(model, padded[t : t + window], SCALE, tile=tile, overlap=0, device="cpu")
         for t in range(len(lr))]
    )  # fmt: skip


def clip_measures(
    outputs: list[np.ndarray], clips: list[tuple[np.ndarray, np.ndarray, list]]
) -> dict[str, float]:
    """Mean PSNR-Y / SSIM-Y over every frame and mean temporal error over the clips."""
    psnrs, ssims, temporals = [], [], []
    for out, (hr, _, matrices) in zip(outputs, clips, strict=True):
        psnrs += frame_psnr_y(out, hr, SCALE)
        ssims += [ssim_y(o, g, SCALE) for o, g in zip(out, hr, strict=True)]
        temporals.append(temporal_error(out, hr, matrices))
    return {
        "psnr_y": float(np.mean(psnrs)),
        "ssim_y": float(np.mean(ssims)),
        "temporal_error": float(np.mean(temporals)),
    }


def latency_window(frames: int) -> list[np.ndarray]:
    """`frames` LR frames of LATENCY_LR, random pixels panned one px to the right per frame."""
    height, width = LATENCY_LR
    base = np.random.default_rng(0).integers(0, 256, (height, width + frames, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, t : t + width]) for t in range(frames)]


def frame_latency_ms(model: torch.nn.Module, repeats: int) -> float:
    """Median ms for one 640 x 360 output frame from a 160 x 90 window (aligned and tiled as served), one
    thread: random pixels panned by one LR px per frame, so an aligning model's flow has motion to find."""
    window = latency_window(input_frames(model))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        upscale_window(model, window, SCALE, device="cpu")
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            upscale_window(model, window, SCALE, device="cpu")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def validate_vsr(
    uri: str, config: VsrGateConfig | None = None, champion: Champion | None = None, *, storage: Any = None,
    storage_options: dict[str, Any] | None = None, reference: Champion | None = None,
) -> Validation:  # fmt: skip
    """The verdict of checkpoint `uri` plus the checkpoint bytes; `storage` holds the clips; `reference`:
    the single-frame champion (a x4 image model, scored frame by frame; another scale is refused)."""
    config = config or VsrGateConfig()
    if storage is None:
        raise ValueError(f"validate_vsr needs the storage that holds pairs/{CLIPS}")
    single_frame = reference.module if reference is not None else None
    if single_frame is not None and (
        reference.ref.scale not in (None, SCALE) or input_frames(single_frame) != 1
    ):
        raise ValueError(f"the single-frame reference {reference.ref.uri} is not a x{SCALE} image model")
    uri = str(uri)
    verdict, data, options = read_candidate(uri, config, storage, storage_options)
    try:
        model, meta = safe_load(uri, storage_options=options, data=data)
        if meta.task != "vsr":
            raise CheckpointRejected(
                LoadReason.UNKNOWN_ARCH, f"{uri} is a {meta.task} model, not a video-SR model"
            )
    except CheckpointRejected as exc:
        gate = GateResult(gate="safe_load", passed=False, detail=str(exc))
        return Validation(verdict.model_copy(update={"gates": [gate], "reasons": [str(exc)]}), None, data)
    gates = [GateResult(gate="safe_load", passed=True, detail=f"{meta.arch}, {meta.weights} weights")]
    model = model.eval()
    clips = held_out_clips(storage, config)
    with torch.no_grad():
        metrics = clip_measures([upscale_clip(model, lr) for _, lr, _ in clips], clips)
        bicubic = clip_measures(
            [np.stack([bicubic_upscale(f, SCALE) for f in lr]) for _, lr, _ in clips], clips
        )
        metrics |= {f"bicubic_{name}": value for name, value in bicubic.items()}
        if champion is not None and champion.module is not None:
            held = clip_measures([upscale_clip(champion.module.eval(), lr) for _, lr, _ in clips], clips)
            metrics |= {f"{CHAMPION_PREFIX}{name}": value for name, value in held.items()}
        if single_frame is not None:
            single = clip_measures([upscale_clip(single_frame.eval(), lr) for _, lr, _ in clips], clips)
            metrics |= {f"{SINGLE_FRAME_PREFIX}{name}": value for name, value in single.items()}
    metrics["clips"] = float(len(clips))
    example = torch.rand(1, 3 * input_frames(model), 24, 40, generator=torch.Generator().manual_seed(0))
    exported = export_torchscript(model, example, config.export_atol)
    export = {"format": "torchscript", "max_abs_diff": exported.max_abs_diff, "passed": exported.passed,
              "shape_generic": exported.shape_generic, "input_shape": list(exported.input_shape),
              "checked_shapes": [list(s) for s in exported.checked_shapes], "error": exported.error}  # fmt: skip
    verdict = verdict.model_copy(
        update={"meta": meta, "metrics": metrics, "export": export,
                "latency_ms": frame_latency_ms(model, config.latency_repeats),
                "champion": champion.ref if champion is not None else None}
    )  # fmt: skip
    gates += vsr_threshold_gates(verdict, config)
    reasons = failed_reasons(gates)
    verdict = verdict.model_copy(update={"gates": gates, "reasons": reasons, "passed": not reasons})
    return Validation(verdict, exported, data)
