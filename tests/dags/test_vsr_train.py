"""vsr_train: the same check -> train -> validate -> register -> promote DAG as sr_train (crisp/train_dag.py),
with the video-SR task's Params and config."""

from __future__ import annotations

import pytest

from tests.support.airflow import SHARED_PARAMS, TRAINING_TASKS, load_dag_file, load_dagbag


def test_dag_shape_and_params():
    dag = load_dagbag().dags["vsr_train"]
    assert [t.task_id for t in dag.topological_sort()] == TRAINING_TASKS
    assert set(dag.params) == SHARED_PARAMS
    assert dag.params["model_name"] == "crisp-vsr-x4"
    assert dag.catchup is False and dag.max_active_runs == 1 and "crisp train --task vsr" in dag.doc_md


def test_params_become_the_vsr_config(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    module = load_dag_file("vsr_train")
    params = {"partitions": ["2026-11-24"], "max_steps": 700, "devices": 1, "overrides": ["data.crop=16"]}
    config = module.train_config(params, "manual_1")
    assert (config.task, config.model.arch, config.data.partitions, config.trainer.max_steps, config.data.crop) == (
        "vsr", "frame_fusion", ["2026-11-24"], 700, 16)  # fmt: skip
    assert config.output == f"file://{tmp_path}/root/runs/vsr_train/manual_1"


def test_a_trigger_may_only_tighten_the_vsr_gates(monkeypatch):
    from crisp.train_dag import gate_policy
    from training.gates.policy import GatePolicyError

    monkeypatch.setenv("CRISP_GATES__VSR__MIN_GAIN_DB", "0.4")
    assert gate_policy("vsr", {"gates": {"min_gain_db": 0.6}}).min_gain_db == 0.6
    with pytest.raises(GatePolicyError, match="min_gain_db"):
        gate_policy("vsr", {"gates": {"min_gain_db": 0.2}})
