import json

import numpy as np
import pytest
import torch

from crisp.commands import registry as registry_cmd
from crisp.commands import upscale as upscale_cmd
from tests.support.checkpoints import (
    random_state,
    trained_checkpoint,
    trained_espcn_state,
    write_checkpoint,
)
from tests.support.cli import run_command
from training.gates.policy import GatePolicy
from training.gates.safe_load import CheckpointRejected, LoadReason
from training.gates.validate import validate_checkpoint
from training.registry.versions import (
    PromotionRefused,
    RegistryConfig,
    UnknownModelError,
    list_versions,
    load_model,
    parse_model_uri,
    promote,
    recorded_verdict,
    register,
    resolve_champion,
    rollback,
)


@pytest.fixture(scope="module")
def config(tmp_path_factory, shared_data):
    """One embedded registry (SQLite + artifacts under a file:// root) for the module; a name per test.
    Its policy requires Set5 only (the fixtures score no pair split)."""
    policy = GatePolicy(benchmarks={"Set5": shared_data / "sr_benchmarks" / "Set5"}, pair_split=None)
    return RegistryConfig(root=f"file://{tmp_path_factory.mktemp('registry')}/root", policy=policy)


@pytest.fixture(scope="module")
def gates(config):
    return config.policy.gate_config(reference_lr_size=32, latency_repeats=1)


@pytest.fixture(scope="module")
def checkpoints(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    random_kwargs = {"residual": True}
    return {
        "trained": trained_checkpoint(folder / "trained.ckpt", shared_data / "sr_train" / "T91"),
        "random": write_checkpoint(
            folder / "random.ckpt", random_state("espcn", 4, **random_kwargs), arch_kwargs=random_kwargs
        ),
        "x2": write_checkpoint(folder / "x2.ckpt", {}, arch="bicubic", scale=2),
    }


def _champion(name, config):
    return next((v.version for v in list_versions(name, config) if "champion" in v.aliases), None)


def _validate(path, gates, config, name):
    return validate_checkpoint(
        str(path), gates, champion=resolve_champion(f"models:/{name}@champion", config)
    )


def test_promotion_rollback_and_refusals(checkpoints, gates, config):
    name = "sr-flow"
    first = _validate(checkpoints["trained"], gates, config, name)
    assert first.passed and not first.champion.found  # nothing registered yet: nothing to beat
    v1 = register(str(checkpoints["trained"]), first, name, config=config)
    assert [v.aliases for v in list_versions(name, config)] == [["challenger"]]
    assert promote(name, v1, config) is None and _champion(name, config) == v1

    # a failing verdict is registered (for the record) but never promoted
    weak = _validate(checkpoints["random"], gates, config, name)
    assert not weak.passed and weak.champion.version == v1
    v2 = register(str(checkpoints["random"]), weak, name, config=config)
    with pytest.raises(PromotionRefused, match="does not pass the gate policy: bicubic_margin"):
        promote(name, v2, config)
    assert _champion(name, config) == v1
    versions = {v.version: v for v in list_versions(name, config)}
    assert (
        versions[v2].aliases == ["challenger"]
        and versions[v2].passed is False
        and versions[v1].passed is True
    )

    # a passing verdict measured against the current champion replaces it; rollback restores it
    second = _validate(checkpoints["trained"], gates, config, name)
    assert second.passed and second.champion.version == v1
    v3 = register(str(checkpoints["trained"]), second, name, config=config)
    assert promote(name, v3, config) == v1 and _champion(name, config) == v3
    assert promote(name, v3, config) == v3  # promoting the champion again changes nothing
    assert rollback(name, config) == v1 and _champion(name, config) == v1
    with pytest.raises(PromotionRefused, match="no previous champion"):
        rollback(name, config)
    assert _champion(name, config) == v1

    # v3's verdict was measured against v1, which is champion again: still valid; `first` is stale now
    stale = register(str(checkpoints["trained"]), first, name, config=config)
    with pytest.raises(PromotionRefused, match="re-validate"):
        promote(name, stale, config)
    assert _champion(name, config) == v1


def test_promotion_is_the_registrys_policy_not_the_callers(checkpoints, gates, config):
    """A verdict that passed under looser thresholds than the configured policy is refused, whoever
    promotes it; a person's --force promotes it and the version records who and why."""
    name = "sr-policy"
    loose = validate_checkpoint(str(checkpoints["random"]), gates.model_copy(update={"margin_db": -100.0}))
    assert loose.passed  # a random model "passes" a -100 dB margin
    version = register(str(checkpoints["random"]), loose, name, config=config)
    with pytest.raises(PromotionRefused, match=r"margin_db=-100.0 is looser than the policy's 0.3"):
        promote(name, version, config)
    assert _champion(name, config) is None

    # a hand-edited verdict claiming the Set5 margin passed is re-checked on its measurements
    forged = loose.model_copy(update={"config": gates})
    forged_version = register(str(checkpoints["random"]), forged, name, config=config)
    with pytest.raises(PromotionRefused, match="bicubic_margin:Set5"):
        promote(name, forged_version, config)

    # a policy that requires Set14 refuses a verdict that never scored it
    strict = config.model_copy(
        update={
            "policy": config.policy.model_copy(
                update={"benchmarks": {"Set5": gates.benchmarks["Set5"], "Set14": gates.benchmarks["Set5"]}}
            )
        }
    )
    good = validate_checkpoint(str(checkpoints["trained"]), gates)
    good_version = register(str(checkpoints["trained"]), good, name, config=config)
    with pytest.raises(PromotionRefused, match="required set 'Set14' was not scored"):
        promote(name, good_version, strict)

    with pytest.raises(PromotionRefused, match="needs a --reason"):
        promote(name, version, config, force_reason=" ")
    assert (
        promote(name, version, config, force_reason="hotfix: bicubic beats nothing today", actor="ana")
        is None
    )
    assert _champion(name, config) == version
    from mlflow import MlflowClient

    uri = config.resolved_tracking_uri()
    tags = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(name, str(version)).tags
    assert tags["crisp.forced_by"] == "ana" and tags["crisp.forced_reason"].startswith("hotfix")
    assert tags["crisp.forced_at"]


def test_versions_carry_lineage_tags_and_artifacts(checkpoints, gates, config, shared_data):
    from mlflow import MlflowClient

    name = "sr-tags"
    verdict = validate_checkpoint(str(checkpoints["trained"]), gates)
    version = register(str(checkpoints["trained"]), verdict, name, tags={"crisp.run": "r-42"}, config=config)
    client = MlflowClient(
        tracking_uri=config.resolved_tracking_uri(), registry_uri=config.resolved_tracking_uri()
    )
    tags = client.get_model_version(name, str(version)).tags
    assert (
        tags["crisp.arch"] == "espcn" and tags["crisp.scale"] == "4" and tags["crisp.recipe"] == "bicubic_x4"
    )
    assert json.loads(tags["crisp.pair_partitions"]) == ["pairs/bicubic_x4/2026-01-01"]
    assert json.loads(tags["crisp.data_manifest_hash"]) == "sha256:test-manifest"
    assert tags["crisp.code_version"] == "test" and tags["crisp.run"] == "r-42"
    assert tags["crisp.checkpoint_sha256"] == verdict.checkpoint_sha256
    assert float(tags["crisp.metric.Set5.psnr_y"]) == pytest.approx(verdict.score("Set5").psnr_y, abs=1e-4)
    assert tags["crisp.verdict_summary"].startswith("passed: Set5") and "crisp.verdict" not in tags
    assert recorded_verdict(name, version, config) == verdict  # the whole verdict is an artifact
    assert (
        config.resolved_tracking_uri().startswith("sqlite:///")
        and "/root/mlflow/mlflow.db" in config.resolved_tracking_uri()
    )

    # the version's MLflow model is a pyfunc over the TorchScript export (nothing pickled)
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(client.get_model_version_download_uri(name, str(version)))
    assert pyfunc.metadata.get_input_schema() is not None and pyfunc.metadata.get_output_schema() is not None
    model, meta = load_model(f"models:/{name}/{version}", config)
    for height, width in ((37, 53), (211, 97), (32, 32)):  # any size, odd ones included
        lr = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        with torch.inference_mode():
            eager = model(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)[0]
        eager = eager.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        served = pyfunc.predict(lr)
        assert served.shape == (height * 4, width * 4, 3)
        assert np.abs(served.astype(int) - eager.astype(int)).max() <= 1
    # load_model: safe load of the stored checkpoint, EMA weights, registry identity in the meta
    trained = trained_espcn_state(shared_data / "sr_train" / "T91")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    assert meta.registry_name == name and meta.registry_version == version
    assert meta.weights == "ema" and meta.source == f"models:/{name}/{version}"


def test_bad_inputs_leave_the_registry_and_champion_unchanged(checkpoints, gates, config, tmp_path):
    name = "sr-guarded"
    verdict = validate_checkpoint(str(checkpoints["trained"]), gates)
    promote(name, register(str(checkpoints["trained"]), verdict, name, config=config), config)
    before = [(v.version, v.aliases) for v in list_versions(name, config)]

    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(checkpoints["trained"].read_bytes()[:1000])
    nan_state = random_state()
    nan_state["body.0.bias"][0] = float("nan")
    payload = write_checkpoint(
        tmp_path / "payload.ckpt", random_state(), extra={"module": torch.nn.Identity()}
    )
    bad = {
        LoadReason.CORRUPT: corrupt,
        LoadReason.NON_FINITE_WEIGHTS: write_checkpoint(tmp_path / "nan.ckpt", nan_state),
        LoadReason.UNSAFE_PAYLOAD: payload,
    }
    for reason, path in bad.items():
        rejected = validate_checkpoint(str(path), gates)
        assert not rejected.passed and rejected.reasons[0].startswith(reason.value)
        with pytest.raises(CheckpointRejected) as info:
            register(str(path), rejected, name, config=config)
        assert info.value.reason == reason
    with pytest.raises(ValueError, match="another file"):
        register(str(checkpoints["random"]), verdict, name, config=config)  # verdict of a different file

    # a checkpoint for another scale: validated against the x4 champion it fails, so it cannot be promoted
    other_scale = _validate(checkpoints["x2"], gates, config, name)
    assert {g.gate for g in other_scale.gates if not g.passed} >= {"champion_scale"}
    x2_version = register(str(checkpoints["x2"]), other_scale, name, config=config)
    with pytest.raises(PromotionRefused):
        promote(name, x2_version, config)
    after = [(v.version, v.aliases) for v in list_versions(name, config) if v.version != x2_version]
    assert after == [(version, [a for a in aliases if a != "challenger"]) for version, aliases in before]
    assert _champion(name, config) == before[0][0]


def test_unknown_model_uris_are_clear_errors(config, checkpoints, gates):
    name = "sr-known"
    register(
        str(checkpoints["trained"]),
        validate_checkpoint(str(checkpoints["trained"]), gates),
        name,
        config=config,
    )
    with pytest.raises(UnknownModelError, match="no registered model 'nope'"):
        load_model("models:/nope@champion", config)
    with pytest.raises(UnknownModelError, match="no alias @champion"):
        load_model(f"models:/{name}@champion", config)  # registered but never promoted
    with pytest.raises(UnknownModelError, match="no version 99"):
        load_model(f"models:/{name}/99", config)
    for malformed in ("models:/", "models:/name", "models:/@x"):
        with pytest.raises(ValueError, match="malformed model URI"):
            parse_model_uri(malformed)
    with pytest.raises(UnknownModelError):
        promote("nope", 1, config)
    assert parse_model_uri("models:/a/b@c") == ("a/b", "c", None) and parse_model_uri("models:/m/7") == (
        "m",
        None,
        7,
    )


def test_cli_list_register_promote_rollback_and_upscale(
    config, checkpoints, gates, tmp_path, monkeypatch, capsys, product_photos
):
    from PIL import Image

    monkeypatch.setenv("CRISP_ROOT", config.root)
    monkeypatch.setenv("CRISP_GATES__SR__BENCHMARKS", json.dumps({"Set5": str(gates.benchmarks["Set5"])}))
    monkeypatch.setenv("CRISP_GATES__SR__PAIR_SPLIT", "null")
    name = "sr-cli"
    verdict_file = tmp_path / "verdict.json"
    verdict_file.write_text(validate_checkpoint(str(checkpoints["trained"]), gates).model_dump_json())
    weak_file = tmp_path / "weak.json"
    weak_file.write_text(validate_checkpoint(str(checkpoints["random"]), gates).model_dump_json())
    assert (
        run_command(
            registry_cmd,
            "registry",
            "register",
            str(checkpoints["trained"]),
            "--verdict",
            str(verdict_file),
            "--name",
            name,
        )
        == 0
    )
    assert (
        run_command(
            registry_cmd,
            "registry",
            "register",
            str(checkpoints["random"]),
            "--verdict",
            str(weak_file),
            "--name",
            name,
        )
        == 0
    )
    assert run_command(registry_cmd, "registry", "promote", name, "2") == 1
    assert "refused" in capsys.readouterr().err
    assert (
        run_command(registry_cmd, "registry", "promote", name, "2", "--force") == 2
    )  # --force needs --reason
    assert "--reason" in capsys.readouterr().err
    assert run_command(registry_cmd, "registry", "promote", name, "1") == 0
    assert run_command(registry_cmd, "registry", "rollback", name) == 1  # nothing to roll back to
    assert run_command(registry_cmd, "registry", "list", name) == 0
    listing = capsys.readouterr().out
    assert "champion" in listing and "failed" in listing and "Set5.psnr_y" in listing
    assert run_command(registry_cmd, "registry", "list", name, "--json") == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [2, 1]
    assert run_command(registry_cmd, "registry", "list", "nope") == 2
    assert run_command(registry_cmd, "registry", "promote", name, "42") == 2

    image = tmp_path / "photo.png"
    Image.open(sorted(product_photos.glob("*.jpg"))[0]).convert("RGB").resize((48, 40)).save(image)
    out = tmp_path / "out"
    assert (
        run_command(
            upscale_cmd, "upscale", str(image), "--model", f"models:/{name}@champion", "--out", str(out)
        )
        == 0
    )
    assert Image.open(out / "photo_x4.png").size == (192, 160)
    assert (
        run_command(upscale_cmd, "upscale", str(image), "--model", "models:/nope@champion", "--out", str(out))
        == 2
    )
    assert "no registered model 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_register_and_promote_through_a_tracking_server(checkpoints, gates, config, tmp_path):
    """A real `mlflow server` with proxied artifacts (as on make stack): the verdict promotion re-reads
    is fetched from that server, not from mlflow's global URI (a local ./mlruns)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    server = subprocess.Popen(
        [mlflow_cli, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", (tmp_path / "artifacts").as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        served = config.model_copy(update={"tracking_uri": f"http://127.0.0.1:{port}"})
        verdict = _validate(checkpoints["trained"], gates, served, "sr-served")
        version = register(str(checkpoints["trained"]), verdict, "sr-served", config=served)
        assert promote("sr-served", version, served) is None and _champion("sr-served", served) == version
    finally:
        server.terminate()
        server.wait(timeout=30)
