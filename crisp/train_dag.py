"""The training-and-release DAG of any model kind: check -> train -> validate -> register -> promote.

In: a DAG id, the task name (training/tasks: `sr`, `quality`), its Params (each DAG file declares its own:
what a trigger may choose), `train_config(params, run_dir) -> TrainConfig` (how that DAG turns Params into
the settings < base YAML < Params < overrides merge of `crisp train`), optional report photos, schedule,
tags and doc_md. Out: the Airflow DAG (dags/sr_train.py and dags/quality_train.py are wiring only: Params,
docs and this call). Every Param set extends `shared_params` (partitions, max_steps, devices, overrides,
model_name, gates).

Tasks, each one step of training/registry/release.py (`crisp demo` and `crisp train --release` run the same steps
in one process): `check` (the `gates` Param may only tighten the settings' policy `gates.<task>.*`; the
config, its data (the task's data module `check`) and, for a local launch, the devices, before anything
starts) -> `train` (training/fit/launcher.py by the settings' `launch.kind`: `python -m training.fit.train` as a
subprocess in its own process group, or a Kubernetes Job; a retry resumes from `last.ckpt`)
-> `validate` (the MLflow run of the training, the task's validator under the policy, the report) ->
`register` (a new version as @challenger, a failing one too) -> `promote` (the registry moves @champion
only when the recorded verdict passes under the configured policy; else the task fails and @champion
stays). Heavy imports stay inside the tasks, so parsing the DAG files costs nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

log = logging.getLogger(__name__)


def run_dir(run_id: str) -> str:
    """A run id as a folder name under <root>/runs/<task>_train/."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def shared_params(task_name: str, model_name: str, max_steps: int, gates_example: str) -> dict[str, Param]:
    """The Params every training DAG has: which partitions, how long, on how many devices, free
    overrides, the registered name and stricter gates."""
    return {
        "partitions": Param(["all"], type="array", items={"type": "string"}, description='dates, or ["all"]'),
        "max_steps": Param(max_steps, type="integer", minimum=1, description="optimizer steps"),
        "devices": Param(1, type="integer", minimum=1, description="GPUs (or CPU processes) on the worker"),
        "overrides": Param([], type="array", items={"type": "string"}, description="section.key=value"),
        "model_name": Param(
            model_name, type="string", description="registered model name ('': the task's for the recipe)"
        ),
        "gates": Param(
            {},
            type="object",
            description=f"stricter thresholds than the settings' gates.{task_name}, e.g. {gates_example}",
        ),
    }


def shared_overrides(params: Mapping[str, Any]) -> list[str]:
    """The `crisp train --set` overrides of the shared Params (partitions, max_steps, devices, overrides)."""
    partitions = params.get("partitions") or ["all"]
    return [
        "data.partitions=all"
        if "all" in partitions
        else f"data.partitions=[{', '.join(map(str, partitions))}]",
        f"trainer.max_steps={int(params['max_steps'])}",
        f"trainer.devices={int(params['devices'])}",
        *params.get("overrides", []),
    ]


def yaml_train_config(path: Path) -> Callable[[Mapping[str, Any], str], Any]:
    """The `train_config` of a DAG whose Params are the shared ones: settings < the YAML at `path` <
    Params < overrides (the merge of `crisp train`); the function raises ValueError for a bad config."""

    def train_config(params: Mapping[str, Any], run_dir: str):
        from crisp.commands.train import train_config_from_settings

        return train_config_from_settings(path, shared_overrides(params), run_name=run_dir)

    return train_config


def report_photos() -> list:
    """Two product photos of the demo catalog (shipped in the package): the report's before/after crops."""
    from crisp.demo_catalog import photo_folder

    return [photo_folder() / "coffee.png", photo_folder() / "rocket.jpg"]


def gate_policy(task_name: str, params: Mapping[str, Any]):
    """The settings' policy (gates.<task>.*), tightened by the `gates` Param; GatePolicyError if looser."""
    from crisp.settings import load_settings
    from training.registry.release import tighten_gates

    return tighten_gates(getattr(load_settings().gates, task_name), params.get("gates"))


def release_target(config, params: Mapping[str, Any], photos: Callable[[], list] | None = None):
    """Where a run releases to (crisp/commands/train.py `release_target` on the worker's settings)."""
    from crisp.commands.train import release_target as target_of
    from crisp.settings import load_settings

    return target_of(load_settings(), config, params["model_name"], photos() if photos else ())


def train_dag(
    dag_id: str,
    task_name: str,
    params: Mapping[str, Any],
    train_config: Callable[[Mapping[str, Any], str], Any],
    *,
    doc_md: str,
    tags: list[str],
    schedule: str | None = None,
    photos: Callable[[], list] | None = None,
):
    """The DAG (see the module docstring); call it at a DAG file's top level."""

    def config_of(context) -> Any:
        return train_config(context["params"], run_dir(context["run_id"]))

    @dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "crisp", "retries": 1, "retry_delay": timedelta(minutes=10)},
        params=dict(params),
        tags=tags,
        doc_md=doc_md,
    )
    def training_dag():
        @task(retries=0)  # a bad request stays bad: fail at once, with the message
        def check() -> dict:
            from airflow.sdk import get_current_context

            from crisp.settings import load_settings
            from training.fit.train import resolve_hardware
            from training.tasks import get_task

            context = get_current_context()
            policy = gate_policy(task_name, context["params"])  # a looser trigger fails before training
            config = config_of(context)
            launch = load_settings().launch
            # a Job's devices are on its nodes, not on this worker: only a local run checks them here
            devices = (
                resolve_hardware(config.trainer).devices if launch.kind == "local" else config.trainer.devices
            )
            data = get_task(config.task).make_data(config.data, config.model)
            summary = data.check(devices * config.trainer.num_nodes)
            summary.update(output=config.output, arch=config.model.arch, devices=devices, launch=launch.kind)
            if getattr(config.model, "scale", None):
                summary["scale"] = config.model.scale
            summary["gates"] = policy.model_dump(mode="json", exclude={"benchmarks"})
            log.info("checked: %s", summary)
            return summary

        @task(execution_timeout=timedelta(hours=24))
        def train(summary: dict) -> dict:
            import json

            from airflow.sdk import get_current_context

            from crisp.settings import load_settings
            from pipeline.storage import Storage
            from training.fit.launcher import launch_training

            context = get_current_context()
            config = config_of(context)
            # a subprocess group or a Kubernetes Job: a killed or timed-out task takes it down too
            launch_training(
                config, load_settings().launch, context["run_id"], lambda line: log.info("%s", line)
            )
            result = json.loads(
                Storage(config.output, dict(config.output_storage_options)).read_bytes("result.json")
            )
            log.info("trained: %s", result)
            return result

        @task(retries=0)
        def validate(result: dict) -> dict:
            from airflow.sdk import get_current_context

            from training.registry.release import log_training, validate_candidate, write_release_report

            context = get_current_context()
            params = context["params"]
            config = config_of(context)
            target = release_target(config, params, photos)
            dumped = config.model_dump(mode="json")
            run_id = log_training(target, dumped, result, run_name=f"{dag_id} {context['run_id']}")
            checkpoint = result["best_ckpt_uri"] or result["last_ckpt_uri"]
            verdict = validate_candidate(checkpoint, target, gate_policy(task_name, params)).verdict
            report = write_release_report(target, verdict, dumped["output"], run_id)
            log.info("verdict: %s; report %s", verdict.summary(), report)
            return {"verdict": verdict.model_dump(mode="json"), "run_id": run_id, "report": report}

        @task(retries=0)
        def register(validated: dict) -> int:
            from airflow.sdk import get_current_context

            from training.gates.validate import Validation
            from training.gates.verdict import Verdict
            from training.registry.release import register_candidate

            context = get_current_context()
            target = release_target(config_of(context), context["params"], photos)
            verdict = Verdict.model_validate(validated["verdict"])
            # a failing verdict is registered too (as @challenger): the record of what was tried
            version = register_candidate(Validation(verdict, None, None), target, validated["run_id"])
            log.info("%s version %s is @challenger", target.model_name, version)
            return version

        @task(retries=0)
        def promote(version: int) -> int:
            from airflow.sdk import get_current_context
            from airflow.sdk.exceptions import AirflowFailException

            from training.registry.release import promote_candidate

            context = get_current_context()
            target = release_target(config_of(context), context["params"], photos)
            champion, refusal = promote_candidate(target, version)
            if refusal is not None:  # @champion stays where it was
                raise AirflowFailException(f"version {version} not promoted: {refusal}")
            return version

        promote(register(validate(train(check()))))

    return training_dag()
