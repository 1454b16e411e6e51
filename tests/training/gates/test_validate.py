import json
from pathlib import Path

import pytest
import torch

from crisp.commands import validate as validate_cmd
from pipeline.reference_sets import push
from pipeline.storage import Storage
from tests.support.checkpoints import random_state, trained_checkpoint, write_checkpoint
from tests.support.cli import run_command
from training.gates.validate import GateConfig, Verdict, exit_code, validate_checkpoint
from training.registry.versions import resolve_champion


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    return trained_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "trained.ckpt", shared_data / "sr_train" / "T91"
    )


@pytest.fixture(scope="module")
def set5_only(shared_data):
    """Quick gates: Set5 only, a small latency reference."""
    return GateConfig(benchmarks={"Set5": shared_data / "sr_benchmarks" / "Set5"}, reference_lr_size=64)


def _failed(verdict: Verdict) -> set[str]:
    return {g.gate for g in verdict.gates if not g.passed}


@pytest.fixture(scope="module")
def reference_root(shared_data, tmp_path_factory):
    """A storage root holding Set5 and Set14 as `crisp reference push` leaves them (no ../shared needed)."""
    storage = Storage(f"file://{tmp_path_factory.mktemp('reference')}/root")
    for name in ("Set5", "Set14"):
        push(storage, name, shared_data / "sr_benchmarks" / name)
    return storage


def test_trained_model_passes_every_default_gate(trained, reference_root):
    config = GateConfig(reference_lr_size=64)  # default margin 0.3 dB on reference/Set5 and reference/Set14
    verdict = validate_checkpoint(str(trained), config, storage=reference_root)
    assert verdict.passed, verdict.reasons
    assert [s.name for s in verdict.scores] == ["Set5", "Set14"]
    set5, set14 = verdict.score("Set5"), verdict.score("Set14")
    assert set5.images == 5 and set14.images == 14
    assert (
        abs(set5.bicubic_psnr_y - 28.43) < 0.02 and abs(set14.bicubic_psnr_y - 26.00) < 0.02
    )  # the protocol
    assert set5.psnr_y > set5.bicubic_psnr_y + 0.3 and set14.psnr_y > set14.bicubic_psnr_y + 0.3
    assert verdict.meta.weights == "ema" and len(verdict.checkpoint_sha256) == 64
    assert verdict.golden["finite"] and verdict.golden["shape"] == [1, 3, 128, 128]
    assert verdict.export["passed"] and verdict.export["max_abs_diff"] <= 1e-5
    assert 0 < verdict.latency_ms < config.latency_budget_ms
    assert verdict.gate("min_improvement").detail.startswith("no champion")
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict  # machine-readable round trip


def test_randomly_initialised_model_fails_the_margin_gate(tmp_path, set5_only):
    path = write_checkpoint(
        tmp_path / "random.ckpt", random_state("espcn", 4, residual=True), arch_kwargs={"residual": True}
    )
    verdict = validate_checkpoint(str(path), set5_only)
    assert not verdict.passed
    assert _failed(verdict) == {"bicubic_margin:Set5"}  # it loads, runs and exports fine: only quality fails
    assert verdict.score("Set5").psnr_y < verdict.score("Set5").bicubic_psnr_y
    assert any(r.startswith("bicubic_margin:Set5") for r in verdict.reasons)


def test_bicubic_itself_gains_nothing(tmp_path, set5_only):
    path = write_checkpoint(tmp_path / "bicubic.ckpt", {}, arch="bicubic", scale=4)
    verdict = validate_checkpoint(str(path), set5_only)
    assert verdict.gate("bicubic_margin:Set5").measured == 0.0
    # the Pillow-exact 8-bit baseline traces to its input size: it could not be served either
    assert _failed(verdict) == {"bicubic_margin:Set5", "export"}


def test_bad_checkpoints_fail_with_a_reason(tmp_path, set5_only):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    nan_state = random_state()
    nan_state["body.0.weight"][0, 0, 0, 0] = float("nan")
    cases = {
        "checkpoint_corrupt": corrupt,
        "checkpoint_non_finite_weights": write_checkpoint(tmp_path / "nan.ckpt", nan_state),
        "checkpoint_unsafe_payload": write_checkpoint(
            tmp_path / "p.ckpt", random_state(), extra={"x": torch.nn.ReLU()}
        ),
        "checkpoint_scale_mismatch": write_checkpoint(
            tmp_path / "x2.ckpt", random_state("espcn", 2), scale=2
        ),
        "checkpoint_not_found": tmp_path / "missing.ckpt",
    }
    config = set5_only.model_copy(update={"scale": 4})
    for reason, path in cases.items():
        verdict = validate_checkpoint(str(path), config)
        assert not verdict.passed and verdict.reasons[0].startswith(reason), (reason, verdict.reasons)
        assert _failed(verdict) == {"safe_load"} and verdict.scores == []
        assert exit_code(verdict) == (2 if reason == "checkpoint_not_found" else 1)


def test_golden_output_out_of_range_fails_before_evaluation(tmp_path, set5_only):
    state = random_state()
    state["body.4.bias"].fill_(5.0)  # every output pixel is ~5: finite but nonsense
    verdict = validate_checkpoint(str(write_checkpoint(tmp_path / "bright.ckpt", state)), set5_only)
    assert _failed(verdict) == {"golden"} and verdict.scores == []
    assert "outside" in verdict.reasons[0]


def test_champion_gates(trained, tmp_path, set5_only):
    random_path = write_checkpoint(
        tmp_path / "r.ckpt", random_state("espcn", 4, residual=True), arch_kwargs={"residual": True}
    )
    # a weak challenger against a strong champion: worse than tolerance and no improvement
    verdict = validate_checkpoint(str(random_path), set5_only, champion=resolve_champion(str(trained)))
    assert {"champion_tolerance:Set5", "min_improvement"} <= _failed(verdict)
    assert verdict.champion.found and verdict.score("Set5").champion_psnr_y > verdict.score("Set5").psnr_y
    # the same model as champion: gain 0 passes the default min_improvement_db 0.0, not a demand of 0.1 dB
    same = validate_checkpoint(str(trained), set5_only, champion=resolve_champion(str(trained)))
    assert same.passed and same.gate("min_improvement").measured == 0.0
    strict = validate_checkpoint(
        str(trained),
        set5_only.model_copy(update={"min_improvement_db": 0.1}),
        champion=resolve_champion(str(trained)),
    )
    assert _failed(strict) == {"min_improvement"}
    # a champion at another scale cannot be replaced by this model
    x2 = write_checkpoint(tmp_path / "x2.ckpt", random_state("espcn", 2), scale=2)
    other = validate_checkpoint(str(trained), set5_only, champion=resolve_champion(str(x2)))
    assert _failed(other) == {"champion_scale"}


def test_latency_budget_gate(trained, set5_only):
    verdict = validate_checkpoint(str(trained), set5_only.model_copy(update={"latency_budget_ms": 0.001}))
    assert _failed(verdict) == {"latency"} and verdict.gate("latency").measured > 0.001


def test_pair_test_split_is_scored_next_to_its_bicubic_labels(trained, tmp_path, product_photos, set5_only):
    import io

    import pyarrow.parquet as pq

    from pipeline.storage import Storage
    from tests.support.pairs_fixture import load_images, write_pair_partition

    storage = Storage(f"file://{tmp_path}/root")
    manifest = write_pair_partition(storage, load_images(product_photos, limit=4, max_side=200), val_every=2)
    config = set5_only.model_copy(
        update={
            "pair_recipe": "bicubic_x4",
            "pair_partitions": ["2026-01-01"],
            "pair_split": "val",
            "max_pairs": 500,
        }
    )
    verdict = validate_checkpoint(str(trained), config, storage=storage)
    pairs = verdict.score("pairs/bicubic_x4:val")
    index = pq.read_table(
        io.BytesIO(storage.read_bytes(f"pairs/bicubic_x4/2026-01-01/{manifest.file('index.parquet').path}"))
    )
    labels = [row["psnr_y"] for row in index.to_pylist() if row["split"] == "val"]
    assert pairs.images == len(labels) > 0
    # the bicubic role reproduces the pair job's own bicubic labels (same protocol, two implementations)
    assert abs(pairs.bicubic_psnr_y - sum(labels) / len(labels)) < 1e-6
    assert "bicubic_margin:pairs/bicubic_x4:val" in {g.gate for g in verdict.gates}
    with pytest.raises(ValueError, match="no storage"):
        validate_checkpoint(str(trained), config)


def test_missing_or_no_benchmark_is_a_config_error(trained, tmp_path, reference_root):
    with pytest.raises(ValueError, match="missing or holds no images; set gates.sr.benchmarks.Set5"):
        validate_checkpoint(
            str(trained), GateConfig(benchmarks={"Set5": tmp_path / "nope"}, reference_lr_size=16)
        )
    empty_root = Storage(f"file://{tmp_path}/empty")
    with pytest.raises(
        ValueError, match=r"no reference set at .*/empty/reference/Set5.*gates.sr.benchmarks.Set5"
    ):
        validate_checkpoint(str(trained), GateConfig(reference_lr_size=16), storage=empty_root)
    with pytest.raises(ValueError, match="no storage was given"):
        validate_checkpoint(str(trained), GateConfig(reference_lr_size=16))
    # a pushed file that no longer matches its manifest is refused, never scored
    corrupt = Storage(f"file://{tmp_path}/corrupt")
    push(corrupt, "Set5", Path(reference_root._path("reference/Set5/files")))
    victim = sorted(corrupt.list("reference/Set5/files"))[0]
    corrupt.write_bytes(victim, corrupt.read_bytes(victim)[:-1] + b"\x00")
    with pytest.raises(ValueError, match="does not match its manifest"):
        validate_checkpoint(str(trained), GateConfig(benchmarks={"Set5": "reference/Set5"}), storage=corrupt)
    with pytest.raises(ValueError, match="no benchmark sets"):
        validate_checkpoint(str(trained), GateConfig(benchmarks={}, reference_lr_size=16))


def _cli(*argv):
    return run_command(validate_cmd, "validate", *argv)


def test_cli_exit_codes_and_json(trained, tmp_path, shared_data, monkeypatch, capsys):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    set5 = f"Set5={shared_data / 'sr_benchmarks' / 'Set5'}"
    gates = tmp_path / "gates.yaml"
    gates.write_text("reference_lr_size: 32\nlatency_repeats: 1\n")
    out = tmp_path / "verdict.json"
    assert _cli(str(trained), "--benchmark", set5, "--gates", str(gates), "--out", str(out)) == 0
    verdict = json.loads(out.read_text())
    assert verdict["passed"] and verdict["config"]["reference_lr_size"] == 32
    assert "verdict: PASSED" in capsys.readouterr().out
    assert _cli(str(trained), "--benchmark", set5, "--gates", str(gates), "--json") == 0
    assert json.loads(capsys.readouterr().out)["checkpoint_sha256"] == verdict["checkpoint_sha256"]
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00" * 64)
    assert _cli(str(corrupt), "--benchmark", set5, "--out", str(out)) == 1
    assert "checkpoint_corrupt" in capsys.readouterr().err and not json.loads(out.read_text())["passed"]
    assert _cli(str(tmp_path / "missing.ckpt"), "--benchmark", set5) == 2
    assert _cli(str(trained), "--benchmark", "Set5") == 2  # not NAME=DIR
    assert _cli(str(trained), "--benchmark", f"Set5={tmp_path}/none") == 2
    gates.write_text("margin_dbb: 1\n")
    assert _cli(str(trained), "--gates", str(gates)) == 2
    assert "margin_dbb" in capsys.readouterr().err


def test_cli_reads_the_reference_sets_from_the_root_only(
    trained, reference_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CRISP_SHARED_DATA", str(tmp_path / "no-shared-data"))  # as on a deployed worker
    gates = tmp_path / "gates.yaml"
    gates.write_text("reference_lr_size: 32\nlatency_repeats: 1\n")
    monkeypatch.setenv("CRISP_ROOT", reference_root.root)
    assert _cli(str(trained), "--gates", str(gates)) == 0
    assert "verdict: PASSED" in capsys.readouterr().out
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/bare-root")
    assert _cli(str(trained), "--gates", str(gates)) == 2
    err = capsys.readouterr().err
    assert "gates.sr.benchmarks.Set5" in err and "crisp reference push" in err
