"""Write small committed `images/<date>` partitions for tests of stages downstream of ingest.

In: a Storage, a partition name and real photos (paths under ../shared/data), optionally shrunk so tests
stay fast. Out: the committed Manifest; the partition holds `shards/NNNNNN.tar` (members
`<image_id>.jpg|png`, written with ShardWriter) and `index.parquet` with the core image-index columns
of the data contract (image_id, product_id, url, split, shard, offset, size, width, height, format,
phash, partition). It stands in for the ingest job's output; extra ingest columns are not needed here.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.clean.hashing import image_id, phash
from pipeline.commit import PartitionWriter
from pipeline.shards import ShardWriter
from pipeline.storage import Storage
from schemas.manifest import Manifest

CORE_IMAGE_INDEX = pa.schema(
    [
        ("image_id", pa.string()),
        ("product_id", pa.string()),
        ("url", pa.string()),
        ("split", pa.string()),
        ("shard", pa.string()),
        ("offset", pa.int64()),
        ("size", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("phash", pa.int64()),
        ("partition", pa.string()),
    ]
)


def load_pixels(path: Path, max_side: int | None = None) -> np.ndarray:
    """RGB uint8 pixels of a photo, shrunk (Pillow LANCZOS, deterministic) so its long side <= max_side."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    if max_side and max(rgb.size) > max_side:
        factor = max_side / max(rgb.size)
        rgb = rgb.resize(
            (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))), Image.LANCZOS
        )
    return np.asarray(rgb)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(pixels).save(buf, format="JPEG", quality=92)
    else:
        Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _split(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def write_image_partition(
    storage: Storage,
    partition: str,
    photos: Sequence[Path],
    max_side: int | None = 480,
    shard_target_bytes: int = 1 << 20,
    commit: bool = True,
) -> Manifest | None:
    """Commit `images/<partition>` holding `photos` (JPEG sources stay JPEG, others become PNG)."""
    writer = PartitionWriter(storage, "images", partition, run_id="test-fixture")
    rows = []
    with ShardWriter(
        sink=lambda path, name: writer.upload(name, path), target_bytes=shard_target_bytes
    ) as shards:
        for photo in photos:
            pixels = load_pixels(Path(photo), max_side)
            fmt = "jpeg" if Path(photo).suffix.lower() in (".jpg", ".jpeg") else "png"
            key = image_id(pixels)
            ext = "jpg" if fmt == "jpeg" else "png"
            location = shards.add(key, {ext: encode(pixels, fmt)})
            offset, size = location.members[ext]
            rows.append(
                {
                    "image_id": key,
                    "product_id": Path(photo).stem,
                    "url": Path(photo).resolve().as_uri(),
                    "split": _split(key),
                    "shard": location.shard,
                    "offset": offset,
                    "size": size,
                    "width": pixels.shape[1],
                    "height": pixels.shape[0],
                    "format": fmt,
                    "phash": int(np.uint64(phash(pixels)).astype(np.int64)),
                    "partition": partition,
                }
            )
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CORE_IMAGE_INDEX), buf)
    writer.write("index.parquet", buf.getvalue())
    if not commit:
        return None
    return writer.commit(counts={"images": len(rows)}, schema_versions={"image_index": 1})
