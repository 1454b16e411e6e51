"""sr_gan_train: the same check -> train -> validate -> register -> promote DAG as sr_train (crisp/train_dag.py),
with the GAN task's config, its L1 twin as a Param, and the gates.sr_gan policy."""

from __future__ import annotations

import pytest

from tests.support.airflow import SHARED_PARAMS, TRAINING_TASKS, load_dag_file, load_dagbag


def test_dag_shape_and_params():
    dag = load_dagbag().dags["sr_gan_train"]
    assert [t.task_id for t in dag.topological_sort()] == TRAINING_TASKS
    assert set(dag.params) == {"init_from", *SHARED_PARAMS}
    assert dag.params["model_name"] == "crisp-sr-x4-real"
    assert dag.catchup is False and dag.max_active_runs == 1 and "crisp train --task sr_gan" in dag.doc_md


def test_params_become_the_gan_config_with_its_twin(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    module = load_dag_file("sr_gan_train")
    twin = f"file://{tmp_path}/root/runs/sr_train/a/checkpoints/best.ckpt"
    params = {"init_from": twin, "partitions": ["2026-11-20"], "max_steps": 700, "devices": 1,
              "overrides": ["model.adversarial_weight=0.05"]}  # fmt: skip
    config = module.train_config(params, "manual_1")
    assert (config.task, config.model.arch, config.model.scale, config.data.recipe) == (
        "sr_gan", "espcn", 4, "realworld_x4")  # fmt: skip
    assert config.model.init_from == twin and config.model.adversarial_weight == 0.05
    assert config.data.partitions == ["2026-11-20"] and config.trainer.max_steps == 700
    assert config.output == f"file://{tmp_path}/root/runs/sr_gan_train/manual_1"
    assert config.mlflow_experiment == "crisp-sr_gan"
    assert module.train_config({**params, "init_from": ""}, "manual_2").model.init_from is None


def test_a_trigger_may_only_tighten_the_gan_gates(monkeypatch):
    from crisp.train_dag import gate_policy
    from training.gates.policy import GatePolicyError

    monkeypatch.setenv("CRISP_GATES__SR_GAN__MARGIN_DB", "0.1")
    assert gate_policy("sr_gan", {"gates": {"margin_db": 0.2}}).margin_db == 0.2
    with pytest.raises(GatePolicyError, match="margin_db=0.0 is looser than the policy's 0.1"):
        gate_policy("sr_gan", {"gates": {"margin_db": 0.0}})
