import os
import pickle

import pytest
import torch

from tests.support.checkpoints import (
    TRAINED_ARCH_KWARGS,
    crisp_meta,
    random_state,
    trained_checkpoint,
    trained_espcn_state,
    write_checkpoint,
)
from training.gates.safe_load import CheckpointRejected, LoadReason, safe_load


@pytest.fixture(scope="module")
def t91(shared_data):
    return shared_data / "sr_train" / "T91"


def _rejected(path, reason, **kwargs):
    with pytest.raises(CheckpointRejected) as info:
        safe_load(str(path), **kwargs)
    assert info.value.reason == reason, str(info.value)
    assert str(path) in str(info.value) or reason == LoadReason.NOT_FOUND
    return info.value


def _same_weights(module, state):
    return all(torch.equal(module.state_dict()[k], v) for k, v in state.items())


def test_loads_ema_weights_in_eval_mode_with_meta(tmp_path, t91):
    path = trained_checkpoint(tmp_path / "trained.ckpt", t91)
    module, meta = safe_load(str(path), expected_scale=4)
    assert not module.training
    assert meta.weights == "ema" and meta.arch == "espcn" and meta.scale == 4
    assert meta.arch_kwargs == TRAINED_ARCH_KWARGS and meta.recipe == "bicubic_x4"
    assert meta.data_manifest_hash == "sha256:test-manifest" and meta.source == str(path)
    assert _same_weights(module, trained_espcn_state(t91))  # the EMA copy, not the perturbed live weights


def test_live_weights_without_ema_and_lightning_module_layouts(tmp_path):
    state = random_state("espcn", 3, seed=1)
    module, meta = safe_load(str(write_checkpoint(tmp_path / "live.ckpt", state, scale=3)))
    assert meta.weights == "live" and _same_weights(module, state)
    # SRModule's layout: "net." prefix, EMA under checkpoint["ema"]["weights"]
    ema = random_state("espcn", 3, seed=2)
    path = tmp_path / "srmodule.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in state.items()},
            "ema": {"decay": 0.999, "warmup": True, "updates": 5, "weights": ema},
            "hyper_parameters": {"model": {"arch": "espcn", "scale": 3, "arch_options": {}}},
            "crisp_meta": crisp_meta("espcn", 3),
        },
        path,
    )
    module, meta = safe_load(str(path))
    assert meta.weights == "ema" and _same_weights(module, ema)


def test_file_uri_and_parameter_free_arch(tmp_path):
    path = write_checkpoint(tmp_path / "bicubic.ckpt", {}, arch="bicubic", scale=2)
    module, meta = safe_load(f"file://{path}")
    assert meta.arch == "bicubic" and module(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped"])
def test_corrupted_file_is_rejected(tmp_path, damage):
    good = write_checkpoint(tmp_path / "good.ckpt", random_state()).read_bytes()
    bad = {
        "truncated": good[: len(good) // 2],
        "garbage": os.urandom(4096),
        "empty": b"",
        "flipped": good[:100] + bytes(b ^ 0xFF for b in good[100:400]) + good[400:],
    }[damage]
    path = tmp_path / f"{damage}.ckpt"
    path.write_bytes(bad)
    error = _rejected(path, LoadReason.CORRUPT)
    assert "weights_only" not in str(error)  # torch's advice to load it unsafely is not passed on


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _PlainObject:
    pass


def test_pickled_code_payload_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.ckpt"
    write_checkpoint(payload, random_state(), extra={"callbacks": _RunsShell(marker)})
    errors = [_rejected(payload, LoadReason.UNSAFE_PAYLOAD)]
    assert errors[0].detail == (
        f"checkpoint {payload} needs code to load (it contains os.system); Crisp loads weights only and refuses it"
    )
    instance = write_checkpoint(tmp_path / "instance.ckpt", random_state(), extra={"obj": _PlainObject()})
    errors.append(_rejected(instance, LoadReason.UNSAFE_PAYLOAD))
    assert f"(it contains {__name__}._PlainObject); Crisp loads weights only" in errors[-1].detail
    for protocol in (2, pickle.HIGHEST_PROTOCOL):  # torch's unpickler names protocol 2 globals, ours the rest
        raw = tmp_path / f"raw{protocol}.pkl"
        raw.write_bytes(pickle.dumps({"state_dict": {}, "x": _RunsShell(marker)}, protocol=protocol))
        errors.append(_rejected(raw, LoadReason.UNSAFE_PAYLOAD))
        assert "needs code to load (it contains os.system); Crisp loads weights only" in errors[-1].detail
    for error in errors:  # torch's advice on loading it anyway is not passed on
        assert "weights_only" not in str(error) and "add_safe_globals" not in str(error)
    assert not marker.exists()


def test_missing_or_malformed_meta_is_rejected(tmp_path):
    _rejected(write_checkpoint(tmp_path / "nometa.ckpt", random_state(), meta={}), LoadReason.MISSING_META)
    broken = {"model": {"arch": "espcn"}}  # no scale
    _rejected(
        write_checkpoint(tmp_path / "noscale.ckpt", random_state(), meta=broken), LoadReason.MISSING_META
    )
    weird = crisp_meta("espcn", 4, pair_partitions="not-a-list")
    _rejected(write_checkpoint(tmp_path / "weird.ckpt", random_state(), meta=weird), LoadReason.MISSING_META)
    tensor_only = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor_only)
    _rejected(tensor_only, LoadReason.MISSING_META)


def test_unknown_arch_inconsistent_config_and_wrong_weights(tmp_path):
    unknown = write_checkpoint(tmp_path / "u.ckpt", random_state(), arch="resnet9000")
    assert "unknown arch" in _rejected(unknown, LoadReason.UNKNOWN_ARCH).detail
    bad_option = write_checkpoint(tmp_path / "o.ckpt", random_state(), arch_kwargs={"wings": 2})
    _rejected(bad_option, LoadReason.UNKNOWN_ARCH)
    # hyper_parameters say x4 (write_checkpoint's scale) while crisp_meta says x2
    disagree = write_checkpoint(tmp_path / "d.ckpt", random_state(), scale=4, meta=crisp_meta("espcn", 2))
    _rejected(disagree, LoadReason.INCONSISTENT_CONFIG)
    # x2 weights in a checkpoint that claims x4: the last conv has the wrong shape
    mislabelled = write_checkpoint(tmp_path / "m.ckpt", random_state("espcn", 2), scale=4)
    _rejected(mislabelled, LoadReason.WEIGHTS_MISMATCH)
    foreign = write_checkpoint(tmp_path / "f.ckpt", {"encoder.weight": torch.zeros(2)})
    _rejected(foreign, LoadReason.WEIGHTS_MISMATCH)


def test_checkpoint_for_another_scale_is_rejected(tmp_path):
    path = write_checkpoint(tmp_path / "x2.ckpt", random_state("espcn", 2), scale=2)
    error = _rejected(path, LoadReason.SCALE_MISMATCH, expected_scale=4)
    assert "x2" in error.detail and "x4" in error.detail
    assert safe_load(str(path), expected_scale=2)[1].scale == 2


@pytest.mark.parametrize("where", ["live", "ema"])
def test_non_finite_weights_are_rejected(tmp_path, where):
    state = random_state()
    poisoned = {k: v.clone() for k, v in state.items()}
    poisoned["body.2.bias"][0] = float("nan" if where == "live" else "inf")
    live, ema = (poisoned, state) if where == "live" else (state, poisoned)
    path = write_checkpoint(tmp_path / f"{where}.ckpt", live, ema_state_dict=ema)
    assert "body.2.bias" in _rejected(path, LoadReason.NON_FINITE_WEIGHTS).detail


def test_missing_file_is_rejected(tmp_path):
    _rejected(tmp_path / "nope.ckpt", LoadReason.NOT_FOUND)


def test_safetensors_with_json_sidecar(tmp_path):
    import json

    from safetensors.torch import save_file

    state = random_state("espcn", 4, seed=3)
    save_file(state, tmp_path / "model.safetensors")
    _rejected(tmp_path / "model.safetensors", LoadReason.MISSING_META)  # no sidecar yet
    (tmp_path / "model.json").write_text(json.dumps({"crisp_meta": crisp_meta("espcn", 4)}))
    module, meta = safe_load(str(tmp_path / "model.safetensors"))
    assert meta.arch == "espcn" and _same_weights(module, state)
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    (tmp_path / "bad.json").write_text(json.dumps(crisp_meta("espcn", 4)))
    _rejected(tmp_path / "bad.safetensors", LoadReason.CORRUPT)


def test_loads_from_s3(tmp_path, s3_storage):
    path = write_checkpoint(tmp_path / "s3.ckpt", random_state("espcn", 2), scale=2)
    s3_storage.upload(str(path), "checkpoints/s3.ckpt")
    module, meta = safe_load(s3_storage.uri("checkpoints/s3.ckpt"), storage_options=s3_storage.options)
    assert meta.scale == 2 and meta.source.startswith("s3://")
    with pytest.raises(CheckpointRejected) as info:
        safe_load(s3_storage.uri("checkpoints/missing.ckpt"), storage_options=s3_storage.options)
    assert info.value.reason == LoadReason.NOT_FOUND


def test_loads_a_real_lightning_checkpoint(tmp_path):
    """The format training/fit/checkpoint.py writes: SRModule + CrispCheckpointIO through a Trainer."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from training.fit.checkpoint import CrispCheckpointIO
    from training.fit.checkpoint import crisp_meta as lineage
    from training.fit.lit_module import SRModule

    torch.manual_seed(0)
    model = {"arch": "espcn", "scale": 2, "arch_options": {"features": [16, 8]}}
    data = {
        "data_manifest_hash": "abc",
        "recipe": "bicubic_x2",
        "schema_version": 1,
        "pair_partitions": ["2026-01-01"],
    }
    module = SRModule(model, {"lr": 1e-3, "max_steps": 3})
    batches = [{"lr": torch.rand(2, 3, 8, 8), "hr": torch.rand(2, 3, 16, 16)} for _ in range(3)]
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[CrispCheckpointIO(lineage(model, data, "v1"))],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    path = tmp_path / "real.ckpt"
    trainer.save_checkpoint(path)
    loaded, meta = safe_load(str(path), expected_scale=2)
    assert meta.weights == "ema" and meta.arch_kwargs == {"features": [16, 8]} and meta.code_version == "v1"
    assert meta.pair_partitions == ["2026-01-01"] and meta.data_manifest_hash == "abc"
    assert _same_weights(loaded, module.ema.module.state_dict())
