"""Reference sets: push a real benchmark folder, read it back verified (local root and moto S3)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.reference_sets import ReferenceSetError, list_sets, materialize, push


@pytest.fixture(params=["local", "s3"])
def storage(request, local_storage):
    return local_storage if request.param == "local" else request.getfixturevalue("s3_storage")


def test_push_then_materialize_round_trips_every_file(storage, shared_data, tmp_path):
    set5 = shared_data / "sr_benchmarks" / "Set5"
    manifest = push(storage, "Set5", set5)
    originals = sorted(set5.glob("*.png"))
    assert [f.name for f in manifest.files] == [p.name for p in originals] and len(originals) == 5
    assert [s.name for s in list_sets(storage)] == ["Set5"]
    folder = materialize("Set5", "reference/Set5", storage, tmp_path, "gates.sr.benchmarks.Set5")
    for original in originals:
        assert (folder / original.name).read_bytes() == original.read_bytes()
    # the same set by its full URI
    by_uri = materialize("Set5", storage.uri("reference/Set5"), storage, tmp_path / "uri", "s")
    assert hashlib.sha256((by_uri / originals[0].name).read_bytes()).hexdigest() == manifest.files[0].sha256


def test_missing_empty_or_tampered_sets_are_refused_by_name(local_storage, shared_data, tmp_path):
    setting = "gates.sr.benchmarks.Set14"
    with pytest.raises(
        ReferenceSetError, match=r"no reference set at .*reference/Set14 .*gates.sr.benchmarks.Set14"
    ):
        materialize("Set14", "reference/Set14", local_storage, tmp_path, setting)
    with pytest.raises(ReferenceSetError, match="missing or holds no images"):
        materialize("Set14", str(tmp_path / "nowhere"), None, tmp_path, setting)
    with pytest.raises(ReferenceSetError, match="holds no images"):
        push(local_storage, "Empty", tmp_path)
    with pytest.raises(ReferenceSetError, match="one plain folder name"):
        push(local_storage, "../x", shared_data / "sr_benchmarks" / "Set5")
    push(local_storage, "Set5", shared_data / "sr_benchmarks" / "Set5")
    victim = local_storage.list("reference/Set5/files")[0]
    local_storage.write_bytes(victim, b"not the image")
    with pytest.raises(ReferenceSetError, match="does not match its manifest"):
        materialize("Set5", "reference/Set5", local_storage, tmp_path, "gates.sr.benchmarks.Set5")
    # an absolute local folder is used in place, unchanged
    assert materialize("Set5", shared_data / "sr_benchmarks" / "Set5", None, tmp_path, "s").name == "Set5"


def test_read_files_gives_the_pushed_bytes_and_refuses_a_tampered_file(storage, shared_data):
    from pipeline.reference_sets import read_files

    folder = shared_data / "sr_benchmarks" / "Set5"
    push(storage, "Set5", folder)
    files = read_files("Set5", "reference/Set5", storage, "pairs.matte.scenes")
    assert files == {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}
    storage.write_bytes("reference/Set5/files/bird.png", b"tampered")
    with pytest.raises(ReferenceSetError, match="does not match its manifest"):
        read_files("Set5", "reference/Set5", storage, "pairs.matte.scenes")
