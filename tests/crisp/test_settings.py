import pytest

from crisp.settings import ConfigError, load_settings, masked_dump


def test_defaults_need_no_setup():
    s = load_settings(environ={})
    assert s.root == "file://./data"
    assert s.storage().root.startswith("file:///")


def test_yaml_then_env_precedence(tmp_path):
    cfg = tmp_path / "crisp.yaml"
    cfg.write_text("root: s3://bucket/crisp\ns3:\n  endpoint_url: http://127.0.0.1:9000\n")
    s = load_settings(cfg, environ={"CRISP_S3__ENDPOINT_URL": "http://127.0.0.1:9001"})
    assert s.root == "s3://bucket/crisp"
    assert s.s3.endpoint_url == "http://127.0.0.1:9001"


def test_env_values_are_typed():
    s = load_settings(environ={"CRISP_DASK_SCHEDULER": "tcp://127.0.0.1:8786"})
    assert s.dask_scheduler == "tcp://127.0.0.1:8786"


def test_unknown_key_is_named(tmp_path):
    cfg = tmp_path / "crisp.yaml"
    cfg.write_text("roots: file:///x\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'roots' \(from .*crisp.yaml\)"):
        load_settings(cfg, environ={})


def test_unknown_env_key_is_named():
    with pytest.raises(ConfigError, match="unknown setting 's3.endpoint'"):
        load_settings(environ={"CRISP_S3__ENDPOINT": "x"})


def test_bad_value_names_key_and_value(tmp_path):
    cfg = tmp_path / "crisp.yaml"
    cfg.write_text("s3: [1, 2]\n")
    with pytest.raises(ConfigError, match="setting 's3'"):
        load_settings(cfg, environ={})


def test_missing_or_non_mapping_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(bad, environ={})


def test_secrets_are_masked():
    s = load_settings(environ={"CRISP_S3__KEY": "AKIAREAL", "CRISP_S3__SECRET": "topsecret"})
    dumped = masked_dump(s)
    assert "topsecret" not in str(dumped) and "AKIAREAL" not in str(dumped)
    assert s.s3.storage_options()["secret"] == "topsecret"
