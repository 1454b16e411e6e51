import logging
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from crisp.cli import COMMANDS, PACKAGES, main


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() configures logging for the process; put the root logger back after each test."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers), {name: logging.getLogger(name).level for name in PACKAGES}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


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
    out = _run("config", env={"CRISP_S3__ENDPONT_URL": "http://127.0.0.1:9000"})
    assert out.returncode == 2
    assert "unknown setting 's3.endpont_url' (from CRISP_S3__ENDPONT_URL)" in out.stderr


def test_unrelated_crisp_variables_do_not_break_config(capsys, monkeypatch):
    monkeypatch.setenv("CRISP_SR_TRAIN_SCHEDULE", "@weekly")  # dags/sr_train.py reads it itself
    monkeypatch.setenv("CRISP_ROOT", "file:///tmp/crisp-cli-test")
    assert main(["config"]) == 0
    out = capsys.readouterr()
    assert "root: file:///tmp/crisp-cli-test" in out.out and "CRISP_SR_TRAIN_SCHEDULE" not in out.err
    monkeypatch.setenv("CRISP_DASK_WORKERS", "3")  # names no setting: one warning, then on as usual
    assert main(["config"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "CRISP_" in line]
    assert len(warned) == 1 and "WARNING crisp.settings: ignoring CRISP_DASK_WORKERS" in warned[0]


def test_version():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"crisp {version('crisp')}"


def test_verbose_and_quiet_set_the_log_level(capsys, monkeypatch):
    monkeypatch.setenv("CRISP_DASK_WORKERS", "3")  # a warning on every run
    crisp, root = logging.getLogger("crisp"), logging.getLogger()
    assert main(["config"]) == 0  # Crisp at INFO, other libraries' warnings only
    assert (crisp.getEffectiveLevel(), root.level) == (logging.INFO, logging.WARNING)
    assert main(["-v", "config"]) == 0
    assert (crisp.getEffectiveLevel(), root.level) == (logging.DEBUG, logging.INFO)
    assert main(["-vv", "config"]) == 0
    assert (crisp.getEffectiveLevel(), root.level) == (logging.DEBUG, logging.DEBUG)
    capsys.readouterr()
    assert main(["-q", "config"]) == 0
    assert (crisp.getEffectiveLevel(), root.level) == (logging.WARNING, logging.WARNING)
    logging.getLogger("pipeline.test").info("hidden by -q")
    err = capsys.readouterr().err
    assert "hidden by -q" not in err and err.count("WARNING crisp.settings: ignoring CRISP_DASK_WORKERS") == 1
    assert main(["config"]) == 0
    logging.getLogger("training.test").info("shown at INFO")
    err = capsys.readouterr().err
    assert "INFO training.test: shown at INFO" in err and err.count("shown at INFO") == 1  # one handler
    with pytest.raises(SystemExit) as info:
        main(["-v", "-q", "config"])
    assert info.value.code == 2


def test_in_process_entry_point(capsys, monkeypatch):
    monkeypatch.setenv("CRISP_ROOT", "file:///tmp/crisp-cli-test")
    assert main(["config", "--format", "json"]) == 0
    assert '"root": "file:///tmp/crisp-cli-test"' in capsys.readouterr().out


def test_expected_errors_are_one_line_with_their_kinds_exit_code(capsys, monkeypatch, tmp_path):
    """Bad input exits 2, a refusal 1; neither prints a traceback (schemas/errors.py maps them)."""
    from schemas.errors import CrispError, InputError
    from training.gates.policy import GatePolicyError
    from training.registry.versions import PromotionRefused, UnknownModelError

    assert issubclass(GatePolicyError, InputError) and issubclass(UnknownModelError, InputError)
    assert issubclass(PromotionRefused, CrispError) and PromotionRefused("x").exit_code == 1
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    assert (
        main(["train", "--config", "training/configs/espcn_x4.yaml", "--release", "--gate", "margin_db=-1"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("crisp: a trigger may only tighten the gates") and "Traceback" not in err
