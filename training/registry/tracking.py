"""Record a finished training as one MLflow run: the run every registered version of it links to.

In: a `RegistryConfig` (which MLflow store and experiment), the resolved training config (a plain dict),
the `TrainResult` as a dict, the bytes of the run's `metrics.csv` (Lightning's CSVLogger), the data
lineage (recipe, partitions, manifest hash) and a run name. Out: the MLflow run id. The run holds every
resolved config key as a param (dotted names; storage credentials masked), the curves (every logged
step of every metric), the final metrics, `result.json`, the metrics CSV, and a dataset input for the
pair partitions whose digest is the data manifest hash (cut to MLflow's 36-character digest limit; the
whole hash is in the dataset's source and profile and the run's `crisp.data_manifest_hash` tag).

training/registry/release.py logs the report and the model (registry.register with `run_id`) into the same run.
Post-hoc on purpose: the trainer may run as a subprocess, a DDP group or a Kubernetes pod, and only the
release flow knows the registry; the curves keep their steps and timestamps are the logging time.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_PARAM_LIMIT = 6000  # MLflow's param value limit
_DIGEST_LIMIT = 36  # MLflow's dataset digest limit (MAX_DATASET_DIGEST_SIZE)
_SECRET_KEYS = ("storage_options", "output_storage_options", "secret", "password", "token", "key")


def flat_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"section.key": "value"}; credentials (storage options, keys) masked."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if any(key == secret or key.endswith(f"_{secret}") for secret in _SECRET_KEYS) and value:
            out[name] = "***"
        elif isinstance(value, Mapping) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_PARAM_LIMIT]
    return out


def metric_rows(metrics_csv: bytes) -> Iterator[tuple[str, float, int]]:
    """(metric, value, step) for every finite cell of a Lightning CSVLogger file."""
    for row in csv.DictReader(io.StringIO(metrics_csv.decode())):
        step = int(float(row.get("step") or 0))
        for key, raw in row.items():
            if key in ("step", "epoch") or raw in (None, ""):
                continue
            value = float(raw)
            if math.isfinite(value):
                yield key, value, step


def dataset_input(recipe: str, partitions: list[str], manifest_hash: str, root: str) -> Any:
    """The pair partitions as an MLflow dataset input (context: training)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = {
        "uri": f"{root.rstrip('/')}/pairs/{recipe}",
        "partitions": partitions,
        "manifest_hash": manifest_hash,
    }
    dataset = Dataset(
        name=f"pairs/{recipe}",
        digest=manifest_hash[:_DIGEST_LIMIT],
        source_type="crisp_pairs",
        source=json.dumps(source),
        profile=json.dumps({"partitions": len(partitions), "manifest_hash": manifest_hash}),
    )
    return DatasetInput(dataset=dataset, tags=[InputTag(key="mlflow.data.context", value="training")])


def log_training_run(
    registry: Any,
    train_config: Mapping[str, Any],
    result: Mapping[str, Any],
    metrics_csv: bytes | None,
    lineage: Mapping[str, Any],
    run_name: str,
) -> str:
    """One MLflow run for a finished training (see the module docstring); returns its run id."""
    from mlflow.entities import Metric, Param, RunTag

    from training.registry.versions import experiment_id, mlflow_client

    client = mlflow_client(registry)
    run = client.create_run(experiment_id(client, registry), run_name=run_name)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = [Param(k, v) for k, v in sorted(flat_params(train_config).items())]
    tags = [
        RunTag("crisp.kind", "training"),
        RunTag("crisp.data_manifest_hash", str(lineage.get("manifest_hash"))),
    ]
    curves = [Metric(k, v, now, s) for k, v, s in metric_rows(metrics_csv)] if metrics_csv else []
    final = [
        Metric(f"final.{k}", float(v), now, int(result.get("global_step", 0)))
        for k, v in result.get("metrics", {}).items()
    ]
    for start in range(0, max(len(params), 1), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[start : start + 100], tags=tags if start == 0 else [])
    metrics = curves + [m for m in final if math.isfinite(m.value)]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    if lineage.get("manifest_hash"):
        client.log_inputs(
            run_id,
            datasets=[
                dataset_input(
                    lineage["recipe"], list(lineage["partitions"]), lineage["manifest_hash"], lineage["root"]
                )
            ],
        )
    with tempfile.TemporaryDirectory(prefix="crisp-tracking-") as tmp:
        (Path(tmp) / "result.json").write_text(json.dumps(dict(result), indent=1, default=str))
        if metrics_csv:
            (Path(tmp) / "metrics.csv").write_bytes(metrics_csv)
        client.log_artifacts(run_id, tmp, "training")
    logger.info(
        "training run %s logged to MLflow (%d params, %d metric points)", run_id, len(params), len(metrics)
    )
    return run_id
