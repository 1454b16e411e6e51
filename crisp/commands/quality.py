"""`crisp quality score INPUT... [--model URI] [--json] [--threads N]`: the learned quality of photos.

In: inputs that are image files, folders (searched recursively, the image suffixes of `crisp upscale`) or
`images/<date>` partitions under the storage root (`--root`, else the settings' root; read through the
manifest and index); a quality model (`--model`: `models:/<name>@<alias>`, `models:/<name>/<version>`, a
`.onnx` file or an MLflow model folder; default `models:/crisp-quality@champion` in the settings' MLflow
store: `mlflow_tracking_uri`, else SQLite under the root). Every file is decoded by ingest's normalizer
(crisp/commands/upscale.py `decode_input`) and scored by pipeline/quality (onnxruntime on the CPU, one
image per run, on the quality canvas the model was trained at; torch is never imported).
Out: on stdout, per image, either a row of an aligned table (path, score) or with `--json` one JSON
object per line: {"path", "score" (0-5, 3 decimals, higher is better), "width", "height" (the decoded
photo), "product_id", "image_id" (partition rows; null for files)}. A partition row's path is
`images/<date>/<image_id>`. A file that does not decode is one stderr line (its path and ingest's reason
code) while the others are scored; exit 0 when every image was scored, 1 when some failed, 2 for a bad
invocation (an input that does not exist, no images, a bad or unknown model), one line, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from crisp.commands import onnx_model_file, positive_int
from crisp.commands.upscale import PARTITION, SUFFIXES, decode_input

log = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/crisp-quality@champion"


@dataclass(frozen=True)
class ScoreItem:
    """One image to score: its label (a file path or images/<date>/<image_id>) and how to read it."""

    label: str
    load: Callable[[], bytes]
    product_id: str | None = None
    image_id: str | None = None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="score photos with the learned image-quality model")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    score = actions.add_parser(
        "score",
        help="score image files, folders or images/<date> partitions (0-5, higher is better)",
        description="Score photos with the learned no-reference quality model (ONNX, on the CPU).",
    )
    score.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, folder, or images/<date> partition"
    )
    score.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"models:/<name>@<alias>, models:/<name>/<version>, a .onnx file or a model folder "
        f"(default {DEFAULT_MODEL})",
    )
    score.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    score.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads (default 1)")
    score.add_argument("--root", help="storage root URI (default: `root` from the settings / CRISP_ROOT)")
    p.set_defaults(run=run)


def collect_items(inputs: list[str], storage_factory: Callable) -> list[ScoreItem]:
    """The images of every input, in order; InputError for an input that is none of the three kinds."""
    from schemas.errors import InputError

    items: list[ScoreItem] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_file():
            items.append(ScoreItem(str(path), path.read_bytes))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
            items.extend(ScoreItem(str(p), p.read_bytes) for p in files)
        elif PARTITION.match(raw.strip("/")):
            items.extend(_partition_items(storage_factory(), raw.strip("/")))
        else:
            raise InputError(
                f"input {raw!r} is not an image file, a folder or an images/<YYYY-MM-DD> partition"
            )
    return items


def _partition_items(storage, dataset_partition: str) -> Iterator[ScoreItem]:
    """The members of a committed partition, read through its manifest and index (as `crisp upscale`)."""
    import io

    import pyarrow.parquet as pq

    from pipeline.commit import read_manifest, read_verified
    from pipeline.shards import read_member
    from schemas.errors import InputError

    dataset, partition = dataset_partition.split("/", 1)
    try:
        manifest = read_manifest(storage, dataset, partition)
        index = pq.read_table(io.BytesIO(read_verified(storage, manifest, "index.parquet")))
    except (OSError, RuntimeError) as exc:  # not committed, a missing or corrupted index
        raise InputError(f"{dataset_partition}: {exc}") from None
    base = f"{dataset}/{partition}"
    for row in index.select(["image_id", "product_id", "shard", "offset", "size"]).to_pylist():
        shard = f"{base}/{manifest.file(row['shard']).path}"
        yield ScoreItem(
            f"{base}/{row['image_id']}",
            lambda s=shard, o=row["offset"], n=row["size"]: read_member(storage, s, o, n),
            product_id=row["product_id"],
            image_id=row["image_id"],
        )


def _load_scorer(args: argparse.Namespace, settings, download_dir: Path):
    """The scorer of `--model` (downloaded into `download_dir` when registered) and the model's source."""
    from pipeline.quality import QualityScorer

    model = onnx_model_file(args.model, settings.root, settings.mlflow_tracking_uri, download_dir)
    return QualityScorer(model.path, threads=args.threads), model.source


def _row(item: ScoreItem, score: float, width: int, height: int, as_json: bool, path_width: int) -> str:
    import json

    if as_json:
        record = {
            "path": item.label,
            "score": round(score, 3),
            "width": width,
            "height": height,
            "product_id": item.product_id,
            "image_id": item.image_id,
        }
        return json.dumps(record) + "\n"
    return f"{item.label:<{path_width}}  {score:5.3f}\n"


def run(args: argparse.Namespace) -> int:
    import os
    import tempfile

    import numpy as np

    from crisp.commands import settings_with_root
    from schemas.errors import CrispError, InputError

    # MLflow's download bar would interleave with the table on a terminal; the CLI owns its environment
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = settings_with_root(args)
    items = collect_items(args.inputs, settings.storage)
    if not items:
        raise InputError("no images found in the inputs (image suffixes: " + ", ".join(SUFFIXES) + ")")
    with tempfile.TemporaryDirectory(prefix="crisp-quality-") as download_dir:
        # the session holds the model in memory: the downloaded file may go once it is open
        scorer, source = _load_scorer(args, settings, Path(download_dir))
    log.info(
        "scoring %d images with %s (canvas long side %d px, %d thread(s))",
        len(items),
        source,
        scorer.canvas_long_side,
        args.threads,
    )
    path_width = max(len("path"), *(len(item.label) for item in items))
    if not args.json:
        sys.stdout.write(f"{'path':<{path_width}}  score\n")
    failed = 0
    for item in items:
        try:
            image = decode_input(item.load())
            score = scorer.score_rgb(np.asarray(image))
        except (OSError, ValueError, CrispError) as exc:  # unreadable or undecodable: report, go on
            failed += 1
            sys.stderr.write(f"crisp quality: {item.label}: {exc}\n")
            continue
        sys.stdout.write(_row(item, score, image.width, image.height, args.json, path_width))
        sys.stdout.flush()  # a long folder shows its rows as they come
    log.info("scored %d of %d images", len(items) - failed, len(items))
    return 1 if failed else 0
