"""
### sr_pairs

Turn newly committed image partitions into super-resolution training pairs: for each recipe, degrade
every image with parameters seeded by (image_id, recipe, version, variant), cut aligned HR/LR tiles,
label them (PSNR-Y / SSIM-Y, severity, quality score) and commit `pairs/<recipe>/<date>` after the Great
Expectations gate passes. The work runs on Dask (`pipeline.pairs.job.build_pairs`): the scheduler at
`DASK_SCHEDULER_ADDRESS` / the settings' `dask_scheduler` where there is one, else a LocalCluster inside
the task.

**Schedule**: data-aware, on the Asset `crisp://images` that `product_images_ingest` emits; the
partitions are the `partition` values in the triggering asset events' `extra`. **Params**: `recipes`
(one mapped `build` task per recipe), `partitions` (dates; when set they replace the triggering events,
e.g. for a manual run), `variants`, `hr_tile`, `force`. Storage root and S3 options come from the Crisp
settings of the worker (`CRISP_CONFIG` / `CRISP_ROOT`).

Tasks (wiring only): `plan` (checks the recipes and that every partition is committed, before any work)
-> `build` (mapped over recipes) -> emits the Asset `crisp://pairs` with
`extra={"recipe", "partitions", "pairs", "content_digests"}`.

**Rerun**: a partition already committed with the same config and source is skipped without work
(`force` recomputes it; identical output is then a no-op commit). Manual run:
`airflow dags trigger sr_pairs --conf '{"partitions": ["2026-01-31"], "recipes": ["bicubic_x4"]}'`,
or without Airflow `crisp pairs --recipe bicubic_x4 --from 2026-01-31`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

IMAGES_ASSET = Asset("crisp://images")
PAIRS_ASSET = Asset("crisp://pairs")
HEAVY_POOL = "crisp_heavy"  # shared with product_images_ingest: one CPU-heavy Crisp task per slot
DEFAULT_RECIPES = ["bicubic_x4", "realworld_x4"]
PROGRESS_EVERY_S = 60.0  # cadence of the "pairs <recipe>: done/total, rate, ETA" task log line

log = logging.getLogger(__name__)  # Airflow writes it to the task log


def _pending(storage, recipes: list[str]) -> list[str]:
    """Committed image partitions that lack the pairs of some recipe. Asset events that arrive while a
    run is active can be folded into it without being among its triggering events (seen on Airflow
    3.3 under a backfill), so every run also takes up what earlier runs left behind."""
    from pipeline.commit import committed_partitions
    from pipeline.pairs.job import IMAGES

    return [
        partition
        for partition in committed_partitions(storage, IMAGES)
        if any(not storage.exists(f"pairs/{recipe}/{partition}/_manifest.json") for recipe in recipes)
    ]


def _event_partitions(context) -> list[str]:
    """`partition` values from the extra of the asset events that triggered this run."""
    found = []
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            partition = (event.extra or {}).get("partition")
            if partition:
                found.append(str(partition))
    return sorted(set(found))


@dag(
    dag_id="sr_pairs",
    schedule=[IMAGES_ASSET],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "crisp",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
    params={
        "recipes": Param(DEFAULT_RECIPES, type="array", items={"type": "string"}, description="recipe names"),
        "partitions": Param(
            [],
            type="array",
            items={"type": "string"},
            description="image partitions (dates); empty = from events",
        ),
        "variants": Param(1, type="integer", minimum=1, description="degraded variants per image"),
        "hr_tile": Param(480, type="integer", minimum=32, description="HR tile side in px"),
        "force": Param(False, type="boolean", description="recompute partitions already committed"),
    },
    tags=["crisp", "pairs", "dask"],
    doc_md=__doc__,
)
def sr_pairs():
    @task
    def plan() -> list[dict]:
        from airflow.sdk import get_current_context

        from crisp.settings import load_settings
        from pipeline.commit import read_manifest
        from pipeline.pairs.config import PairsConfig
        from pipeline.pairs.job import IMAGES

        context = get_current_context()
        params = context["params"]
        storage = load_settings().storage()
        partitions = sorted(set(params.get("partitions") or [])) or sorted(
            set(_event_partitions(context)) | set(_pending(storage, params["recipes"]))
        )
        if not partitions:
            raise ValueError(
                "no partitions: set the `partitions` Param or trigger from a crisp://images event"
            )
        # fail here, before any work, on a bad recipe / parameter or a partition that is not committed
        PairsConfig(recipes=params["recipes"], variants=params["variants"], hr_tile=params["hr_tile"])
        for partition in partitions:
            read_manifest(storage, IMAGES, partition)
        return [{"recipe": recipe, "partitions": partitions} for recipe in params["recipes"]]

    # one recipe at a time: each build may start a LocalCluster that already uses every core
    @task(outlets=[PAIRS_ASSET], max_active_tis_per_dagrun=1, pool=HEAVY_POOL)
    def build(job: dict) -> dict:
        from airflow.sdk import get_current_context

        from crisp.settings import load_settings
        from pipeline.pairs.config import PairsConfig
        from pipeline.pairs.job import build_pairs
        from pipeline.progress import log_progress

        context = get_current_context()
        params = context["params"]
        settings = load_settings()
        config = PairsConfig(
            recipes=[job["recipe"]],
            variants=params["variants"],
            hr_tile=params["hr_tile"],
            scheduler_address=settings.dask_scheduler,
        )
        summary = build_pairs(
            settings.storage(),
            job["recipe"],
            job["partitions"],
            config,
            progress=log_progress(f"pairs {job['recipe']}", log, PROGRESS_EVERY_S, unit="shard"),
            force=params["force"],
        )
        result = {
            "recipe": summary.recipe,
            "partitions": [p.partition for p in summary.partitions],
            "pairs": summary.pairs,
            "skipped": summary.skipped,
            "reused": [p.partition for p in summary.partitions if p.reused],
            "content_digests": {p.partition: p.manifest.content_digest for p in summary.partitions},
            "pairs_per_s": round(summary.pairs_per_second, 2),
            "bytes_per_pair": round(summary.bytes_per_pair),
        }
        context["outlet_events"][PAIRS_ASSET].extra = {
            k: result[k] for k in ("recipe", "partitions", "pairs", "content_digests")
        }
        log.info("pairs summary: %s", result)
        return result

    build.expand(job=plan())


sr_pairs()
