import re

import pytest

from pipeline.storage import Storage, StorageError, normalize_root


def test_round_trip_range_list_delete(storage):
    storage.write_bytes("a/b/one.bin", b"0123456789")
    storage.write_bytes("a/two.bin", b"xy")
    assert storage.read_bytes("a/b/one.bin") == b"0123456789"
    assert storage.read_range("a/b/one.bin", 3, 4) == b"3456"
    assert storage.size("a/b/one.bin") == 10
    assert storage.list("a") == ["a/two.bin"]
    assert storage.list("a", recursive=True) == ["a/b/one.bin", "a/two.bin"]
    assert storage.list_dirs("a") == ["b"]
    storage.delete("a/b", recursive=True)
    assert not storage.exists("a/b/one.bin")
    assert storage.list("missing/folder") == []


def test_overwrite_is_whole(storage):
    storage.write_bytes("x.bin", b"old-contents")
    storage.write_bytes("x.bin", b"new")
    assert storage.read_bytes("x.bin") == b"new"


def test_upload_copies_and_move_consumes_the_local_file(storage, tmp_path):
    local = tmp_path / "shard.tar"
    local.write_bytes(b"tar-bytes" * 1000)
    storage.upload(str(local), "out/copy.tar")
    assert local.exists() and storage.read_bytes("out/copy.tar") == local.read_bytes()
    storage.upload(str(local), "out/moved.tar", move=True)
    assert not local.exists()
    assert storage.read_bytes("out/moved.tar") == b"tar-bytes" * 1000
    assert storage.list("out") == ["out/copy.tar", "out/moved.tar"]  # no temporary names left behind


def test_move_across_filesystems_copies_then_deletes(local_storage, tmp_path):
    import os
    import tempfile

    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's temp folder")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        local = os.path.join(other, "shard.tar")
        with open(local, "wb") as fh:
            fh.write(b"abc")
        local_storage.upload(local, "x.tar", move=True)  # os.replace would fail here with EXDEV
        assert not os.path.exists(local) and local_storage.read_bytes("x.tar") == b"abc"


def test_short_range_read_is_an_error(storage):
    storage.write_bytes("x.bin", b"abc")
    with pytest.raises(StorageError, match="short read"):
        storage.read_range("x.bin", 1, 10)


def test_missing_file_raises_file_not_found(storage):
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("nope.bin")


def test_path_escape_refused(local_storage):
    with pytest.raises(StorageError, match="escapes"):
        local_storage.read_bytes("../etc/passwd")


@pytest.mark.parametrize(
    "uri, message",
    [("ftp://host/x", "unsupported storage URI"), ("s3://", "malformed"), ("", "empty")],
)
def test_malformed_uris_name_the_problem(uri, message):
    with pytest.raises(StorageError, match=message):
        normalize_root(uri)


def test_plain_path_becomes_file_uri(tmp_path):
    assert normalize_root(str(tmp_path)) == f"file://{tmp_path}"


def test_unreachable_s3_endpoint_names_endpoint():
    # port 9 on loopback: nothing listens, so the client fails fast
    s = Storage(
        "s3://bucket/x",
        {
            "key": "k",
            "secret": "s",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        },
    )
    with pytest.raises(StorageError, match="S3 endpoint") as info:
        s.write_bytes("a.bin", b"x")
    _advertised_variables_work(str(info.value))


def _advertised_variables_work(message: str) -> None:
    """Every CRISP_* variable the hint names is a real setting, also for a Storage given no options."""
    from crisp.settings import load_settings

    names = set(re.findall(r"CRISP_[A-Z0-9_]+", message))
    assert names == {"CRISP_S3__ENDPOINT_URL", "CRISP_S3__KEY", "CRISP_S3__SECRET"}, message
    environ = {"CRISP_ROOT": "s3://bucket/x", **{name: f"v-{name}" for name in names}}
    options = load_settings(environ=environ).storage().options
    assert options == {
        "key": "v-CRISP_S3__KEY",
        "secret": "v-CRISP_S3__SECRET",
        "client_kwargs": {"endpoint_url": "v-CRISP_S3__ENDPOINT_URL"},
    }
    with pytest.MonkeyPatch.context() as env:
        for name in names:
            env.setenv(name, f"v-{name}")
        assert Storage("s3://bucket/x").options == options  # the fallback reads the same variables


def test_swap_bytes_writes_only_over_the_expected_object(storage):
    """Compare-and-swap on both backends: If-None-Match / If-Match on S3, a locked check locally."""
    assert storage.swap_bytes("m.json", b"v1", expected=None)
    assert not storage.swap_bytes("m.json", b"v2", expected=None)  # it exists now
    assert not storage.swap_bytes("m.json", b"v2", expected=b"v0")  # not what is there
    assert storage.read_bytes("m.json") == b"v1"
    assert storage.swap_bytes("m.json", b"v2", expected=b"v1")
    assert storage.read_bytes("m.json") == b"v2" and storage.read_bytes_or_none("gone.json") is None


def test_ranges_come_back_in_order(storage):
    storage.write_bytes("r.bin", bytes(range(100)))
    assert storage.read_ranges("r.bin", [(90, 5), (0, 3), (10, 0)]) == [
        bytes(range(90, 95)),
        b"\x00\x01\x02",
        b"",
    ]
    assert storage.read_ranges("r.bin", []) == []
