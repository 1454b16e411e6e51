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


def test_environ_is_the_only_environment(monkeypatch):
    monkeypatch.setenv("CRISP_ROOT", "s3://leaked/from-os-environ")
    assert load_settings(environ={}).root == "file://./data"
    assert load_settings(environ={"CRISP_ROOT": "s3://given/root"}).root == "s3://given/root"


def test_crisp_config_names_the_file_and_defaults_yaml_env_precedence(tmp_path):
    cfg = tmp_path / "crisp.yaml"
    cfg.write_text("root: s3://from-yaml/crisp\ns3: {region: eu-west-1}\ningest: {crawl: {max_retries: 7}}\n")
    s = load_settings(environ={"CRISP_CONFIG": str(cfg), "CRISP_INGEST__CRAWL__MAX_RETRIES": "2"})
    assert (s.root, s.s3.region, s.ingest.crawl.max_retries) == ("s3://from-yaml/crisp", "eu-west-1", 2)
    assert s.ingest.crawl.per_host_concurrency == load_settings(environ={}).ingest.crawl.per_host_concurrency


def test_env_values_are_yaml_scalars_and_flow_lists():
    s = load_settings(
        environ={
            "CRISP_INGEST__CRAWL__ALLOW_HOSTS": "[a.example, b.example]",
            "CRISP_INGEST__CRAWL__PER_HOST_CONCURRENCY": "4",
            "CRISP_INGEST__CRAWL__RESPECT_ROBOTS": "false",
            "CRISP_PAIRS__RECIPES": "[bicubic_x4, realworld_x4]",
            "CRISP_PAIRS__WORKERS": "",  # empty = None
            "CRISP_S3__SECRET": "123456",  # a string setting keeps its text
        }
    )
    crawl = s.ingest.crawl
    assert crawl.allow_hosts == ["a.example", "b.example"] and crawl.per_host_concurrency == 4
    assert crawl.respect_robots is False and s.pairs.recipes == ("bicubic_x4", "realworld_x4")
    assert s.pairs.workers is None and s.s3.storage_options() == {}  # no key: the secret alone is unused
    assert s.s3.secret.get_secret_value() == "123456"
    # a date stays a string where the setting is a string (YAML would make it a datetime.date)
    dates = load_settings(
        environ={"CRISP_INGEST__CRAWL__ALLOW_HOSTS": "[2026-11-20]", "CRISP_INGEST__WORKDIR": "2026-11-21"}
    )
    assert dates.ingest.crawl.allow_hosts == ["2026-11-20"] and dates.ingest.workdir == "2026-11-21"


def test_unknown_nested_yaml_key_is_named_with_the_valid_ones(tmp_path):
    cfg = tmp_path / "crisp.yaml"
    cfg.write_text("ingest:\n  crawl:\n    per_hst_concurrency: 3\n")
    with pytest.raises(
        ConfigError, match=r"unknown setting 'ingest.crawl.per_hst_concurrency' \(from .*crisp.yaml\)"
    ) as info:
        load_settings(cfg, environ={})
    assert "per_host_concurrency" in str(info.value)  # among the valid keys listed


def test_misspelt_key_under_a_known_section_names_key_and_variable():
    with pytest.raises(ConfigError, match="unknown setting 's3.endpont_url'") as info:
        load_settings(environ={"CRISP_S3__ENDPONT_URL": "http://127.0.0.1:9000"})
    assert "from CRISP_S3__ENDPONT_URL" in str(info.value) and "endpoint_url" in str(info.value)
    with pytest.raises(
        ConfigError, match=r"'ingest.crawl.per_host_concurrency'.*from CRISP_INGEST__CRAWL__PER_HOST"
    ):
        load_settings(environ={"CRISP_INGEST__CRAWL__PER_HOST_CONCURRENCY": "many"})


def test_unrelated_crisp_variables_are_ignored_with_one_warning(caplog):
    environ = {
        "CRISP_SR_TRAIN_SCHEDULE": "@weekly",  # read by dags/sr_train.py itself
        "CRISP_CONFIG": "",
        "CRISP_SHARED_DATA": "/data",
        "CRISP_BENCH_QUICK": "1",
        "CRISP_ROOT": "s3://bucket/crisp",
    }
    with caplog.at_level("WARNING", logger="crisp.settings"):
        assert load_settings(environ=environ).root == "s3://bucket/crisp"
    assert caplog.records == []  # the declared non-settings variables are not even mentioned
    environ.update(CRISP_DASK_WORKERS="3", CRISP_S3_ENDPOINT_URL="http://127.0.0.1:9000")
    with caplog.at_level("WARNING", logger="crisp.settings"):
        settings = load_settings(environ=environ)
    assert settings.s3.endpoint_url is None  # single underscore: not the setting
    (record,) = caplog.records
    assert "CRISP_DASK_WORKERS" in record.message and "CRISP_SR_TRAIN_SCHEDULE" not in record.message
    assert "CRISP_S3_ENDPOINT_URL (did you mean CRISP_S3__ENDPOINT_URL?)" in record.message


def test_a_variable_cannot_set_keys_inside_a_scalar():
    with pytest.raises(ConfigError, match="CRISP_ROOT__X sets a key inside CRISP_ROOT"):
        load_settings(environ={"CRISP_ROOT": "s3://b/c", "CRISP_ROOT__X": "1"})


def test_a_section_variable_and_its_keys_merge_keys_last():
    s = load_settings(
        environ={"CRISP_S3__REGION": "eu-west-1", "CRISP_S3": "{region: us-east-1, endpoint_url: http://h:1}"}
    )
    assert (s.s3.region, s.s3.endpoint_url) == ("eu-west-1", "http://h:1")
