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
    with pytest.raises(StorageError, match="S3 endpoint"):
        s.write_bytes("a.bin", b"x")
