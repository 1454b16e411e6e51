"""
### sr_train

Train a super-resolution model on committed pair partitions. The training runs as a subprocess,
`python -m training.train --config <resolved yaml>`, so the Airflow worker only waits (on Kubernetes,
replace that one task by a GPU pod running the same command; see `infra/`). Lightning DDP re-launches the
subprocess per extra device.

**Trigger**: manual, with Params: `arch` (espcn, edsr_baseline, safmn), `scale` (2, 3, 4), `recipe`
(e.g. bicubic_x4, realworld_x4), `partitions` (dates, or ["all"]), `max_steps`, `devices`, and free
`overrides` (`section.key=value`, as for `crisp train --set`). The base config is
`training/configs/<arch>_x<scale>.yaml` (else `<arch>_x4.yaml` with the scale overridden). Storage root and
S3 options come from the worker's Crisp settings (`CRISP_CONFIG` / `CRISP_ROOT`); the run writes to
`<root>/runs/sr_train/<run_id>/` (checkpoints/last.ckpt, best.ckpt, logs/, result.json).

**Schedule**: none by default. Set `CRISP_SR_TRAIN_SCHEDULE=@weekly` on the scheduler for a weekly retrain
with the default Params (every committed partition), `catchup=False`.

Tasks: `check` (before anything starts: arch and options, recipe/scale match, committed and large enough
data, devices this worker has; a failure names the problem) -> `train` (the subprocess; its XCom is the
TrainResult: best/last checkpoint URIs, final metrics, step). A retry resumes from the run's
`last.ckpt`, mid-epoch included. -> `validate` (safe load, golden forward pass, Set5/Set14 and the pair
test split against bicubic and the current `@champion`, latency, TorchScript export; the verdict is the
XCom) -> `register` (a new version of `model_name`, `@challenger`, with the verdict in its tags) ->
`promote` (moves `@champion` only on a passing verdict; a failing gate fails this task with the reasons and
leaves `@champion` untouched). Gate thresholds come from the `gates` Param (GateConfig fields).

Manual run: `airflow dags trigger sr_train --conf '{"arch": "espcn", "scale": 4, "partitions": ["2026-11-20"]}'`,
or without Airflow `crisp train --config training/configs/espcn_x4.yaml --set data.partitions=[2026-11-20]`.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = os.environ.get("CRISP_SR_TRAIN_SCHEDULE") or None


def train_config(params: dict[str, Any], run_id: str):
    """The TrainConfig a run trains with: base YAML < settings < Params < overrides. Raises ValueError."""
    from crisp.commands.train import with_s3_options
    from crisp.settings import load_settings
    from training.train import load_train_config

    settings = load_settings()
    arch, scale = params["arch"], int(params["scale"])
    configs = REPO / "training" / "configs"
    base = next(
        (p for p in (configs / f"{arch}_x{scale}.yaml", configs / f"{arch}_x4.yaml") if p.is_file()), None
    )
    partitions = params.get("partitions") or ["all"]
    overrides = [
        f"model.arch={arch}",
        f"model.scale={scale}",
        f"data.recipe={params['recipe']}",
        "data.partitions=all"
        if "all" in partitions
        else f"data.partitions=[{', '.join(map(str, partitions))}]",
        f"trainer.max_steps={int(params['max_steps'])}",
        f"trainer.devices={int(params['devices'])}",
        *params.get("overrides", []),
    ]
    run_dir = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    defaults = {
        "data": {"root": settings.root},
        "output": f"{settings.root.rstrip('/')}/runs/sr_train/{run_dir}",
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
    }
    return with_s3_options(load_train_config(base, overrides, defaults), settings)


def _registry():
    from crisp.settings import load_settings
    from training.registry import RegistryConfig

    settings = load_settings()
    return (
        settings,
        settings.storage(),
        RegistryConfig(root=settings.root, tracking_uri=settings.mlflow_tracking_uri),
    )


def gate_config(params: dict[str, Any], storage):
    """GateConfig for this run: Params `gates` over defaults that also score the recipe's pair test split."""
    from pipeline.commit import committed_partitions
    from training.validate import GateConfig

    partitions = params.get("partitions") or ["all"]
    if "all" in partitions:
        partitions = committed_partitions(storage, f"pairs/{params['recipe']}")
    gates = {"pair_recipe": params["recipe"], "pair_partitions": partitions, **(params.get("gates") or {})}
    return GateConfig.model_validate(gates)


@dag(
    dag_id="sr_train",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "crisp", "retries": 1, "retry_delay": timedelta(minutes=10)},
    params={
        "arch": Param("espcn", type="string", description="espcn | edsr_baseline | safmn"),
        "scale": Param(4, type="integer", enum=[2, 3, 4], description="upscaling factor"),
        "recipe": Param("bicubic_x4", type="string", description="pair recipe; its scale must equal `scale`"),
        "partitions": Param(["all"], type="array", items={"type": "string"}, description='dates, or ["all"]'),
        "max_steps": Param(20000, type="integer", minimum=1, description="optimizer steps"),
        "devices": Param(1, type="integer", minimum=1, description="GPUs (or CPU processes) on the worker"),
        "overrides": Param([], type="array", items={"type": "string"}, description="section.key=value"),
        "model_name": Param("crisp-sr", type="string", description="registered model name"),
        "gates": Param({}, type="object", description='GateConfig fields, e.g. {"margin_db": 0.3}'),
    },
    tags=["crisp", "training", "sr"],
    doc_md=__doc__,
)
def sr_train():
    @task(retries=0)  # a bad request stays bad: fail at once, with the message
    def check() -> dict:
        from airflow.sdk import get_current_context

        from training.data.module import SRDataModule
        from training.train import resolve_hardware

        context = get_current_context()
        config = train_config(context["params"], context["run_id"])
        hardware = resolve_hardware(config.trainer)
        summary = SRDataModule(config.data, config.model.scale).check(
            hardware.devices * config.trainer.num_nodes
        )
        summary.update(
            output=config.output, arch=config.model.arch, scale=config.model.scale, devices=hardware.devices
        )
        print(summary)
        return summary

    @task(execution_timeout=timedelta(hours=24))
    def train(summary: dict) -> dict:
        import json
        import subprocess
        import sys
        import tempfile

        import yaml
        from airflow.sdk import get_current_context

        from pipeline.storage import Storage

        context = get_current_context()
        config = train_config(context["params"], context["run_id"])
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // summary["devices"])))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with tempfile.TemporaryDirectory(prefix="crisp-sr-train-") as tmp:
            path = Path(tmp) / "train.yaml"  # may hold S3 keys: private to this task, deleted after
            path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
            path.chmod(0o600)
            command = [sys.executable, "-m", "training.train", "--config", str(path)]
            proc = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            tail: list[str] = []
            for line in proc.stdout:  # stream into the task log
                print(line, end="")
                tail = (tail + [line])[-40:]
            if proc.wait() != 0:
                raise RuntimeError(f"training exited with {proc.returncode}:\n{''.join(tail)}")
        result = json.loads(
            Storage(config.output, dict(config.output_storage_options)).read_bytes("result.json")
        )
        print(result)
        return result

    @task(retries=0)
    def validate(result: dict) -> dict:
        from airflow.sdk import get_current_context

        from training.validate import validate_checkpoint

        params = get_current_context()["params"]
        settings, storage, registry = _registry()
        checkpoint = result["best_ckpt_uri"] or result["last_ckpt_uri"]
        verdict = validate_checkpoint(
            checkpoint,
            gate_config(params, storage),
            champion=f"models:/{params['model_name']}@champion",
            storage=storage,
            registry=registry,
        )
        print(verdict.model_dump_json(indent=1))
        return {"checkpoint": checkpoint, "verdict": verdict.model_dump(mode="json")}

    @task(retries=0)
    def register(validated: dict) -> int:
        from airflow.sdk import get_current_context

        from training.registry import register as register_version
        from training.validate import Verdict

        params = get_current_context()["params"]
        _, storage, registry = _registry()
        verdict = Verdict.model_validate(validated["verdict"])
        # a failing verdict is registered too (as @challenger): the record of what was tried
        version = register_version(
            validated["checkpoint"], verdict, params["model_name"], config=registry,
            storage_options=storage.options or None,
        )  # fmt: skip
        print(f"{params['model_name']} version {version} is @challenger")
        return version

    @task(retries=0)
    def promote(version: int, validated: dict) -> int:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from training.registry import PromotionRefused
        from training.registry import promote as promote_version

        params = get_current_context()["params"]
        _, _, registry = _registry()
        try:
            promote_version(params["model_name"], version, registry)
        except PromotionRefused as exc:  # @champion stays where it was
            raise AirflowFailException(f"version {version} not promoted: {exc}") from exc
        print(f"{params['model_name']} version {version} is now @champion")
        return version

    validated = validate(train(check()))
    promote(register(validated), validated)


sr_train()
