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

Tasks (the release flow of training/release.py, one step per task; `crisp demo` and
`crisp train --release` run the same steps in one process): `check` (before anything starts: the `gates`
Param may only tighten the settings' policy `gates.sr.*` (a looser value fails here, naming it); arch and
options, recipe/scale match, committed and large enough data, devices this worker has) -> `train` (the
subprocess; its XCom is the TrainResult; a retry resumes from the run's `last.ckpt`, mid-epoch included)
-> `validate` (logs the training as an MLflow run: resolved config as params, curves, the pair partitions
as a dataset input; then safe load, golden pass, the policy's benchmark sets and the pair test split
against bicubic and the current `@champion`, latency, export parity; the HTML report goes to the run's
output and the MLflow run) -> `register` (a new version of `model_name` logged into the training run,
`@challenger`) -> `promote` (the registry moves `@champion` only when the recorded verdict passes under the
configured policy; else this task fails with the reasons and `@champion` stays).

Manual run: `airflow dags trigger sr_train --conf '{"arch": "espcn", "scale": 4, "partitions": ["2026-11-20"]}'`,
or without Airflow `crisp train --config training/configs/espcn_x4.yaml --set data.partitions=[2026-11-20]`.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = os.environ.get("CRISP_SR_TRAIN_SCHEDULE") or None


def train_config(params: dict[str, Any], run_id: str):
    """The TrainConfig a run trains with: settings < base YAML < Params < overrides (the same merge as
    `crisp train` and `python -m training.train`). Raises ValueError."""
    from crisp.commands.train import train_config_from_settings

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
    return train_config_from_settings(base, overrides, run_name=run_dir)


def release_target(params: dict[str, Any]):
    """Where this run releases to: the model name, storage, registry (with the settings' gate policy)."""
    from crisp.demo_catalog import photo_folder
    from crisp.settings import load_settings
    from pipeline.commit import committed_partitions
    from training.release import ReleaseTarget

    settings = load_settings()
    storage = settings.storage()
    partitions = params.get("partitions") or ["all"]
    if "all" in partitions:
        partitions = committed_partitions(storage, f"pairs/{params['recipe']}")
    return ReleaseTarget(
        model_name=params["model_name"],
        storage=storage,
        registry=settings.registry(),
        recipe=params["recipe"],
        partitions=partitions,
        photos=[photo_folder() / "coffee.png", photo_folder() / "rocket.jpg"],
    )


def gate_policy(params: dict[str, Any]):
    """The settings' policy (gates.sr.*), tightened by the `gates` Param; GatePolicyError if looser."""
    from crisp.settings import load_settings
    from training.release import tighten_gates

    return tighten_gates(load_settings().gates.sr, params.get("gates"))


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
        "gates": Param(
            {},
            type="object",
            description='stricter thresholds than the settings\' gates.sr, e.g. {"margin_db": 0.5}',
        ),
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
        policy = gate_policy(context["params"])  # a looser trigger fails here, before any training
        config = train_config(context["params"], context["run_id"])
        hardware = resolve_hardware(config.trainer)
        summary = SRDataModule(config.data, config.model.scale).check(
            hardware.devices * config.trainer.num_nodes
        )
        summary.update(
            output=config.output, arch=config.model.arch, scale=config.model.scale, devices=hardware.devices
        )
        summary["gates"] = policy.model_dump(mode="json", exclude={"benchmarks"})
        log.info("checked: %s", summary)
        return summary

    @task(execution_timeout=timedelta(hours=24))
    def train(summary: dict) -> dict:
        import json
        import sys
        import tempfile

        import yaml
        from airflow.sdk import get_current_context

        from pipeline.storage import Storage
        from training.launch import run_training

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
            # its own process group: a killed or timed-out task takes every DDP rank down with it
            run_training(command, env, REPO, on_line=lambda line: log.info("%s", line))
        result = json.loads(
            Storage(config.output, dict(config.output_storage_options)).read_bytes("result.json")
        )
        log.info("trained: %s", result)
        return result

    @task(retries=0)
    def validate(result: dict) -> dict:
        from airflow.sdk import get_current_context

        from training.release import log_training, validate_candidate, write_release_report

        context = get_current_context()
        params = context["params"]
        target = release_target(params)
        config = train_config(params, context["run_id"]).model_dump(mode="json")
        run_id = log_training(target, config, result, run_name=f"sr_train {context['run_id']}")
        checkpoint = result["best_ckpt_uri"] or result["last_ckpt_uri"]
        verdict = validate_candidate(checkpoint, target, gate_policy(params)).verdict
        report = write_release_report(target, verdict, config["output"], run_id)
        log.info("verdict: %s; report %s", verdict.summary(), report)
        return {"verdict": verdict.model_dump(mode="json"), "run_id": run_id, "report": report}

    @task(retries=0)
    def register(validated: dict) -> int:
        from airflow.sdk import get_current_context

        from training.release import register_candidate
        from training.validate import Validation
        from training.verdict import Verdict

        target = release_target(get_current_context()["params"])
        verdict = Verdict.model_validate(validated["verdict"])
        # a failing verdict is registered too (as @challenger): the record of what was tried
        version = register_candidate(Validation(verdict, None, None), target, validated["run_id"])
        log.info("%s version %s is @challenger", target.model_name, version)
        return version

    @task(retries=0)
    def promote(version: int) -> int:
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from training.release import promote_candidate

        target = release_target(get_current_context()["params"])
        champion, refusal = promote_candidate(target, version)
        if refusal is not None:  # @champion stays where it was
            raise AirflowFailException(f"version {version} not promoted: {refusal}")
        return version

    promote(register(validate(train(check()))))


sr_train()
