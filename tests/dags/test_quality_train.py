"""quality_train: the same check -> train -> validate -> register -> promote DAG as sr_train (crisp/train_dag.py),
with the quality task's Params and config."""

from __future__ import annotations

from tests.support.airflow import SHARED_PARAMS, TRAINING_TASKS, load_dag_file, load_dagbag


def test_dag_shape_and_params():
    dag = load_dagbag().dags["quality_train"]
    assert [t.task_id for t in dag.topological_sort()] == TRAINING_TASKS
    assert set(dag.params) == SHARED_PARAMS
    assert dag.params["model_name"] == "crisp-quality"
    assert dag.catchup is False and dag.max_active_runs == 1 and "crisp train --task quality" in dag.doc_md


def test_params_become_the_quality_config(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    module = load_dag_file("quality_train")
    params = {"partitions": ["2026-11-20"], "max_steps": 700, "devices": 1, "overrides": ["data.crop=64"]}
    config = module.train_config(params, "manual_1")
    assert (config.task, config.data.partitions, config.trainer.max_steps, config.data.crop) == (
        "quality", ["2026-11-20"], 700, 64)  # fmt: skip
    assert config.output == f"file://{tmp_path}/root/runs/quality_train/manual_1"
    assert config.mlflow_experiment == "crisp-quality"
