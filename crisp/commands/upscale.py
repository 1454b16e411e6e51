"""`crisp upscale INPUT... [--model URI] --out DIR`: serve a model on files, folders or an image partition.

In: inputs that are image files, folders (searched recursively) or `images/<date>` partitions under the
storage root (read through the manifest and index); a model URI (`models:/<name>@<alias>`,
`models:/<name>/<version>` or a checkpoint path; default `models:/crisp-sr-x4@champion`, and for videos
`models:/crisp-vsr-x4@champion` when one is registered, else that image champion). Every file is decoded
by ingest's own normalizer (`pipeline.clean.normalize.decode_rgb`: EXIF orientation, ICC to sRGB, CMYK /
palette / 16-bit to 8-bit RGB, transparency composited on white), so the model sees the pixels ingest would
have stored; only ingest's size rules are skipped (any size is upscaled). Out: `<out>/<name>_x<s>.png` per image (RGB,
lossless), and with `--side-by-side` `<name>_x<s>_compare.png` (bicubic left, model right; only for
outputs up to `--side-by-side-max-megapixels`). Otherwise each PNG is streamed band by band as the tiles
finish, so RAM stays bounded by the tile size times the output width, never by the image area.
A tqdm bar counts tiles. A file that does not decode is reported on one stderr line (with ingest's
reason code) while the others finish. Exit 0 when every image was written, 1 when some failed, 2 for
bad input.

Video files (given directly, or `VIDEO_SUFFIXES` in folders) are served frame by frame through the same
model into `<out>/<name>_x<s>.mp4` (`training.serve.upscale.upscale_video`: H.264, the input's frame
timestamps and audio kept, memory independent of the length): a single-frame model upscales each frame as
an image, a multi-frame one (`models:/crisp-vsr-x4@champion`) each frame from a sliding window of its
neighbours.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

PARTITION = re.compile(r"^images/\d{4}-\d{2}-\d{2}$")
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")
IMAGE_CHAMPION = "models:/crisp-sr-x4@champion"
VIDEO_CHAMPION = "models:/crisp-vsr-x4@champion"  # falls back to the image champion when not registered


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="super-resolve images with a registered model or a checkpoint")
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image or video file, folder, or images/<date> partition"
    )
    p.add_argument(
        "--model",
        help="models:/<name>@champion, models:/<name>/<version> or a path (default: "
        f"{IMAGE_CHAMPION}; for videos {VIDEO_CHAMPION} when one is registered, else the image champion)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--side-by-side", action="store_true", help="also write bicubic | model comparisons")
    p.add_argument("--tile", type=int, default=256, help="tile size in input pixels (default 256)")
    p.add_argument("--overlap", type=int, default=16, help="tile overlap in input pixels (default 16)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default 8 on GPU, 1 on CPU)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument(
        "--side-by-side-max-megapixels", type=float, default=64.0, help="no comparison for larger outputs"
    )
    p.set_defaults(run=run)


def collect_inputs(
    inputs: list[str], storage_factory: Callable, skip_videos: bool = False
) -> list[tuple[str, Callable[[], bytes]]]:
    """(output stem, bytes loader) per image; ValueError for an input that is none of the three kinds.
    With `skip_videos`, video files given directly are left to `collect_videos`."""
    items: list[tuple[str, Callable[[], bytes]]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_file():
            if not (skip_videos and is_video_file(path)):
                items.append((path.stem, path.read_bytes))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
            items.extend(
                (str(p.relative_to(path).with_suffix("")).replace("/", "__"), p.read_bytes) for p in files
            )
        elif PARTITION.match(raw.strip("/")):
            items.extend(_partition_items(storage_factory(), raw.strip("/")))
        else:
            kinds = "an image or video file" if skip_videos else "an image file"
            raise ValueError(f"input {raw!r} is not {kinds}, a folder or an images/<YYYY-MM-DD> partition")
    return items


def collect_videos(inputs: list[str]) -> list[tuple[str, Path]]:
    """(output stem, path) per video: files given directly whose bytes are a video container, and files
    with a `VIDEO_SUFFIXES` suffix in folders."""
    videos: list[tuple[str, Path]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_file() and is_video_file(path):
            videos.append((path.stem, path))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            videos.extend((str(p.relative_to(path).with_suffix("")).replace("/", "__"), p) for p in files)
    return videos


def is_video_file(path: Path) -> bool:
    from pipeline.crawl.sniff import SNIFF_BYTES, sniff_video_format

    with open(path, "rb") as handle:
        return sniff_video_format(handle.read(SNIFF_BYTES)) is not None


def _partition_items(storage, dataset_partition: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    import io

    import pyarrow.parquet as pq

    from pipeline.commit import read_manifest, read_verified
    from pipeline.shards import read_member

    dataset, partition = dataset_partition.split("/", 1)
    manifest = read_manifest(storage, dataset, partition)
    base = f"{dataset}/{partition}"
    index = pq.read_table(io.BytesIO(read_verified(storage, manifest, "index.parquet")))
    for row in index.select(["image_id", "shard", "offset", "size"]).to_pylist():
        shard = f"{base}/{manifest.file(row['shard']).path}"
        yield row["image_id"], lambda s=shard, o=row["offset"], n=row["size"]: read_member(storage, s, o, n)


def save_png(path: Path, shape: tuple[int, int, int], bands: Iterable[np.ndarray], level: int = 1) -> None:
    """Write uint8 row bands (top to bottom, together `shape`) as one lossless PNG, streaming: only the
    current band is in memory (Pillow would copy an RGB image into 4 bytes per pixel first)."""
    import struct
    import zlib

    import numpy as np

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    height, width, channels = shape
    color_type = 2 if channels == 3 else 6  # RGB or RGBA, 8 bits per sample
    compressor, rows = zlib.compressobj(level=level), 0
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)))
        for band in bands:
            lines = np.ascontiguousarray(band).reshape(band.shape[0], width * channels)
            no_filter = np.zeros((lines.shape[0], 1), np.uint8)  # filter type 0 before every scanline
            data = compressor.compress(np.concatenate([no_filter, lines], axis=1).tobytes())
            rows += band.shape[0]
            if data:
                handle.write(chunk(b"IDAT", data))
        handle.write(chunk(b"IDAT", compressor.flush()))
        handle.write(chunk(b"IEND", b""))
    if rows != height:
        raise ValueError(f"{path}: got {rows} rows of pixels for a PNG of height {height}")


def write_side_by_side(image, result, scale: int, path: Path) -> None:
    """Bicubic (left) next to the model output (right), as one PNG."""
    import numpy as np
    from PIL import Image

    rgb = image.convert("RGB")
    bicubic = np.asarray(rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.BICUBIC))
    gap = np.full((bicubic.shape[0], 8, 3), 255, dtype=np.uint8)
    Image.fromarray(np.concatenate([bicubic, gap, np.asarray(result)[..., :3]], axis=1)).save(
        path, compress_level=1
    )


def decode_input(data: bytes) -> Image.Image:
    """Ingest's decoding of one input (an RGB Pillow image); ValueError with the reason when it fails."""
    from pipeline.clean.normalize import Rejection, decode_rgb

    image = decode_rgb(data)
    if isinstance(image, Rejection):
        raise ValueError(f"{image.reason}: {image.detail}")
    return image


def run(args: argparse.Namespace) -> int:
    video_model = None
    if args.model is None:
        args.model, video_model = IMAGE_CHAMPION, VIDEO_CHAMPION
    return serve_images(args, "upscale", lambda stem, scale: f"{stem}_x{scale}.png", video_model=video_model)


def serve_images(
    args: argparse.Namespace,
    command: str,
    output_name: Callable[[str, int], str],
    check_model: Callable[[object], str | None] = lambda meta: None,
    video_model: str | None = None,
    bind: Callable[[Any], Any] = lambda model: model,
    per_image: Callable[[Any, bytes], Any] = lambda model, data: model,
) -> int:
    """The batch loop of `crisp upscale` and `crisp restore`: load `args.model` (refused with the reason
    `check_model(meta)` gives, if any, and served as `bind(model)`: a ValueError from it is a refusal),
    then serve every input image tile by tile, as `per_image(model, its bytes)`, into
    `<out>/<output_name(stem, scale)>` and every video frame by frame into the same name as .mp4 (by
    `video_model` instead when it is given and registered); a bad file is reported on its own line and the
    others finish."""
    import numpy as np
    from tqdm import tqdm

    from crisp.settings import load_settings
    from training.gates.safe_load import CheckpointRejected
    from training.registry.versions import RegistryConfig, UnknownModelError, load_model
    from training.serve.upscale import UpscaleConfig, count_tiles, output_shape, upscale_bands, upscale_video

    settings = load_settings(args.config)
    out_dir = Path(args.out)
    try:
        UpscaleConfig(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=args.device)
        items = collect_inputs(args.inputs, settings.storage, skip_videos=True)
        videos = collect_videos(args.inputs)
        config = RegistryConfig(root=settings.root, tracking_uri=settings.mlflow_tracking_uri)

        def load(uri: str):
            options = settings.s3.storage_options() if uri.startswith("s3://") else None
            loaded = load_model(uri, config, storage_options=options)
            refusal = check_model(loaded[1])
            if refusal:
                raise ValueError(f"{uri}: {refusal}")
            try:
                return bind(loaded[0]), loaded[1]
            except ValueError as exc:
                raise ValueError(f"{uri}: {exc}") from None

        for_videos = None
        if videos and video_model:
            try:
                for_videos = load(video_model)
            except UnknownModelError:  # no video model registered: the image model serves every frame
                for_videos = None
        model, meta = load(args.model) if items or for_videos is None else for_videos
        for_videos = for_videos or (model, meta)
    except (ValueError, LookupError, OSError, CheckpointRejected, UnknownModelError) as exc:
        print(f"crisp {command}: {exc}", file=sys.stderr)
        return 2
    if not items and not videos:
        print(f"crisp {command}: no images or videos found in the inputs", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    scale, failed = meta.scale, 0
    bar = tqdm(total=0, unit="tile", desc=f"x{scale} {meta.arch}", file=sys.stderr)
    for stem, load in items:
        target = out_dir / output_name(stem, scale)
        try:
            data = load()
            image = decode_input(data)
            bar.total += count_tiles(image.height, image.width, args.tile, args.overlap)
            bar.refresh()
            shape = output_shape(image, scale)
            bands = upscale_bands(
                per_image(model, data), image, scale, args.tile, args.overlap, args.device, args.batch_size,
                bar.update,
            )  # fmt: skip
            side_by_side = getattr(args, "side_by_side", False)
            if side_by_side and shape[0] * shape[1] / 1e6 <= args.side_by_side_max_megapixels:
                result = np.concatenate([band for _, band in bands])
                save_png(target, shape, [result])
                write_side_by_side(image, result, scale, out_dir / f"{stem}_x{scale}_compare.png")
            else:
                save_png(target, shape, (band for _, band in bands))
        except (OSError, ValueError) as exc:
            target.unlink(missing_ok=True)  # never leave a truncated PNG behind
            failed += 1
            bar.write(f"crisp {command}: {stem}: {exc}", file=sys.stderr)  # a line of its own, not in the bar
    video_net, video_meta = for_videos
    for stem, path in videos:
        target = out_dir / Path(output_name(stem, video_meta.scale)).with_suffix(".mp4")
        try:
            written = upscale_video(
                video_net,
                path,
                target,
                video_meta.scale,
                args.tile,
                args.overlap,
                args.device,
                args.batch_size,
                bar,
            )
            bar.write(
                f"{target}: {written.frames} frames {written.width}x{written.height} at {written.fps:g} fps"
                f", audio {written.audio or 'none'}",
                file=sys.stderr,
            )
        except (OSError, ValueError) as exc:
            target.unlink(missing_ok=True)
            failed += 1
            bar.write(f"crisp {command}: {stem}: {exc}", file=sys.stderr)
    bar.close()
    total = len(items) + len(videos)
    sources = " and ".join(dict.fromkeys(m.source for m in (meta, video_meta)))
    print(f"wrote {total - failed} of {total} files to {out_dir} with {sources}")
    return 1 if failed else 0
