"""The GAN task for real: a tiny generator started from its L1 twin and fine-tuned against a PatchGAN
critic on realworld_x4 pairs, resumed exactly after a kill (generator, critic, its spectral-norm vectors,
EMA, optimizer, loader position), released as `crisp-sr-x4-real` under `gates.sr_gan`, served by
`crisp upscale`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crisp.commands import upscale as upscale_cmd
from pipeline.degrade.tiles import TileConfig
from pipeline.storage import Storage
from tests.support.checkpoints import trained_checkpoint
from tests.support.cli import run_command
from tests.support.pairs_fixture import TINY_PARTITION, load_images, write_pair_partition
from tests.support.train_callbacks import kill_and_resume
from training.fit.train import load_train_config, train
from training.gates.gan_gates import GanGatePolicy
from training.registry.release import ReleaseTarget, release
from training.registry.versions import RegistryConfig, load_model
from training.serve.upscale import upscale_image
from training.tasks import get_task

REPO = Path(__file__).resolve().parents[3]
RECIPE = "realworld_x4"
PHOTO_PARTITION = "2026-01-02"
TINY = ["optim.warmup_steps=0", "data.patch_size=12", "data.batch_size=4", "data.block_size=2", "data.workers=0",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false", "trainer.max_steps=2",
        "trainer.accelerator=cpu", "model.discriminator={features: 4, downs: 2}"]  # fmt: skip

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gan_pairs(tmp_path_factory, shared_data, product_photos) -> tuple[Storage, Path]:
    """pairs/realworld_x4: TINY_PARTITION cut from 8 T91 images (64 px HR tiles), PHOTO_PARTITION from 8
    product photos at 256 px (one HR tile each: NIQE, a GAN gate, needs 192 px), and the L1 twin's checkpoint."""
    folder = tmp_path_factory.mktemp("gan")
    storage = Storage(f"file://{folder}/root")
    t91 = shared_data / "sr_train" / "T91"
    tiles = TileConfig(hr_tile=64, overlap=0, min_hr_side=48)
    write_pair_partition(
        storage, load_images(t91, limit=8), RECIPE, TINY_PARTITION, tiles, shard_bytes=256 << 10
    )
    photos = load_images(product_photos, limit=8, max_side=256)
    tiles = TileConfig(hr_tile=256, overlap=0, min_hr_side=48)
    write_pair_partition(storage, photos, RECIPE, PHOTO_PARTITION, tiles, shard_bytes=256 << 10)
    return storage, trained_checkpoint(folder / "twin.ckpt", t91)


def _config(gan_pairs, output: str, *extra: str, partitions: tuple[str, ...] = (TINY_PARTITION,)):
    storage, twin = gan_pairs
    overrides = [*TINY, f"data.root={storage.root}", f"data.partitions=[{','.join(partitions)}]", f"output={output}",
                 f"model.init_from={twin}", *extra]  # fmt: skip
    return load_train_config(REPO / "training" / "configs" / "gan_x4_real.yaml", overrides)


@pytest.fixture(scope="module")
def released(gan_pairs, product_photos):
    storage, _ = gan_pairs
    # a permissive deployment policy (two steps of training), scored on the held-out val split
    policy = GanGatePolicy(margin_db=-100.0, golden_output_range=(-1.0, 2.0), pair_split="val",
                           max_psnr_drop_db=100.0, min_niqe_gain=-100.0, max_edge_psnr_drop_db=100.0)  # fmt: skip
    target = ReleaseTarget(
        model_name="crisp-sr-x4-real",
        storage=storage,
        registry=RegistryConfig(root=storage.root, policy=policy, experiment="crisp-sr_gan"),
        recipe=RECIPE,
        partitions=[TINY_PARTITION, PHOTO_PARTITION],
        photos=sorted(product_photos.glob("*.jpg"))[:1],
        task="sr_gan",
    )
    config = _config(
        gan_pairs, storage.uri("runs/tiny"), "resume=never", partitions=(TINY_PARTITION, PHOTO_PARTITION)
    )
    result = train(config)
    return target, config, release(target, config.model_dump(mode="json"), asdict(result), run_name="tiny")


def test_a_killed_gan_training_resumes_exactly(gan_pairs, tmp_path):
    whole, resumed = kill_and_resume(lambda output, *run: _config(gan_pairs, output, *run), tmp_path)
    assert any(
        k.startswith("disc.") and k.endswith("._u") for k in whole["state_dict"]
    )  # critic + its vectors
    (opt_a,), (opt_b,) = whole["optimizer_states"], resumed["optimizer_states"]
    assert len(opt_a["param_groups"]) == 2  # generator and critic
    for index, state in opt_a["state"].items():
        for key, value in state.items():
            assert torch.equal(value, opt_b["state"][index][key]), (index, key)


def test_the_default_config_fine_tunes_the_twin_and_releases_crisp_sr_x4_real(released):
    _, config, outcome = released
    assert config.task == "sr_gan" and config.model.init_from and config.data.recipe == RECIPE
    assert get_task("sr_gan").registry_name(config.model) == "crisp-sr-x4-real"
    assert outcome.promoted and outcome.version == 1 and outcome.champion == 1
    assert outcome.verdict.meta.task == "sr_gan" and outcome.verdict.meta.recipe == RECIPE
    assert outcome.verdict.config.settings_key == "gates.sr_gan"
    assert [s.name for s in outcome.verdict.scores] == [f"pairs/{RECIPE}:val"]


def test_the_gan_is_gated_against_its_twin_and_the_default_policy_refuses_two_steps(released, gan_pairs):
    _, twin = gan_pairs
    verdict = released[2].verdict
    assert verdict.meta.init_from == str(twin)
    assert verdict.gate("gan_twin").passed and str(twin) in verdict.gate("gan_twin").detail
    metrics = verdict.metrics
    assert metrics["gan/images"] == verdict.scores[0].images and metrics["gan/niqe_images"] >= 1
    assert metrics["gan/twin_psnr_y"] - metrics["gan/psnr_y"] == pytest.approx(metrics["gan/psnr_drop_db"])
    for gate in ("gan_psnr_drop", "gan_niqe_gain", "gan_edge_fidelity"):
        assert verdict.gate(gate).measured is not None and verdict.gate(gate).passed
    # the deployment's default policy does not accept what the permissive one measured
    default = GanGatePolicy(margin_db=-100.0, golden_output_range=(-1.0, 2.0), pair_split="val")
    refused = default.failures(verdict)
    assert any("max_psnr_drop_db=100.0 is looser" in p for p in refused), refused


def test_crisp_upscale_serves_the_gan_champion(released, product_photos, tmp_path, monkeypatch, capsys):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    image = tmp_path / "odd.png"
    Image.open(sorted(product_photos.glob("*.jpg"))[0]).convert("RGB").resize((29, 21)).save(image)
    out = tmp_path / "out"
    model_uri = "models:/crisp-sr-x4-real@champion"
    argv = [str(image), "--model", model_uri, "--out", str(out), "--tile", "16", "--overlap", "4"]
    assert run_command(upscale_cmd, "upscale", *argv) == 0, capsys.readouterr().err
    served = np.asarray(Image.open(out / "odd_x4.png"))
    model, meta = load_model(model_uri, target.registry)
    assert meta.scale == 4 and served.shape == (84, 116, 3)
    pixels = np.asarray(Image.open(image).convert("RGB"))
    np.testing.assert_array_equal(served, upscale_image(model, pixels, 4, 16, 4, "cpu"))
