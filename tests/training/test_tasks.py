"""The task registry: the SR task declares every piece the shared stack needs, and names resolve lazily."""

from __future__ import annotations

import pytest
import torch

from training.tasks import get_task


def test_the_sr_task_wires_its_pieces_into_the_shared_stack():
    task = get_task("sr")
    assert task.name == "sr" and "pair_id" in task.sample_schema.names
    model = task.archs["espcn"](scale=4, residual=True)
    assert model(torch.rand(1, 3, 7, 9)).shape == (1, 3, 28, 36)
    assert task.model_code.is_file() and task.model_code.name == "serving_pyfunc.py"
    signature = task.signature()
    assert signature.inputs.inputs[0].shape == (-1, -1, 3) and signature.params.params[0].name == "output"
    assert task.input_example().shape == (37, 53, 3)
    assert task.policy().margin_db == 0.3  # the default thresholds (settings gates.sr override them)
    out = task.serve(model.eval(), (torch.rand(11, 13, 3) * 255).to(torch.uint8).numpy(), 4, device="cpu")
    assert out.shape == (44, 52, 3)


def test_an_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown task 'video_sr'; known tasks: sr"):
        get_task("video_sr")


def test_the_matte_task_declares_its_own_pieces():
    task = get_task("matte")
    assert task.name == "matte" and task.monitor == "val/iou" and "alpha_offset" in task.sample_schema.names
    assert task.registry_name(task.model_config()) == "crisp-matte"
    net = task.build_arch("matte_net", None, {"width": 8, "depth": 3, "max_width": 16})
    assert net(torch.rand(1, 3, 20, 30)).shape == (1, 1, 20, 30)
    with pytest.raises(ValueError, match="does not upscale"):
        task.build_arch("matte_net", 4, {})
    assert task.signature().outputs.inputs[0].shape == (-1, -1) and task.model_code.name == "serving_matte.py"
