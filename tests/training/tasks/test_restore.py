"""The restore task for real: a tiny FFDNet trained on restore_x1_noise pairs, validated against its own
noisy input, released as `crisp-restore-denoise`, and served at the input's size by `crisp restore --task
denoise`; a tiny conditioned one, told each pair's recorded sigma in training and `--sigma` in serving."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crisp.commands import restore as restore_cmd
from pipeline.degrade.tiles import TileConfig
from pipeline.sr_metrics import psnr_y
from pipeline.storage import Storage
from tests.support.checkpoints import trained_checkpoint
from tests.support.cli import run_command
from tests.support.pairs_fixture import TINY_PARTITION, load_images, write_pair_partition
from tests.support.train_callbacks import kill_and_resume
from training.archs.levels import WithLevels, normalize
from training.fit.train import load_train_config, train
from training.gates.measure import load_pair_split
from training.gates.policy import RestoreGatePolicy
from training.registry.release import ReleaseTarget, release
from training.registry.versions import RegistryConfig, load_model
from training.serve.upscale import upscale_image
from training.tasks import get_task

REPO = Path(__file__).resolve().parents[3]
RECIPE, NAME = "restore_x1_noise", "crisp-restore-denoise"
TINY = ["optim.warmup_steps=0", "data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.workers=0",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false", "trainer.max_steps=2",
        "trainer.accelerator=cpu", "model.arch_options={features: 8, depth: 4}"]  # fmt: skip

torch.set_num_threads(1)


def _config(storage: Storage, output: str, *extra: str):
    overrides = [
        *TINY,
        f"data.root={storage.root}",
        f"data.partitions=[{TINY_PARTITION}]",
        f"output={output}",
        *extra,
    ]
    return load_train_config(REPO / "training" / "configs" / "ffdnet_x1.yaml", overrides)


@pytest.fixture(scope="module")
def restore_pairs(tmp_path_factory, shared_data) -> Storage:
    """pairs/restore_x1_noise/2026-01-01 cut from 8 T91 images (64 px tiles, every 4th image in val)."""
    storage = Storage(f"file://{tmp_path_factory.mktemp('restore')}/root")
    images = load_images(shared_data / "sr_train" / "T91", limit=8)
    tiles = TileConfig(hr_tile=64, overlap=0, min_hr_side=32)
    write_pair_partition(storage, images, RECIPE, TINY_PARTITION, tiles, shard_bytes=256 * 1024)
    return storage


@pytest.fixture(scope="module")
def released(restore_pairs, product_photos):
    storage = restore_pairs
    # a permissive deployment policy (two steps of training), scored on the held-out val split
    policy = RestoreGatePolicy(margin_db=-100.0, golden_output_range=(-1.0, 2.0), pair_split="val")
    target = ReleaseTarget(
        model_name=NAME,
        storage=storage,
        registry=RegistryConfig(root=storage.root, policy=policy, experiment=NAME),
        recipe=RECIPE,
        partitions=[TINY_PARTITION],
        photos=sorted(product_photos.glob("*.jpg"))[:1],  # the report's before/after crop
        task="restore",
    )
    config = _config(storage, storage.uri("runs/tiny"), "resume=never")
    result = train(config)
    return target, config, release(target, config.model_dump(mode="json"), asdict(result), run_name="tiny")


def test_a_killed_restore_training_resumes_exactly(restore_pairs, tmp_path):
    kill_and_resume(lambda output, *run: _config(restore_pairs, output, *run), tmp_path)


def test_each_kind_of_restorer_has_its_own_registered_name(released):
    _, config, outcome = released
    assert config.task == "restore" and config.model.arch == "ffdnet" and config.model.scale == 1
    task = get_task("restore")
    assert task.registry_name(config.model, config.data.recipe) == NAME
    assert task.registry_name(config.model, "restore_x1_jpeg") == "crisp-restore-dejpeg"
    assert task.registry_name(config.model, "restore_x1_mixed") == "crisp-restore"
    assert outcome.promoted and outcome.version == 1 and outcome.champion == 1
    assert outcome.verdict.meta.task == "restore" and outcome.verdict.meta.recipe == RECIPE


def test_the_baseline_at_scale_one_is_the_noisy_input_itself(released):
    target, _, outcome = released
    (score,) = outcome.verdict.scores
    assert score.name == f"pairs/{RECIPE}:val"
    pairs = load_pair_split(target.storage, RECIPE, [TINY_PARTITION], "val", 200, 1)
    assert score.images == len(pairs) > 0
    noisy = float(np.mean([psnr_y(lr, hr, 1) for lr, hr in pairs]))
    assert score.bicubic_psnr_y == pytest.approx(noisy, abs=1e-9)
    assert noisy < 40  # the recipe really added noise (sigma 0..75 or Poisson)
    margin = next(g for g in outcome.verdict.gates if g.gate.startswith("bicubic_margin"))
    assert "vs the degraded input" in margin.detail
    assert outcome.verdict.config.settings_key == "gates.restore"


def test_the_report_shows_the_degraded_input_next_to_the_restored_photo(released):
    import json

    from pipeline.storage import read_uri

    _, _, outcome = released
    data = json.loads(read_uri(outcome.report.removesuffix(".html") + ".json"))
    (crop,) = data["crops"]
    assert crop["bicubic_psnr_y"] < 45 and crop["model_psnr_y"] > 0  # the recipe degraded it
    html = read_uri(outcome.report).decode()
    assert "degraded input (measured)" in html and "| clean (left to right)" in html


def _cli(*argv):
    return run_command(restore_cmd, "restore", *argv)


def test_crisp_restore_serves_the_champion_at_each_inputs_size(
    released, product_photos, tmp_path, monkeypatch, capsys
):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    photo = sorted(product_photos.glob("*.jpg"))[0]
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(photo).convert("RGB").resize((45, 33)).save(folder / "odd.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    code = _cli(str(folder), "--task", "denoise", "--out", str(out), "--tile", "32", "--overlap", "4")
    captured = capsys.readouterr()
    assert code == 1 and "broken" in captured.err and "wrote 1 of 2 files" in captured.out
    restored = np.asarray(Image.open(out / "odd.png"))
    assert restored.shape == (33, 45, 3) and not (out / "broken.png").exists()
    model, meta = load_model(f"models:/{NAME}@champion", target.registry)
    assert meta.scale == 1
    pixels = np.asarray(Image.open(folder / "odd.png").convert("RGB"))
    np.testing.assert_array_equal(restored, upscale_image(model, pixels, 1, 32, 4, "cpu"))


def test_the_registered_pyfunc_restores_odd_sizes_like_the_eager_model(released, monkeypatch):
    import mlflow

    target, _, _ = released
    uri = target.registry.resolved_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    model, _ = load_model(f"models:/{NAME}@champion", target.registry)
    for height, width in ((37, 53), (211, 97)):
        image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        served = pyfunc.predict(image, params={"output": "float"})
        with torch.inference_mode():
            eager = model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0)[0].clamp(0, 1)
        assert served.shape == (height, width, 3)
        assert np.abs(served - eager.permute(1, 2, 0).numpy()).max() <= 1e-4


def test_crisp_validate_task_restore_applies_the_restore_policy(released, tmp_path, capsys):
    import json

    from crisp.commands import validate as validate_cmd

    target, _, outcome = released
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"root: {target.storage.root}\n"
        "gates: {restore: {margin_db: -100.0, golden_output_range: [-1.0, 2.0], pair_split: val},\n"
        "        sr: {golden_output_range: [-1.0, 2.0]}}\n"
    )
    pairs = ["--pair-recipe", RECIPE, "--pair-partition", TINY_PARTITION]
    argv = ["--config", str(settings), "validate", outcome.checkpoint, "--task", "restore", *pairs, "--json"]
    assert run_command(validate_cmd, *argv) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["config"]["settings_key"] == "gates.restore" and verdict["config"]["margin_db"] == -100.0
    assert [s["name"] for s in verdict["scores"]] == [f"pairs/{RECIPE}:val"]
    # the SR policy instead wants its HR benchmark sets, which this root does not hold
    assert run_command(validate_cmd, *argv[:4]) == 2
    assert "gates.sr.benchmarks.Set5" in capsys.readouterr().err


def test_crisp_restore_task_picks_its_champion_and_refuses_another_kinds_model(
    released, tmp_path, monkeypatch, capsys
):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    image = tmp_path / "a.png"
    Image.new("RGB", (20, 20), (120, 80, 40)).save(image)
    # auto (the default) is the mixed-chain restorer, which this registry has never had
    assert _cli(str(image), "--out", str(tmp_path / "auto")) == 2
    assert "crisp-restore" in capsys.readouterr().err and not (tmp_path / "auto" / "a.png").exists()
    denoiser = ["--model", f"models:/{NAME}@champion"]
    assert _cli(str(image), *denoiser, "--task", "dejpeg", "--out", str(tmp_path / "jpeg")) == 2
    assert (
        "was trained on restore_x1_noise, not on restore_x1_jpeg (--task dejpeg)" in capsys.readouterr().err
    )
    assert _cli(str(image), *denoiser, "--task", "auto", "--out", str(tmp_path / "any")) == 0
    assert (tmp_path / "any" / "a.png").exists()


def test_crisp_restore_refuses_an_upscaler(shared_data, tmp_path, capsys):
    ckpt = trained_checkpoint(tmp_path / "x4.ckpt", shared_data / "sr_train" / "T91")
    image = tmp_path / "a.png"
    Image.new("RGB", (20, 20), (120, 80, 40)).save(image)
    assert _cli(str(image), "--model", str(ckpt), "--out", str(tmp_path / "out")) == 2
    assert "is an x4 upscaler (use crisp upscale), not a restorer" in capsys.readouterr().err


CONDITIONED = "model.arch_options={features: 8, depth: 4, levels: [noise_sigma]}"


def test_a_conditioned_denoiser_is_told_each_pairs_recorded_sigma(restore_pairs, tmp_path):
    config = _config(restore_pairs, str(tmp_path / "run"), CONDITIONED, "data.level_dropout=0")
    data = get_task("restore").make_data(config.data, config.model)
    data.setup("fit")
    rows = data.catalog.split("train")
    recorded = dict(zip(rows["pair_id"].to_pylist(), rows["noise_sigma"].to_pylist(), strict=True))
    stream = data.train_set
    samples = [stream.augmented(i, stream.reader.fetch_block(i, i + 1), 0) for i in range(len(stream.reader))]
    told = np.array([float(s["level"][0]) for s in samples])
    np.testing.assert_allclose(told, normalize("noise_sigma", [recorded[s["key"]] for s in samples]))
    assert told.std() > 0.05  # the recipe draws a sigma per tile, so the levels differ


def test_crisp_restore_tells_a_conditioned_model_the_sigma_and_refuses_it_for_a_blind_one(
    released, restore_pairs, tmp_path, monkeypatch, capsys
):
    target, _, _ = released
    monkeypatch.setenv("CRISP_ROOT", target.storage.root)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    # the blind champion would ignore a sigma: refused, nothing written
    assert _cli(str(image), "--task", "denoise", "--sigma", "25", "--out", str(tmp_path / "blind")) == 2
    assert "trained blind" in capsys.readouterr().err and not (tmp_path / "blind" / "a.png").exists()
    with pytest.raises(SystemExit) as usage:  # argparse's own usage error
        _cli(str(image), "--task", "denoise", "--sigma=-3", "--out", str(tmp_path / "neg"))
    assert usage.value.code == 2 and "--sigma: -3.0 is outside [0, 255]" in capsys.readouterr().err
    config = _config(restore_pairs, str(tmp_path / "run"), CONDITIONED, "resume=never", "trainer.max_steps=6",
                     "optim.lr=0.01")  # fmt: skip
    checkpoint = train(config).last_ckpt_uri
    model, _ = load_model(checkpoint)
    served = {}
    for sigma in ("0", "75"):
        out = tmp_path / f"sigma{sigma}"
        assert _cli(str(image), "--model", checkpoint, "--sigma", sigma, "--out", str(out)) == 0
        served[sigma] = np.asarray(Image.open(out / "a.png"))
        told = WithLevels(model, {"noise_sigma": float(sigma)})
        np.testing.assert_array_equal(served[sigma], upscale_image(told, pixels, 1, 256, 16, "cpu"))
    assert not np.array_equal(served["0"], served["75"])  # the sigma reached the model


def test_crisp_restore_tells_a_quality_reading_model_each_jpegs_own_quality(
    restore_pairs, product_photos, tmp_path
):
    from crisp.commands.upscale import decode_input
    from pipeline.clean.quality import estimate_jpeg_quality

    levels = "model.arch_options={features: 8, depth: 4, levels: [jpeg_quality]}"
    config = _config(restore_pairs, str(tmp_path / "run"), levels, "resume=never", "trainer.max_steps=6",
                     "optim.lr=0.01")  # fmt: skip
    checkpoint = train(config).last_ckpt_uri
    model, _ = load_model(checkpoint)
    photo = Image.open(sorted(product_photos.glob("*.jpg"))[0]).convert("RGB").resize((40, 48))
    folder = tmp_path / "in"
    folder.mkdir()
    photo.save(folder / "q20.jpg", quality=20)
    photo.save(folder / "q90.jpg", quality=90)
    photo.save(folder / "lossless.png")

    def served(out: Path, name: str) -> np.ndarray:
        return np.asarray(Image.open(out / f"{name}.png"))

    def expected(name: str, quality: float | None) -> np.ndarray:
        pixels = np.asarray(decode_input((folder / name).read_bytes()))
        net = model if quality is None else WithLevels(model, {"jpeg_quality": quality})
        return upscale_image(net, pixels, 1, 256, 16, "cpu")

    assert _cli(str(folder), "--model", checkpoint, "--out", str(tmp_path / "read")) == 0
    for name, quality in (("q20", 20), ("q90", 90)):
        assert estimate_jpeg_quality((folder / f"{name}.jpg").read_bytes()) == quality
        np.testing.assert_array_equal(served(tmp_path / "read", name), expected(f"{name}.jpg", quality))
    assert not np.array_equal(served(tmp_path / "read", "q20"), expected("q20.jpg", 90))  # the quality told
    np.testing.assert_array_equal(served(tmp_path / "read", "lossless"), expected("lossless.png", None))
    # a quality given on the command line is every input's, whatever its tables say
    assert (
        _cli(str(folder), "--model", checkpoint, "--jpeg-quality", "90", "--out", str(tmp_path / "given"))
        == 0
    )
    np.testing.assert_array_equal(served(tmp_path / "given", "q20"), expected("q20.jpg", 90))
