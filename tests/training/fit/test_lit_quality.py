"""QualityModule: the rank loss orders within groups only, a few real steps lower the loss on real
distorted canvases, the validation metrics equal scipy's and do not depend on the DDP split (also across
two real gloo processes), a Lightning fit logs them and checkpoints the EMA net, a NaN loss stops."""

from __future__ import annotations

import socket
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from pipeline.distort import LEVELS, distort, grid_params, quality_canvas, target_scores
from training.fit.lit_module import NonFiniteLossError, OptimConfig
from training.fit.lit_quality import (
    QualityModelConfig,
    QualityModule,
    ema_quality_net_from_checkpoint,
    gather_records,
    merge_shares,
    pairwise_rank_loss,
    quality_metrics,
)

SMALL = {"arch_options": {"width": 8, "depth": 3, "head_width": 16}}
FAMILIES = ("gaussian_blur", "jpeg")


@pytest.fixture(scope="module")
def real_samples(shared_data: Path) -> list[dict]:
    """96-px quality canvases of two product photos, pristine and 2 families x 5 levels, with targets."""
    samples = []
    for group, name in enumerate(["lt01.jpg", "mb01-blue-0.jpg"]):
        with Image.open(shared_data / "products" / "magento_luma" / name) as img:
            canvas = quality_canvas(np.asarray(img.convert("RGB")), 96)
        samples.append(
            {"pixels": canvas, "target": 5.0, "group": group, "family": "pristine", "key": f"{name}_p"}
        )
        for family in FAMILIES:
            levels = [distort(canvas, grid_params(name, family, lv, 1)) for lv in range(1, LEVELS + 1)]
            for level, (pixels, target) in enumerate(
                zip(levels, target_scores(canvas, levels), strict=True), 1
            ):
                samples.append({"pixels": pixels, "target": float(target), "group": group, "family": family,
                                "key": f"{name}_{family}_{level}"})  # fmt: skip
    return samples


def as_batch(samples: list[dict], crop: int | None = 48) -> dict:
    """A training batch of centre crops (all canvases of a group share one size), or one whole canvas."""
    if crop is None:
        images = np.stack([s["pixels"] for s in samples])
    else:
        height, width = samples[0]["pixels"].shape[:2]
        y, x = (height - crop) // 2, (width - crop) // 2
        images = np.stack([s["pixels"][y : y + crop, x : x + crop] for s in samples])
    return {
        "image": torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0,
        "target": torch.tensor([s["target"] for s in samples], dtype=torch.float32),
        "group": torch.tensor([s["group"] for s in samples], dtype=torch.int64),
        "key": [s["key"] for s in samples],
        "family": [s["family"] for s in samples],
    }


def test_rank_loss_is_zero_when_ordered_and_positive_when_reversed():
    targets = torch.tensor([5.0, 3.0, 1.0, 4.0, 2.0, 2.02])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    ordered, pairs = pairwise_rank_loss(targets.clone(), targets, groups, margin=0.1, min_gap=0.05)
    assert ordered.item() == 0 and pairs == 3 + 2  # no cross-group pair, 2.0 vs 2.02 is a tie
    assert pairwise_rank_loss(2 * targets, targets, groups, 0.1, 0.05)[0].item() == 0
    reversed_loss, _ = pairwise_rank_loss(-targets, targets, groups, 0.1, 0.05)
    # each pair costs min(margin, gap) + gap: group 0 gaps 2, 4, 2; group 1 gaps 2, 1.98
    assert reversed_loss.item() == pytest.approx((2.1 + 4.1 + 2.1 + 2.1 + 2.08) / 5, rel=1e-5)
    crossed = torch.tensor([0.0, 0.0, 0.0, 9.0, 9.0, 9.0])  # wrong only across groups: not a rank error
    assert pairwise_rank_loss(crossed + targets, targets, groups, 0.1, 0.05)[0].item() == 0
    assert pairwise_rank_loss(targets, targets, torch.arange(6), 0.1, 0.05) == (0, 0)


def test_a_few_real_steps_lower_the_loss(real_samples):
    torch.manual_seed(0)
    module = QualityModule(SMALL, OptimConfig(lr=3e-3, max_steps=30))
    optimizer = module.configure_optimizers()["optimizer"]
    batch = as_batch(real_samples)
    losses = []
    for _ in range(30):
        loss, parts = module.compute_loss(module.net(batch["image"]), batch["target"], batch["group"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        assert parts["rank"] >= 0 and parts["regression"] >= 0
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def toy_records() -> list[tuple]:
    rng = np.random.default_rng(3)
    targets = np.repeat([[5.0, 4.0, 2.5, 1.0, 0.5]], 4, axis=0).ravel()
    scores = targets + rng.normal(0, 1.2, targets.size)
    families = ["pristine", "blur", "blur", "jpeg", "jpeg"] * 4
    return [(f"k{i:02d}", float(s), float(t), i // 5, families[i]) for i, (s, t) in
            enumerate(zip(scores, targets, strict=True))]  # fmt: skip


def test_metrics_equal_scipy_and_a_hand_count():
    records = toy_records()
    scores, targets = np.array([r[1] for r in records]), np.array([r[2] for r in records])
    metrics = quality_metrics(records)
    assert metrics["srcc"] == pytest.approx(stats.spearmanr(scores, targets).statistic, abs=1e-12)
    assert metrics["plcc"] == pytest.approx(stats.pearsonr(scores, targets).statistic, abs=1e-12)
    assert metrics["krcc"] == pytest.approx(stats.kendalltau(scores, targets).statistic, abs=1e-12)
    right = total = 0
    for i in range(20):
        for j in range(i + 1, 20):
            if i // 5 == j // 5 and targets[i] != targets[j]:
                total += 1
                right += (scores[i] - scores[j]) * (targets[i] - targets[j]) > 0
    assert metrics["pair_acc"] == right / total and metrics["samples"] == 20
    blur = [r for r in records if r[4] == "blur"]
    blur_srcc = stats.spearmanr([r[1] for r in blur], [r[2] for r in blur]).statistic
    assert metrics["srcc/blur"] == pytest.approx(blur_srcc) and "srcc/pristine" not in metrics
    flat = [(k, 1.0, t, g, f) for k, _, t, g, f in records]
    assert quality_metrics(flat)["srcc"] == 0.0 and quality_metrics(flat)["pair_acc"] == 0.5


def test_metrics_do_not_depend_on_how_ranks_split_the_samples():
    records = toy_records()
    single = quality_metrics(merge_shares([records]))
    for world in (2, 3):
        shares = [records[::-1][rank::world] for rank in range(world)]
        assert quality_metrics(merge_shares(shares)) == single  # exactly, not approximately


def _gather_on_rank(rank: int, port: int, shares: list, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.save(gather_records(shares[rank]), f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_records_merges_two_real_processes(tmp_path):
    records = toy_records()
    shares = [records[0::2], records[1::2]]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torch.multiprocessing.start_processes(
        _gather_on_rank, args=(port, shares, str(tmp_path)), nprocs=2, start_method="fork"
    )
    for rank in (0, 1):
        assert torch.load(tmp_path / f"{rank}.pt") == merge_shares([records])


def test_a_lightning_fit_logs_the_metrics_and_checkpoints_the_ema_net(real_samples, tmp_path):
    torch.manual_seed(0)
    train = [as_batch(real_samples[i::2]) for i in range(2)]
    val = [as_batch([s], crop=None) for s in real_samples]
    module = QualityModule(SMALL, {"lr": 1e-3, "max_steps": 4, "warmup_steps": 1})
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=4, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         use_distributed_sampler=False)  # fmt: skip
    loader = torch.utils.data.DataLoader(train, batch_size=None)
    trainer.fit(module, loader, torch.utils.data.DataLoader(val, batch_size=None))
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/regression", "train/rank", "val/srcc", "val/plcc", "val/krcc"} <= set(
        metrics
    )
    assert metrics["val/samples"] == len(real_samples) and "val/srcc/jpeg" in metrics
    assert -1 <= metrics["val/srcc"] <= 1 and 0 <= metrics["val/pair_acc"] <= 1
    assert module.ema.updates == 4
    trainer.save_checkpoint(tmp_path / "q.ckpt")
    checkpoint = torch.load(tmp_path / "q.ckpt", weights_only=True)
    net = ema_quality_net_from_checkpoint(checkpoint)
    with torch.no_grad():
        assert torch.equal(net(val[0]["image"]), module.ema.module(val[0]["image"]))
    assert not net.training and QualityModelConfig.model_validate(checkpoint["hyper_parameters"]["model"])


def test_a_non_finite_loss_stops_before_the_step(real_samples):
    module = QualityModule(SMALL, OptimConfig(max_steps=2))
    batch = as_batch(real_samples[:4])
    batch["target"][1] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"sample keys: \['lt01.jpg_p'"):
        module.training_step(batch, 0)


def test_unknown_arch_and_options_are_refused_by_the_config():
    with pytest.raises(ValueError, match="known quality archs"):
        QualityModelConfig(arch="espcn")
    with pytest.raises(ValueError, match="no option"):
        QualityModelConfig(arch_options={"scale": 4})
    with pytest.raises(ValueError, match="loss"):
        QualityModelConfig(loss="huber")
