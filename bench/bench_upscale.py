"""Upscale benchmark: `crisp upscale` throughput on CPU, and peak memory bounded by tile size, not area.

In: one product photo of ../shared/data/products/magento_luma (the first in catalog.csv with both sides >=
`crop`), its centre crop of `crop` x `crop` px (PNG) and that crop upsized with Pillow BICUBIC to `large` x
`large` px (PNG), T91 for a briefly trained residual ESPCN x4 (tests/support/checkpoints.py, 150 Adam steps:
throughput does not depend on the weights, the checkpoint makes the CLI path real), and `UpscaleBenchConfig`
from the environment (CRISP_BENCH_REPEATS, default 3; CRISP_BENCH_QUICK=1: 1 repeat).
Out: bench/results/upscale.json with
- throughput: megapixels/s of output of `training.serve.upscale.upscale_image` (tile 256, overlap 16, CPU, torch's
  default threads) on the crop, median of `repeats`; the whole-image (untiled) forward in the same run as the
  baseline; SAFMN and EDSR-baseline (random weights) timed on one tile and scaled to the crop's tile count;
- peak memory: max RSS of a process (os.wait4's rusage, one fresh process per figure) running
  `crisp upscale` (crisp.commands.upscale behind its own parser) on the crop and on the large input (PNG
  streamed to disk band by band) and on a 32 x 32 corner (the floor: interpreter, imports, weights), and
  of a child running the whole-image (untiled) forward on the crop (the baseline). Ratio peak(large) /
  peak(crop) next to the area ratio (large / crop)^2.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bench.results import figure, write_result
from pipeline.reference_data import product_photos_dir, t91_dir

REPO = Path(__file__).resolve().parents[1]
# `crisp upscale` exactly as crisp/cli.py runs it (its parser, then `run`), but registering only this
# subcommand, so the figure does not depend on the other subcommands' imports.
# Runs argv[2:] and writes its exit code and ru_maxrss (KiB on Linux) to the file argv[1].
LAUNCHER = (
    "import json, os, subprocess, sys; child = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(child.pid, 0); child.returncode = os.waitstatus_to_exitcode(status); "
    "json.dump({'rc': child.returncode, 'maxrss_kib': usage.ru_maxrss}, open(sys.argv[1], 'w'))"
)
UPSCALE_CLI = (
    "import argparse, sys; from crisp.commands import upscale; p = argparse.ArgumentParser(prog='crisp'); "
    "p.add_argument('--config'); upscale.register(p.add_subparsers(dest='command', required=True)); "
    "args = p.parse_args(); sys.exit(int(args.run(args) or 0))"
)


class UpscaleBenchConfig(BaseModel):
    """What one upscale benchmark run measures.

    - repeats: timed runs per throughput figure; medians (default 3, CRISP_BENCH_REPEATS; 1 when quick).
    - photos / t91: product photo folder (with catalog.csv) and T91 folder (defaults under ../shared/data).
    - crop: side of the throughput input and of the small memory input (default 1000, as issue 6 asks).
    - large: side of the large memory input (default 4000).
    - scale, tile, overlap: the model scale and `crisp upscale`'s tiling (defaults 4, 256, 16).
    - extra_archs: archs timed on one tile as extra figures (default safmn, edsr_baseline; empty to skip).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeats: int = Field(default=3, ge=1)
    quick: bool = False
    photos: Path = Field(default_factory=product_photos_dir)
    t91: Path = Field(default_factory=t91_dir)
    crop: int = Field(default=1000, ge=16)
    large: int = Field(default=4000, ge=16)
    scale: int = 4
    tile: int = Field(default=256, ge=8)
    overlap: int = Field(default=16, ge=0)
    extra_archs: tuple[str, ...] = ("safmn", "edsr_baseline")

    @classmethod
    def from_env(cls) -> UpscaleBenchConfig:
        quick = os.environ.get("CRISP_BENCH_QUICK", "") not in ("", "0")
        return cls(repeats=int(os.environ.get("CRISP_BENCH_REPEATS", "1" if quick else "3")), quick=quick)


def pick_photo(photos: Path, side: int) -> Path:
    """The first photo of catalog.csv whose width and height are both at least `side`."""
    with open(photos / "catalog.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if int(row["width"]) >= side and int(row["height"]) >= side:
                return photos / row["file"]
    raise ValueError(f"no photo in {photos}/catalog.csv has both sides >= {side}px; lower `crop`")


def prepare_inputs(photo: Path, crop: int, large: int, workdir: Path) -> tuple[Path, Path, Path]:
    """(crop.png, large.png, tiny.png): the photo's centre crop, that crop upsized with Pillow BICUBIC,
    and its 32 x 32 corner (for the floor: the CLI's fixed cost with next to no pixels)."""
    from PIL import Image

    with Image.open(photo) as img:
        rgb = img.convert("RGB")
    left, top = (rgb.width - crop) // 2, (rgb.height - crop) // 2
    small = rgb.crop((left, top, left + crop, top + crop))
    paths = tuple(workdir / f"{name}.png" for name in (f"crop_{crop}", f"large_{large}", "tiny"))
    small.save(paths[0], compress_level=1)
    small.resize((large, large), Image.Resampling.BICUBIC).save(paths[1], compress_level=1)
    small.crop((0, 0, 32, 32)).save(paths[2])
    return paths


def run_measured(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `command` as a grandchild under a small launcher; its own peak RSS (the launcher's os.wait4
    rusage of that one process), seconds (launcher start-up included, ~0.05 s) and exit code.

    Why a launcher: Linux carries the RSS high-water mark of the process image an exec replaces into the
    new program's ru_maxrss, and subprocess forks (vforks) this benchmark's own, large process: every
    direct child would report at least this process's RSS."""
    started = time.perf_counter()
    usage_file = log.with_suffix(".rusage.json")
    with open(log, "wb") as out:
        done = subprocess.run([sys.executable, "-c", LAUNCHER, str(usage_file), *command],
                              stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)  # fmt: skip
    seconds = time.perf_counter() - started
    usage = json.loads(usage_file.read_text()) if done.returncode == 0 else {"rc": done.returncode}
    if usage["rc"] != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(command)}` exited {usage['rc']}: {' | '.join(tail)}")
    return {"peak_rss_mib": round(usage["maxrss_kib"] / 1024, 1), "seconds": round(seconds, 2)}


def whole_image_forward(checkpoint: str, image: str, out: str) -> None:
    """Child entry for the baseline: one untiled forward over the whole image, saved as PNG by Pillow."""
    import numpy as np
    import torch
    from PIL import Image

    from training.gates.safe_load import safe_load

    model, _ = safe_load(checkpoint)
    with Image.open(image) as img:
        pixels = np.asarray(img.convert("RGB"))
    batch = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float().div_(255.0)
    with torch.inference_mode():
        result = model(batch).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)[0].permute(1, 2, 0)
    Image.fromarray(result.numpy()).save(out, compress_level=1)


def time_calls(call, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def throughput(name: str, output_pixels: int, seconds: list[float], **extra: Any) -> dict[str, Any]:
    """Median rate, plus the best run's (the least disturbed by other processes on a shared machine)."""
    rate, best = (round(output_pixels / 1e6 / f(seconds), 3) for f in (statistics.median, min))
    return {name: figure(rate, "output MP/s", best=best, runs_s=[round(s, 3) for s in seconds], **extra)}


def measure_throughput(config: UpscaleBenchConfig, checkpoint: Path, crop_path: Path) -> dict[str, Any]:
    """ESPCN tiled vs whole-image on the crop; extra archs on one tile, scaled to the crop's tile count."""
    import numpy as np
    import torch
    from PIL import Image

    from training.archs import build_arch
    from training.gates.safe_load import safe_load
    from training.serve.upscale import count_tiles, upscale_image

    s, tile, overlap = config.scale, config.tile, config.overlap
    with Image.open(crop_path) as img:
        pixels = np.asarray(img.convert("RGB"))
    out_pixels = pixels.shape[0] * pixels.shape[1] * s * s
    tiles = count_tiles(pixels.shape[0], pixels.shape[1], tile, overlap)
    model, _ = safe_load(str(checkpoint))
    common = {"threads": torch.get_num_threads(), "input": f"{pixels.shape[1]}x{pixels.shape[0]}"}
    upscale_image(model, pixels[:64, :64], s, tile, overlap, device="cpu")  # warm-up (allocator, kernels)
    tiled = time_calls(lambda: upscale_image(model, pixels, s, tile, overlap, device="cpu"), config.repeats)
    figures = throughput("espcn_x4_tiled_mp_per_s", out_pixels, tiled, tiles=tiles, **common)
    batch = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float().div_(255.0)

    def whole() -> None:
        with torch.inference_mode():
            model(batch)

    figures.update(throughput("espcn_x4_whole_image_mp_per_s", out_pixels, time_calls(whole, 1), **common))
    # Pixels the tiled path pushes through the model per input pixel (windows overlap, border windows shift).
    figures["tiling_compute_overhead"] = figure(
        round(tiles * tile * tile / (pixels.shape[0] * pixels.shape[1]), 3), "x input pixels", tiles=tiles
    )
    one_tile = np.ascontiguousarray(pixels[:tile, :tile])
    for arch in config.extra_archs:
        extra = build_arch(arch, s).eval()
        upscale_image(extra, one_tile[:32, :32], s, tile, overlap, device="cpu")
        per_tile = time_calls(lambda m=extra: upscale_image(m, one_tile, s, tile, overlap, device="cpu"), 1)
        estimate = [t * tiles for t in per_tile]  # the crop runs `tiles` windows of this same shape
        params = sum(p.numel() for p in extra.parameters())
        about = {"method": f"one {tile}px tile timed, x {tiles} tiles", "weights": "random",
                 "per_tile_s": [round(t, 3) for t in per_tile], "params": params}  # fmt: skip
        figures.update(
            throughput(f"{arch}_x4_tiled_mp_per_s_estimated", out_pixels, estimate, **about, **common)
        )
    return figures


def measure_memory(
    config: UpscaleBenchConfig, checkpoint: Path, inputs: tuple[Path, Path, Path], workdir: Path
) -> dict[str, dict[str, Any]]:
    """Peak RSS (MiB) of the CLI on the tiny (floor), crop and large inputs and of the whole-image forward."""
    crop_path, large_path, tiny_path = inputs
    py, env = sys.executable, {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(image: Path, name: str) -> dict[str, Any]:
        out = workdir / f"out_{name}"
        flags = ["--model", str(checkpoint), "--out", str(out), "--device", "cpu"]
        flags += ["--tile", str(config.tile), "--overlap", str(config.overlap)]
        command = [py, "-c", UPSCALE_CLI, "upscale", str(image), *flags]
        result = run_measured(command, workdir / f"{name}.log", env)
        written = sorted(out.glob("*.png"))
        result["output_bytes"] = sum(p.stat().st_size for p in written)
        for path in written:  # a 16000 px PNG is hundreds of MB: do not keep it
            path.unlink()
        return result

    def whole(name: str) -> dict[str, Any]:
        code = "import sys; from bench.bench_upscale import whole_image_forward as f; f(*sys.argv[1:])"
        out = workdir / f"{name}.png"
        command = [py, "-c", code, str(checkpoint), str(crop_path), str(out)]
        result = run_measured(command, workdir / f"{name}.log", env)
        out.unlink(missing_ok=True)
        return result

    return {
        "floor": cli(tiny_path, "floor"),
        "whole_crop": whole("whole_crop"),
        "tiled_crop": cli(crop_path, "tiled_crop"),
        "tiled_large": cli(large_path, "tiled_large"),
    }


def memory_figures(config: UpscaleBenchConfig, memory: dict[str, dict[str, Any]], speed: dict[str, Any]):
    """(figures, ratio) from the children's peaks and seconds and the in-process throughput figures."""
    c, g, s = config.crop, config.large, config.scale
    labels = {
        "floor": "`crisp upscale` on a 32x32 image: the CLI's fixed cost (interpreter, imports, weights)",
        "whole_crop": f"whole-image (untiled) forward on {c}x{c}, {c * s}px PNG written by Pillow",
        "tiled_crop": f"`crisp upscale` on {c}x{c}, tile {config.tile}, overlap {config.overlap}, streamed PNG",
        "tiled_large": f"`crisp upscale` on {g}x{g} -> {g * s}x{g * s} PNG streamed band by band",
    }
    figures = {
        f"peak_rss_{name}_mib": figure(
            result["peak_rss_mib"],
            "MiB",
            what=labels[name],
            **{k: v for k, v in result.items() if k != "peak_rss_mib"},
        )
        for name, result in memory.items()
    }
    peak = {name: result["peak_rss_mib"] for name, result in memory.items()}
    for name, side in (("tiled_crop", c), ("tiled_large", g)):
        figures[f"cli_{name}_end_to_end_mp_per_s"] = figure(
            round(side * side * s * s / 1e6 / memory[name]["seconds"], 3), "output MP/s",
            note="whole CLI call: start-up, model load, decode, tiles, PNG write",
        )  # fmt: skip
    above_floor = (peak["tiled_large"] - peak["floor"]) / max(peak["tiled_crop"] - peak["floor"], 1.0)
    tiled = speed["espcn_x4_tiled_mp_per_s"]["value"]
    whole = speed["espcn_x4_whole_image_mp_per_s"]["value"]
    ratio = {
        "peak_large_over_peak_crop": round(peak["tiled_large"] / peak["tiled_crop"], 3),
        "area_large_over_crop": round((g / c) ** 2, 3),
        "above_floor_large_over_crop": round(above_floor, 3),
        "tiled_crop_over_whole_image_crop": round(peak["tiled_crop"] / peak["whole_crop"], 3),
        "tiled_over_whole_image_speed": round(tiled / whole, 3),
    }
    return figures, ratio


def main() -> None:
    config = UpscaleBenchConfig.from_env()
    load_before = os.getloadavg()
    photo = pick_photo(config.photos, config.crop)
    with tempfile.TemporaryDirectory(prefix="crisp-upscale-bench-") as tmp:
        from tests.support.checkpoints import trained_checkpoint

        workdir = Path(tmp)
        inputs = prepare_inputs(photo, config.crop, config.large, workdir)
        started = time.perf_counter()
        checkpoint = trained_checkpoint(workdir / "espcn_x4.ckpt", config.t91, config.scale, ema=False)
        train_s = time.perf_counter() - started
        figures = measure_throughput(config, checkpoint, inputs[0])
        memory = measure_memory(config, checkpoint, inputs, workdir)
    figures_memory, ratio = memory_figures(config, memory, figures)
    figures.update(figures_memory)
    g = config.large
    notes = [
        f"Photo {photo.name}; ESPCN x4 (residual, 37K params) trained {train_s:.0f} s on T91 (tests/support/"
        "checkpoints.py trained_checkpoint, 150 Adam steps): throughput does not depend on the weights; "
        "SAFMN / EDSR-baseline with random weights. Throughput = in-process upscale_image (no decode/PNG), "
        f"medians of {config.repeats} run(s) after a warm-up; the whole-image baseline is 1 run.",
        "Peak memory = ru_maxrss of each child from os.wait4 (one fresh child per figure); the whole-image "
        f"forward on {g}x{g} was not run: ESPCN's first 64-channel float activation alone would take "
        f"{64 * g * g * 4 / 2**30:.0f} GiB. The baseline child imports less than the CLI (no tqdm, "
        "settings, registry), so its peak understates rather than inflates the untiled cost.",
        f"load average before/after: {[round(x, 2) for x in load_before]} / "
        f"{[round(x, 2) for x in os.getloadavg()]} on {os.cpu_count()} cores (other processes were running).",
    ]
    write_result(
        "upscale",
        figures,
        baseline={"name": f"whole-image forward on {config.crop}px", **figures["peak_rss_whole_crop_mib"]},
        ratio=ratio,
        targets={"peak_large_over_peak_crop": "small, far below area_large_over_crop (bounded by tile)"},
        notes=" ".join(notes),
    )


if __name__ == "__main__":
    main()
