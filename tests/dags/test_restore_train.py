"""restore_train: the same check -> train -> validate -> register -> promote DAG as sr_train (crisp/train_dag.py),
with the restore task's Params and config."""

from __future__ import annotations

from tests.support.airflow import SHARED_PARAMS, TRAINING_TASKS, load_dag_file, load_dagbag


def test_dag_shape_and_params():
    dag = load_dagbag().dags["restore_train"]
    assert [t.task_id for t in dag.topological_sort()] == TRAINING_TASKS
    assert set(dag.params) == SHARED_PARAMS
    assert dag.params["model_name"] == ""  # the recipe's: crisp-restore-denoise, -dejpeg, ...
    assert dag.catchup is False and dag.max_active_runs == 1 and "crisp train --task restore" in dag.doc_md


def test_params_become_the_restore_config(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    module = load_dag_file("restore_train")
    params = {"partitions": ["2026-11-20"], "max_steps": 700, "devices": 1,
              "overrides": ["data.recipe=restore_x1_jpeg"]}  # fmt: skip
    config = module.train_config(params, "manual_1")
    assert (config.task, config.model.arch, config.model.scale, config.data.recipe) == (
        "restore", "ffdnet", 1, "restore_x1_jpeg")  # fmt: skip
    assert config.data.partitions == ["2026-11-20"] and config.trainer.max_steps == 700
    assert config.output == f"file://{tmp_path}/root/runs/restore_train/manual_1"
    assert config.mlflow_experiment == "crisp-restore"
    from crisp.train_dag import release_target

    assert release_target(config, {"model_name": ""}).model_name == "crisp-restore-dejpeg"
    assert release_target(config, {"model_name": "mine"}).model_name == "mine"


def test_a_trigger_may_only_tighten_the_restore_gates(monkeypatch):
    import pytest

    from crisp.train_dag import gate_policy
    from training.gates.policy import GatePolicyError

    monkeypatch.setenv("CRISP_GATES__RESTORE__MARGIN_DB", "1.5")
    assert gate_policy("restore", {"gates": {"margin_db": 2.0}}).margin_db == 2.0
    with pytest.raises(GatePolicyError, match="margin_db=1.0 is looser than the policy's 1.5"):
        gate_policy("restore", {"gates": {"margin_db": 1.0}})
