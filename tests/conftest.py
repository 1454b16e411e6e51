"""Shared pytest fixtures: real data from ../shared/data, temp roots."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Airflow reads its configuration at import time: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="crisp-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "2")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CRISP_SHARED_DATA", REPO.parent / "shared" / "data"))
# DAG tests (tests/support/airflow.py) load the repository's own DAG files.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))


from tests.support.matte_composites import matte_root  # noqa: E402, F401 (a session fixture, used by name)
from tests.support.quality_grid import grid_root  # noqa: E402, F401 (a session fixture, used by name)
from tests.support.synthetic_clips import clips_root  # noqa: E402, F401 (a session fixture, used by name)


def pytest_sessionfinish(session, exitstatus):
    """The throwaway Airflow home goes with the session (it held the SQLite DB and the task logs)."""
    if os.environ.get("AIRFLOW_HOME") == str(_AIRFLOW_HOME):
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (real product photos and SR benchmark sets)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}; set CRISP_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def product_photos(shared_data: Path) -> Path:
    return shared_data / "products" / "magento_luma"


# -- object storage: the same cases on a local folder and on a real S3 endpoint (moto server) ----------


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's threaded server, random port)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_options(endpoint: str) -> dict:
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}


@pytest.fixture
def s3_storage(s3_endpoint, request):
    """A fresh bucket on the moto endpoint, as a Storage rooted at s3://<bucket>/crisp."""
    import uuid

    import boto3

    from pipeline.storage import Storage

    bucket = f"crisp-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return Storage(f"s3://{bucket}/crisp", s3_options(s3_endpoint))


@pytest.fixture
def local_storage(tmp_path):
    from pipeline.storage import Storage

    return Storage(f"file://{tmp_path}/root")


@pytest.fixture(params=["file", "s3"])
def storage(request):
    """Every storage test runs on a local folder and on the moto S3 endpoint."""
    return request.getfixturevalue("local_storage" if request.param == "file" else "s3_storage")
