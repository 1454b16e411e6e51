"""ChannelsLast: train() lays the net and its EMA out NHWC (or not, when off), the result equals an NCHW
run up to float rounding, and its checkpoint loads into an ordinary NCHW net."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from training.fit.checkpoint import load_checkpoint
from training.fit.lit_module import ema_arch_from_checkpoint
from training.fit.train import load_train_config, train

torch.set_num_threads(1)
RUN = ["data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.shuffle_window=2",
       "trainer.enable_progress_bar=false", "trainer.max_steps=4", "trainer.val_check_interval=4",
       "optim.warmup_steps=1"]  # fmt: skip


class Layouts(Callback):
    """Records, at the first training step, whether every 4-D weight of the net and of its EMA is NHWC."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 0:
            self.net = _nhwc(pl_module.net)
            self.ema = _nhwc(pl_module.ema.module)


def _nhwc(net: torch.nn.Module) -> set[bool]:
    return {p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4}


def _run(tiny_pairs, output: Path, channels_last: bool) -> tuple[Layouts, dict]:
    layouts = Layouts()
    config = load_train_config(
        None,
        [f"data.root={tiny_pairs.root}", f"output=file://{output}", *RUN,
         f"trainer.channels_last={str(channels_last).lower()}"],
    )  # fmt: skip
    train(config, callbacks=[layouts])
    return layouts, load_checkpoint(f"file://{output}/checkpoints/last.ckpt")


def test_channels_last_run_equals_the_nchw_run_and_exports_plain_weights(tiny_pairs, tmp_path):
    nhwc, nhwc_ckpt = _run(tiny_pairs, tmp_path / "nhwc", channels_last=True)
    nchw, nchw_ckpt = _run(tiny_pairs, tmp_path / "nchw", channels_last=False)
    assert nhwc.net == nhwc.ema == {True}  # the default config trains NHWC, the EMA copy too
    assert nchw.net == nchw.ema == {False}
    assert nhwc_ckpt["global_step"] == nchw_ckpt["global_step"] == 4
    for section in ("state_dict", "ema_state_dict"):
        assert nhwc_ckpt[section].keys() == nchw_ckpt[section].keys()
        for name, tensor in nhwc_ckpt[section].items():  # another summation order, the same training
            torch.testing.assert_close(tensor, nchw_ckpt[section][name], rtol=1e-4, atol=1e-5)
    net = ema_arch_from_checkpoint(nhwc_ckpt)  # a fresh NCHW net takes the NHWC checkpoint's values
    assert _nhwc(net) == {False}
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(lr), ema_arch_from_checkpoint(nchw_ckpt)(lr), rtol=1e-4, atol=1e-4)
