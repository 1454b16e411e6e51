import os
import subprocess
import sys

from crisp.cli import COMMANDS, main


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "crisp", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_stage():
    out = _run("--help")
    assert out.returncode == 0
    for name in ("ingest", "pairs", "train", "validate", "registry", "upscale", "demo", "config"):
        assert name in out.stdout
    assert set(COMMANDS) >= {"ingest", "pairs", "train", "validate", "registry", "upscale", "demo"}


def test_config_prints_masked_settings():
    out = _run("config", env={"CRISP_S3__SECRET": "hunter2", "CRISP_S3__KEY": "AKIA"})
    assert out.returncode == 0, out.stderr
    assert "root:" in out.stdout and "hunter2" not in out.stdout and "**********" in out.stdout


def test_bad_config_exits_2_with_reason():
    out = _run("config", env={"CRISP_NOT_A_KEY": "1"})
    assert out.returncode == 2
    assert "unknown setting 'not_a_key'" in out.stderr


def test_in_process_entry_point(capsys, monkeypatch):
    monkeypatch.setenv("CRISP_ROOT", "file:///tmp/crisp-cli-test")
    assert main(["config", "--format", "json"]) == 0
    assert '"root": "file:///tmp/crisp-cli-test"' in capsys.readouterr().out
