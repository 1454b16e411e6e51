"""sr_train under dag.test(): tiny settings train a real model in a subprocess and leave a checkpoint;
bad Params fail before training starts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import torch

from pipeline.storage import Storage
from tests.support.airflow import TRAINING_TASKS, load_dagbag, run_dag
from tests.support.pairs_fixture import TINY_PARTITION, copy_root, tiny_pairs  # noqa: F401 (fixture)

TINY = ["optim.warmup_steps=0", "data.patch_size=16", "data.batch_size=4", "data.block_size=2", "data.workers=0",
        "trainer.val_check_interval=2", "trainer.enable_progress_bar=false"]  # fmt: skip
WHEN = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture
def root(tmp_path, tiny_pairs, monkeypatch):  # noqa: F811 (the fixture imported above)
    storage = Storage(f"file://{tmp_path}/root")
    copy_root(tiny_pairs, storage)
    monkeypatch.setenv("CRISP_ROOT", storage.root)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return storage


def test_dag_shape_and_params():
    dag = load_dagbag().dags["sr_train"]
    assert [t.task_id for t in dag.topological_sort()] == TRAINING_TASKS
    assert {
        "arch",
        "scale",
        "recipe",
        "partitions",
        "max_steps",
        "devices",
        "overrides",
        "model_name",
        "gates",
    } <= set(dag.params)
    assert dag.schedule is None or dag.timetable.summary == "None"
    assert dag.catchup is False and "python -m training.fit.train" in dag.doc_md


@pytest.fixture
def policy(monkeypatch, shared_data):
    """The deployment's gate policy (settings gates.sr.*): the tiny fixture has no test split, Set5
    (../shared/data) is the benchmark, and a model of a few steps may ring past the golden range (a gate
    tests/training/gates/test_validate.py covers): these tests gate on PSNR. Returns a setter for the margin."""
    monkeypatch.setenv("CRISP_GATES__SR__PAIR_SPLIT", "null")
    monkeypatch.setenv("CRISP_GATES__SR__GOLDEN_OUTPUT_RANGE", "[-1.0, 2.0]")
    monkeypatch.setenv("CRISP_GATES__SR__BENCHMARKS", f"{{Set5: {shared_data / 'sr_benchmarks' / 'Set5'}}}")
    return lambda margin: monkeypatch.setenv("CRISP_GATES__SR__MARGIN_DB", str(margin))


def _champion(root, name):
    from training.registry.versions import RegistryConfig, list_versions

    versions = list_versions(name, RegistryConfig(root=root.root))
    return [v.version for v in versions if "champion" in v.aliases], len(versions)


@pytest.mark.slow
def test_dag_test_trains_validates_registers_and_promotes(airflow_db, root, policy):
    policy(-100.0)  # a permissive deployment: two steps of training pass
    conf = {
        "arch": "espcn",
        "scale": 4,
        "recipe": "bicubic_x4",
        "partitions": [TINY_PARTITION],
        "max_steps": 2,
        "devices": 1,
        "overrides": TINY,
        "model_name": "dag-sr",
        "gates": {"margin_db": -50.0},
    }  # fmt: skip  (stricter than the policy: allowed)
    run = run_dag("sr_train", WHEN, conf=conf)
    assert run.get_task_instance("promote").xcom_pull(task_ids="promote") == 1
    assert _champion(root, "dag-sr") == ([1], 1)
    result = run.get_task_instance("train").xcom_pull(task_ids="train")
    assert result["global_step"] == 2 and "/runs/sr_train/" in result["last_ckpt_uri"]
    rel = result["last_ckpt_uri"][len(root.root) + 1 :]
    checkpoint = torch.load(root._path(rel), map_location="cpu", weights_only=True)
    assert checkpoint["crisp_meta"]["model"]["arch"] == "espcn"
    assert checkpoint["crisp_meta"]["pair_partitions"] == [TINY_PARTITION]
    # the same release flow as the demo: the version is logged into the training's MLflow run, with the report
    validated = run.get_task_instance("validate").xcom_pull(task_ids="validate")
    assert validated["report"].endswith("report.html") and "/runs/sr_train/" in validated["report"]
    assert validated["verdict"]["config"]["margin_db"] == -50.0  # the tightened threshold is recorded
    from mlflow import MlflowClient

    from training.registry.versions import RegistryConfig

    uri = RegistryConfig(root=root.root).resolved_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_model_version("dag-sr", "1").run_id == validated["run_id"]
    artifacts = {a.path for a in client.list_artifacts(validated["run_id"], "report")}
    assert "report/report.html" in artifacts


def test_looser_gates_than_the_policy_fail_before_training(airflow_db, root, policy, capfd):
    policy(0.3)
    dag = load_dagbag().dags["sr_train"]
    conf = {"partitions": [TINY_PARTITION], "max_steps": 2, "overrides": TINY, "gates": {"margin_db": -100.0}}
    run = dag.test(logical_date=WHEN, run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["check"] == "failed" and states["train"] == "upstream_failed"
    out, err = capfd.readouterr()
    assert "margin_db=-100.0 is looser than the policy's 0.3" in out + err
    assert not root.list("runs", recursive=True)


@pytest.mark.parametrize(
    "conf,message",
    [
        ({"arch": "espcnn"}, "unknown arch 'espcnn'"),
        ({"scale": 2}, "recipe 'bicubic_x4' makes x4 pairs but the model is x2"),
        ({"partitions": ["2030-01-01"]}, "pairs/bicubic_x4/2030-01-01 is not committed"),
    ],
)
def test_bad_params_fail_in_check_before_training(airflow_db, root, conf, message, capfd):
    dag = load_dagbag().dags["sr_train"]
    run = dag.test(logical_date=WHEN, run_conf={"max_steps": 2, "overrides": TINY, **conf})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states["check"] == "failed" and states["train"] == "upstream_failed"
    out, err = capfd.readouterr()  # dag.test() logs the task exception to the console
    assert message in out + err
    assert not root.list("runs", recursive=True)


def test_params_schema_rejects_an_unsupported_scale(airflow_db):
    dag = load_dagbag().dags["sr_train"]
    with pytest.raises(Exception, match="scale|enum|5"):
        dag.test(logical_date=WHEN, run_conf={"scale": 5})


@pytest.mark.slow
def test_failing_gate_fails_promote_and_leaves_champion(airflow_db, root, policy, capfd):
    """Two steps of training cannot beat bicubic by 0.3 dB: the run is registered, not promoted."""
    policy(0.3)
    dag = load_dagbag().dags["sr_train"]
    conf = {"partitions": [TINY_PARTITION], "max_steps": 2, "overrides": TINY, "model_name": "dag-sr-fail"}
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=WHEN, run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["validate"] == "success" and states["register"] == "success"
    assert states["promote"] == "failed" and str(run.state) == "failed"
    out, err = capfd.readouterr()
    assert "not promoted" in out + err and "bicubic_margin" in out + err
    assert _champion(root, "dag-sr-fail") == ([], 1)


@pytest.mark.slow
def test_on_kubernetes_the_train_task_runs_a_job_and_the_release_follows(
    airflow_db, root, policy, tmp_path, monkeypatch, caplog, capfd
):
    """launch.kind=kubernetes: `train` submits the Job of infra/k8s/train-job.yaml through the Airflow
    connection, the pod (torchrun -m crisp train, settings from the crisp-settings ConfigMap) trains, and
    validate -> register -> promote carry on from its result.json (tests/support/kube_api.py: the API
    server and kubelet, pods as local processes with the image's /app = this checkout)."""
    import json

    from tests.conftest import REPO
    from tests.support.kube_api import KubeAPI

    policy(-100.0)
    with KubeAPI(image_paths={"/app": REPO}) as api:
        settings = {"CRISP_ROOT": root.root, "OMP_NUM_THREADS": "1"}
        api.add(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "crisp-settings"},
                "data": settings,
            }
        )
        api.add({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "crisp-s3"}, "data": {}})
        connection = {"conn_type": "kubernetes", "extra": {"kube_config": api.kubeconfig()}}
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
        monkeypatch.setenv("CRISP_LAUNCH__KIND", "kubernetes")
        monkeypatch.setenv("CRISP_LAUNCH__KUBERNETES__CONFIG_MOUNT", str(tmp_path / "mount"))
        monkeypatch.setenv("CRISP_LAUNCH__KUBERNETES__POLL_S", "0.5")
        conf = {"partitions": [TINY_PARTITION], "max_steps": 2, "overrides": TINY, "model_name": "dag-sr-k8s"}
        run = run_dag("sr_train", WHEN, conf=conf)
        (job,) = api.jobs()
        (pod,) = api.pods.values()
    assert job["status"]["conditions"][0]["type"] == "Complete"
    assert pod.obj["spec"]["containers"][0]["command"] == ["torchrun"]
    assert run.get_task_instance("promote").xcom_pull(task_ids="promote") == 1
    assert _champion(root, "dag-sr-k8s") == ([1], 1)
    result = run.get_task_instance("train").xcom_pull(task_ids="train")
    assert result["global_step"] == 2 and result["last_ckpt_uri"].startswith(f"{root.root}/runs/sr_train/")
    assert '"global_step": 2' in bytes(pod.log).decode()  # crisp train's result, printed by rank 0
    # ... and followed into the task log, which Airflow writes to the console or, once an earlier test
    # configured logging, hands to the log records
    out, err = capfd.readouterr()
    streamed = [r.getMessage() for r in caplog.records if r.name == "crisp.train_dag"]
    streamed += [line for line in (out + err).splitlines() if "[crisp.train_dag]" in line]
    assert any('"global_step": 2' in line for line in streamed)
