"""
### product_images_ingest

Every day, turn that day's catalog feed into the committed `images/<date>` partition: fetch every image
URL (polite, SSRF-guarded crawler), clean, dedup (within the day and against every earlier day) and
quality-score the images, split them by product, write WebDataset shards + Parquet index + reject and
duplicate ledgers, and commit after the Great Expectations gate passes.

**Partition** = the run's logical date (`ds`). **Feed** = a template filled with that date: the run's
`feed_template` param, else the Airflow Variable `crisp_feed_template`, else the environment variable
`CRISP_FEED_TEMPLATE`, else `file:///feeds/{date}.csv`. Placeholders: `{date}` (2026-01-31) and
`{ds_nodash}` (20260131). Storage root and ingest settings come from the Crisp settings
(`CRISP_CONFIG` / `CRISP_ROOT` / `CRISP_INGEST__...`) of the worker; the learned quality model
(`ingest.quality_model`: by default `crisp-quality@champion` of the settings' MLflow store when one is
registered) scores each image, and `ingest.min_quality` rejects the low scorers as `low_quality`.

Tasks (wiring only; the work runs in `pipeline.ingest`, fetching and cleaning on Dask: the scheduler at
`CRISP_DASK_SCHEDULER` / `DASK_SCHEDULER_ADDRESS`, else a LocalCluster inside the `ingest` task):
`check_feed` (the feed exists and has product_id / image_url columns) -> `ingest` -> `publish`
(emits the Asset `crisp://images` with `extra={"partition": ...}`, which triggers pair generation).

**Rerun** a date: clear its run; an unchanged feed leaves the same manifest (a no-op). **Retry only
failed URLs**: trigger with `{"retry_failed": true}` for that logical date (or
`crisp ingest --retry-failed --date D --feed URI`). A rerun that would keep under `ingest.min_kept_share`
of the committed day's images fails and keeps the day; trigger with `{"replace": true}` to replace it.

**Backfill** a date range (after a feed fix or a cleaning-rule change):

    airflow backfill create --dag-id product_images_ingest --from-date 2026-01-01 --to-date 2026-01-31 \
        --max-active-runs 1 --reprocess-behavior failed

(the scheduler and api-server must be running: `make stack`; Airflow asks for a reprocess behavior
because of `depends_on_past`: `failed` reruns failed dates, `completed` every date). Dates run one at a time, oldest first (`max_active_runs=1` here too; never
`--run-backwards`): a day is deduplicated against the committed days before it, so `ingest` has
`depends_on_past` - a failed day holds the later ones until it is fixed and cleared, and the daily run
waits for a backfill of the days before it. `ingest` and the pairs builds share the `crisp_heavy` pool
(one slot per host's worth of CPU), so they never overlap on one host. Without
a scheduler, the same backfill is `crisp ingest --date D --feed URI` for each date in order.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

IMAGES_ASSET = Asset("crisp://images")
HEAVY_POOL = "crisp_heavy"  # created by `make stack` (scripts/stack.py); also used by sr_pairs
DEFAULT_FEED_TEMPLATE = "file:///feeds/{date}.csv"
PROGRESS_EVERY_S = 60.0  # cadence of the "ingest <date>: done/total, rate, ETA" task log line

log = logging.getLogger(__name__)  # Airflow writes it to the task log


def _partition(context) -> str:
    """The run's logical date; manual runs without one use the day they were triggered for."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.date().isoformat()


def _on_cluster(settings):
    """The ingest settings, on the settings' Dask scheduler (`CRISP_DASK_SCHEDULER`) unless they name one."""
    if settings.ingest.scheduler_address or not settings.dask_scheduler:
        return settings.ingest
    return settings.ingest.model_copy(update={"scheduler_address": settings.dask_scheduler})


def _feed_uri(template: str, partition: str) -> str:
    try:
        return template.format(date=partition, ds_nodash=partition.replace("-", ""))
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"feed template {template!r} is not valid: use {{date}} or {{ds_nodash}} ({exc})"
        ) from None


@dag(
    dag_id="product_images_ingest",
    schedule="@daily",
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
        "feed_template": Param(
            os.environ.get("CRISP_FEED_TEMPLATE", ""),
            type="string",
            description="feed URI template, e.g. s3://feeds/{date}.csv; empty = Variable crisp_feed_template",
        ),
        "retry_failed": Param(False, type="boolean", description="re-fetch only the retryable rejects"),
        "replace": Param(
            False, type="boolean", description="replace the committed day even if it keeps few of its images"
        ),
    },
    tags=["crisp", "ingest", "images"],
    doc_md=__doc__,
)
def product_images_ingest():
    @task
    def check_feed() -> str:
        from airflow.sdk import Variable, get_current_context

        from crisp.settings import load_settings
        from pipeline.ingest.feed import read_feed

        context = get_current_context()
        partition = _partition(context)
        template = context["params"].get("feed_template") or Variable.get(
            "crisp_feed_template", default=os.environ.get("CRISP_FEED_TEMPLATE") or DEFAULT_FEED_TEMPLATE
        )
        feed_uri = _feed_uri(template, partition)
        settings = load_settings()
        storage = settings.storage()
        options = storage.options if feed_uri.startswith(f"{storage.scheme}://") else None
        feed = read_feed(feed_uri, options, settings.ingest.feed)  # FeedError names the feed: retry waits
        log.info("feed %s: %d rows to fetch, %d malformed rows", feed_uri, len(feed.rows), len(feed.rejects))
        return feed_uri

    # depends_on_past: a day runs only once the day before it committed (a failed day stops the later
    # days of a backfill, and the daily run waits for a backfill of the days before it); the pool keeps
    # one CPU-heavy Crisp task (ingest or a pairs build) per slot.
    @task(depends_on_past=True, pool=HEAVY_POOL)
    def ingest(feed_uri: str) -> dict:
        from airflow.sdk import get_current_context

        from crisp.settings import load_settings
        from pipeline.ingest.run import ingest_partition
        from pipeline.progress import log_progress

        context = get_current_context()
        settings = load_settings()
        partition = _partition(context)
        summary = ingest_partition(
            feed_uri,
            partition,
            settings.storage(),
            _on_cluster(settings),
            retry_failed=bool(context["params"].get("retry_failed")),
            replace=bool(context["params"].get("replace")),
            progress=log_progress(f"ingest {partition}", log, PROGRESS_EVERY_S, unit="url"),
            run_id=f"airflow:{context['dag'].dag_id}:{context['run_id']}",
            tracking_uri=settings.mlflow_tracking_uri,  # where ingest.quality_model finds the champion
        )
        log.info("ingest summary: %s", summary.to_dict())
        return summary.to_dict()

    @task(outlets=[IMAGES_ASSET])
    def publish(summary: dict) -> dict:
        from airflow.sdk import get_current_context

        context = get_current_context()
        context["outlet_events"][IMAGES_ASSET].extra = {
            "partition": summary["partition"],
            "content_digest": summary["content_digest"],
            "accepted": summary["accepted"],
            "accepted_videos": summary["accepted_videos"],
        }
        return summary

    publish(ingest(check_feed()))


product_images_ingest()
