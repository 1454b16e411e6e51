import io
import tarfile
from pathlib import Path

import pytest

from pipeline.commit import PartitionWriter, read_manifest
from pipeline.shards import ShardWriter, iter_tar, read_member


def _write(storage, samples, target=4096):
    w = PartitionWriter(storage, "images", "p1")
    with ShardWriter(sink=lambda path, name: w.upload(name, path), target_bytes=target) as sw:
        for key, members in samples:
            sw.add(key, members)
    m = w.commit({"n": len(samples)}, {})
    return sw, m


def test_range_reads_return_each_member(storage, product_photos):
    photos = sorted(product_photos.glob("*.jpg"))[:3]
    samples = [(f"img{i}", {"jpg": p.read_bytes(), "json": b'{"i": %d}' % i}) for i, p in enumerate(photos)]
    sw, m = _write(storage, samples, target=150_000)
    assert len(sw.shard_names) >= 2
    for loc, (_key, members) in zip(sw.locations, samples, strict=True):
        path = f"images/p1/{m.file(loc.shard).path}"
        for ext, data in members.items():
            offset, size = loc.members[ext]
            assert read_member(storage, path, offset, size) == data


def test_shards_are_standard_tars_and_webdataset_reads_them(local_storage, tmp_path):
    import webdataset as wds

    samples = [(f"k{i}", {"png": bytes([i]) * 700, "json": b"{}"}) for i in range(6)]
    sw, m = _write(local_storage, samples)
    urls = [local_storage.uri(f"images/p1/{m.file(n).path}")[len("file://") :] for n in sw.shard_names]
    got = {s["__key__"]: s["png"] for s in wds.WebDataset(urls, shardshuffle=False)}
    assert got == {k: v["png"] for k, v in samples}
    raw = local_storage.read_bytes(f"images/p1/{m.file(sw.shard_names[0]).path}")
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getnames()[:2] == ["k0.json", "k0.png"]
    assert [k for k, _ in iter_tar(raw)][:1] == ["k0"]


def test_shards_are_byte_deterministic(tmp_path):
    blobs = []
    for _ in range(2):
        out = {}
        with ShardWriter(sink=lambda p, n, out=out: out.setdefault(n, Path(p).read_bytes())) as sw:
            sw.add("a", {"png": b"1" * 100})
            sw.add("b", {"png": b"2" * 100})
        blobs.append(out)
    assert blobs[0] == blobs[1]


@pytest.mark.parametrize("key", ["a.b", "", "x/y"])
def test_bad_keys_refused(key):
    with ShardWriter(sink=lambda p, n: None) as sw, pytest.raises(ValueError, match="must be non-empty"):
        sw.add(key, {"png": b""})


def test_read_manifest_after_shards(local_storage):
    _write(local_storage, [("a", {"png": b"x"})])
    assert read_manifest(local_storage, "images", "p1").counts == {"n": 1}
