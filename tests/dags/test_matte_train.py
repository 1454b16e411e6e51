"""matte_train: the same check -> train -> validate -> register -> promote DAG as sr_train (crisp/train_dag.py),
with the matte task's Params and config."""

from __future__ import annotations

import pytest

from tests.support.airflow import SHARED_PARAMS, TRAINING_TASKS, load_dag_file, load_dagbag


def test_dag_shape_and_params():
    dag = load_dagbag().dags["matte_train"]
    assert [t.task_id for t in dag.topological_sort()] == TRAINING_TASKS
    assert set(dag.params) == SHARED_PARAMS
    assert dag.params["model_name"] == "crisp-matte"
    assert dag.catchup is False and dag.max_active_runs == 1 and "crisp train --task matte" in dag.doc_md


def test_params_become_the_matte_config(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    module = load_dag_file("matte_train")
    params = {"partitions": ["2026-11-22"], "max_steps": 700, "devices": 1, "overrides": ["data.crop=128"]}
    config = module.train_config(params, "manual_1")
    assert (config.task, config.model.arch, config.data.partitions, config.trainer.max_steps, config.data.crop) == (
        "matte", "matte_net", ["2026-11-22"], 700, 128)  # fmt: skip
    assert config.output == f"file://{tmp_path}/root/runs/matte_train/manual_1"
    assert config.mlflow_experiment == "crisp-matte"


def test_a_trigger_may_only_tighten_the_matte_gates(monkeypatch):
    from crisp.train_dag import gate_policy
    from training.gates.policy import GatePolicyError

    monkeypatch.setenv("CRISP_GATES__MATTE__MIN_IOU", "0.93")
    assert gate_policy("matte", {"gates": {"min_iou": 0.96}}).min_iou == 0.96
    with pytest.raises(GatePolicyError, match="min_iou"):
        gate_policy("matte", {"gates": {"min_iou": 0.9}})
