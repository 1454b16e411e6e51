"""GANModule: real steps on T91 crops update generator and critic in one optimizer step, the critic takes
no gradient from the generator's terms, per-network lr and clipping, the L1 twin as the starting point,
and clear errors for patches too small for MS-SSIM and for a twin of another arch."""

from __future__ import annotations

import copy
import math

import lightning.pytorch as pl
import numpy as np
import pydantic
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tests.support.checkpoints import trained_checkpoint, trained_espcn_state
from training.fit.lit_gan import GanModelConfig, GANModule
from training.fit.lit_module import OptimConfig

torch.set_num_threads(1)
SCALE, HR = 4, 48
TINY = {"discriminator": {"features": 4, "downs": 2}, "arch_options": {"residual": True}}


def _pairs(t91, count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    paths = sorted(t91.glob("*.png"))[:8]
    samples = []
    for i in range(count):
        img = Image.open(paths[i % len(paths)]).convert("RGB")
        left, top = int(rng.integers(0, img.width - HR)), int(rng.integers(0, img.height - HR))
        hr = img.crop((left, top, left + HR, top + HR))
        lr = hr.resize((HR // SCALE, HR // SCALE), Image.BICUBIC)
        tensor = [torch.tensor(np.asarray(im)).permute(2, 0, 1).float() / 255.0 for im in (lr, hr)]
        samples.append({"lr": tensor[0], "hr": tensor[1], "key": f"{paths[i % len(paths)].stem}-{i}"})
    return samples


@pytest.fixture(scope="module")
def pairs(shared_data):
    return _pairs(shared_data / "sr_train" / "T91", 16, seed=0)


def _module(**model) -> GANModule:
    torch.manual_seed(0)
    config = GanModelConfig(arch="espcn", scale=SCALE, **{**TINY, **model})
    return GANModule(config, OptimConfig(lr=1e-3))


def _batch(pairs, n: int = 4) -> dict:
    return {"lr": torch.stack([p["lr"] for p in pairs[:n]]), "hr": torch.stack([p["hr"] for p in pairs[:n]])}


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def test_the_critic_takes_gradients_only_from_its_own_loss(pairs):
    batch = _batch(pairs)
    module = _module()
    grads = []
    for weights in (
        {"adversarial_weight": 0.1, "feature_match_weight": 1.0},
        {"adversarial_weight": 5.0, "feature_match_weight": 0.0},
    ):
        twin = copy.deepcopy(module)  # the same weights and spectral-norm vectors for both runs
        twin.model_cfg = twin.model_cfg.model_copy(update=weights)
        twin.training_step(batch, 0).backward()
        grads.append((_grads(twin.disc), _grads(twin.net)))
    (disc_a, net_a), (disc_b, net_b) = grads
    assert disc_a.keys() == disc_b.keys() and len(disc_a) == len(list(module.disc.parameters()))
    for name in disc_a:
        torch.testing.assert_close(disc_a[name], disc_b[name], rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(net_a[n], net_b[n]) for n in net_a)  # the generator's terms did change


def test_real_steps_update_both_networks_with_their_own_lr(tmp_path, pairs):
    module = _module(d_lr_ratio=0.5)
    before_net = copy.deepcopy(module.net.state_dict())
    before_disc = {k: v.clone() for k, v in module.disc.state_dict().items()}
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=6, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, DataLoader(pairs, batch_size=4))
    assert trainer.global_step == 6 and module.ema.updates == 6  # one optimizer step per batch
    net_group, disc_group = trainer.optimizers[0].param_groups
    assert disc_group["initial_lr"] == pytest.approx(0.5 * net_group["initial_lr"])
    assert any(not torch.equal(before_net[k], v) for k, v in module.net.state_dict().items())
    assert any(not torch.equal(before_disc[k], v) for k, v in module.disc.state_dict().items())
    logged = trainer.callback_metrics
    for part in ("l1", "ms_ssim", "feature_match", "adversarial", "d_real", "d_fake"):
        assert math.isfinite(float(logged[f"train/{part}"])), part


def test_gradients_are_clipped_per_network(pairs):
    module = _module()
    optimizer = torch.optim.Adam(module.param_groups(), lr=1e-3)
    module.training_step(_batch(pairs), 0).backward()
    norms = [
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"]]))
        for g in optimizer.param_groups
    ]
    clip = float(min(norms)) / 2
    module.configure_gradient_clipping(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
    for group in optimizer.param_groups:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in group["params"]]))
        assert float(norm) == pytest.approx(clip, rel=1e-4)  # each at the limit, neither shrunk by the other


def test_the_generator_starts_from_the_l1_twins_ema_weights(shared_data, tmp_path):
    t91 = shared_data / "sr_train" / "T91"
    twin = trained_checkpoint(tmp_path / "twin.ckpt", t91)
    module = _module(init_from=str(twin))
    module.load_generator(str(twin))
    trained = trained_espcn_state(t91, SCALE)  # the EMA weights (the live ones are perturbed)
    for name, tensor in module.net.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    for name, tensor in module.ema.module.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_a_twin_of_another_arch_or_options_is_refused(shared_data, tmp_path):
    twin = trained_checkpoint(tmp_path / "twin.ckpt", shared_data / "sr_train" / "T91")
    with pytest.raises(ValueError, match="is a 'espcn' model; this generator is 'edsr_baseline'"):
        GANModule(GanModelConfig(arch="edsr_baseline", scale=SCALE), OptimConfig()).load_generator(str(twin))
    wider = _module(arch_options={"residual": True, "features": [16, 16]})
    with pytest.raises(ValueError, match="do not fit model.arch_options"):
        wider.load_generator(str(twin))


def test_patches_too_small_for_ms_ssim_and_unknown_critic_options_are_refused(pairs):
    small = {"lr": torch.rand(2, 3, 8, 8), "hr": torch.rand(2, 3, 32, 32)}
    with pytest.raises(ValueError, match="at least 44 px, got 32: raise data.patch_size"):
        _module().training_step(small, 0)
    assert math.isfinite(float(_module(ms_ssim_scales=2).training_step(small, 0)))
    with pytest.raises(pydantic.ValidationError, match="discriminator has no option"):
        GanModelConfig(arch="espcn", scale=SCALE, discriminator={"width": 8})
