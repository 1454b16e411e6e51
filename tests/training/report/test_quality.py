"""The quality report on the session's real grid (tests/support/quality_grid.py) and real product photos:
its numbers are recomputed here independently (the data side's scorer, scipy, pipeline/clean/quality.py)."""

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import stats

from pipeline.clean.normalize import decode_rgb
from pipeline.clean.quality import measure
from pipeline.commit import read_manifest
from pipeline.ingest.read import read_image, read_table
from pipeline.quality.scorer import QualityScorer
from pipeline.storage import Storage
from tests.support.checkpoints import write_checkpoint
from tests.support.image_partitions import write_image_partition
from tests.support.quality_grid import FAMILIES, PARTITION
from training.archs.quality_net import QualityNet
from training.data.quality import MemberReader, load_quality_catalog
from training.gates.quality_gates import QualityGatePolicy
from training.gates.quality_validate import validate_quality
from training.gates.validate import Champion
from training.gates.verdict import ChampionRef, CheckpointMeta, GateConfig, Verdict
from training.report.quality import QualityReportConfig, write_quality_report

LOOSE = QualityGatePolicy(min_srcc=-1.0, min_family_srcc=-1.0, min_pair_accuracy=0.0, latency_budget_ms=5_000)
PRODUCTS = "2026-11-22"  # an images partition of products with several photos each
ARCH_KWARGS = {"width": 8, "depth": 3, "head_width": 16}


@pytest.fixture(scope="module")
def root(grid_root, shared_data, tmp_path_factory):
    """A copy of the session grid's root plus images/2026-11-22: three SKUs of the Luma catalogue with all
    their photos (product_id = SKU) and, for MH01, a blurred copy of one photo as a fourth."""
    folder = tmp_path_factory.mktemp("quality-report") / "root"
    shutil.copytree(grid_root.root.removeprefix("file://"), folder)
    storage = Storage(f"file://{folder}")
    photos_dir = shared_data / "products" / "magento_luma"
    with open(photos_dir / "catalog.csv") as handle:
        by_sku = {}
        for row in csv.DictReader(handle):
            by_sku.setdefault(row["sku"], []).append(row["file"])
    staged = folder.parent / "photos"
    photos = []
    for sku in ("MH01", "MH02", "MH03"):
        for number, name in enumerate(sorted(by_sku[sku])):
            target = staged / f"{sku}-{number}" / f"{sku}.jpg"  # the fixture writer's product_id is the stem
            target.parent.mkdir(parents=True)
            shutil.copyfile(photos_dir / name, target)
            photos.append(target)
    blurred = staged / "MH01-blurred" / "MH01.jpg"
    blurred.parent.mkdir()
    Image.open(photos[0]).convert("RGB").filter(ImageFilter.GaussianBlur(4)).save(blurred, quality=60)
    write_image_partition(storage, PRODUCTS, [*photos, blurred], max_side=256)
    return storage


@pytest.fixture(scope="module")
def validation(root, tmp_path_factory):
    """The verdict of a seeded random-init QualityNet checkpoint, validated on the grid (loose gates)
    against another seeded QualityNet as the champion."""
    import torch

    torch.manual_seed(0)
    state = QualityNet(**ARCH_KWARGS).state_dict()
    meta = {
        "task": "quality",
        "model": {"arch": "quality_net", "arch_kwargs": ARCH_KWARGS},
        "data_manifest_hash": "sha256:test-grid",
        "recipe": "quality_grid",
        "code_version": "test",
        "pair_partitions": [f"pairs/quality_grid/{PARTITION}"],
    }
    path = write_checkpoint(
        tmp_path_factory.mktemp("quality-ckpt") / "q.ckpt", state, "quality_net", None, ARCH_KWARGS, meta=meta
    )
    torch.manual_seed(1)
    champion = Champion(
        QualityNet(**ARCH_KWARGS).eval(), ChampionRef(uri="models:/crisp-quality/1", found=True)
    )
    config = LOOSE.gate_config(grid_partitions=[PARTITION])
    found = validate_quality(str(path), config, champion, storage=root)
    assert found.verdict.meta is not None and found.exported.data is not None, found.verdict.reasons
    return found


@pytest.fixture(scope="module")
def onnx_file(validation, tmp_path_factory):
    path = tmp_path_factory.mktemp("quality-onnx") / "model.onnx"
    path.write_bytes(validation.exported.data)
    return path


@pytest.fixture(scope="module")
def expected(root, onnx_file):
    """Per family (and "all"): SRCC vs target of the data side's scores and of log Laplacian sharpness, on
    every val canvas of the grid, read and scored here without the report's code."""
    catalog = load_quality_catalog(root, [PARTITION])
    rows = [r for members in catalog.groups("val").values() for r in members]
    reader = MemberReader(catalog.rows, root.root, root.options)
    scorer = QualityScorer(onnx_file)
    canvases = reader.read(rows)
    model = np.array([scorer.score_canvas(c) for c in canvases])
    sharp = np.array([math.log1p(measure(c, "png").sharpness) for c in canvases])
    targets = np.array([reader.targets[r] for r in rows], dtype=np.float64)
    families = np.array([reader.families[r] for r in rows])
    found = {}
    for family in ["all", *FAMILIES]:
        mine = np.ones(len(rows), bool) if family == "all" else families == family
        found[family] = {
            "samples": int(mine.sum()),
            "model": stats.spearmanr(model[mine], targets[mine]).statistic,
            "log_sharpness": stats.spearmanr(sharp[mine], targets[mine]).statistic,
        }
    return found


def _metrics_csv(path: Path) -> Path:
    rows = ["epoch,step,train/loss,val/srcc"]
    rows += [f"0,{step},{1 / (1 + step):.4f}," for step in range(0, 40, 4)]
    rows += [f"0,{step},,{0.2 + step / 100:.3f}" for step in (19, 39)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _stored_score(storage, scorer, partition, image_id):
    manifest = read_manifest(storage, "images", partition)
    index = read_table(storage, manifest, "index.parquet").to_pylist()
    row = next(r for r in index if r["image_id"] == image_id)
    return scorer.score_rgb(np.asarray(decode_rgb(read_image(storage, manifest, row))))


def test_report_numbers_match_an_independent_recomputation(root, validation, onnx_file, expected, tmp_path):
    html_path, json_path = write_quality_report(
        tmp_path / "report",
        validation.verdict,
        storage=root,
        onnx=onnx_file,
        image_partitions=[PARTITION, PRODUCTS],
        metrics_csv=_metrics_csv(tmp_path / "metrics.csv"),
        config=QualityReportConfig(products=3, thumb_side=64),
    )
    data = json.loads(Path(json_path).read_text())
    page = Path(html_path).read_text()
    table = re.search(r'<table id="families">.*?</table>', page, re.S).group(0)
    assert all(f"<td class=l>{family}</td>" in table for family in FAMILIES)
    rows = {r["family"]: r for r in data["families"]}
    assert list(rows) == ["all", *FAMILIES]
    for family, want in expected.items():
        row = rows[family]
        assert row["samples"] == want["samples"]
        assert row["model_srcc"] == pytest.approx(want["model"], abs=1e-12)
        assert row["log_sharpness_srcc"] == pytest.approx(want["log_sharpness"], abs=1e-12)
        assert -1 <= row["heuristic_srcc"] <= 1
        gated = validation.verdict.metrics["srcc" if family == "all" else f"srcc/{family}"]
        assert row["verdict_srcc"] == gated
        champion = validation.verdict.metrics["champion/srcc" + ("" if family == "all" else f"/{family}")]
        assert row["champion_srcc"] == champion
        assert f"<td><b>{want['model']:.3f}</b></td>" in table
    assert data["grid"]["samples"] == expected["all"]["samples"] == len(data["samples"]) == 22
    assert {s["family"] for s in data["samples"]} == {"pristine", *FAMILIES}
    assert [g["gate"] for g in data["gates"]] == [g.gate for g in validation.verdict.gates]
    assert '<table id="gates">' in page and "bench/results/quality.json" in page
    assert "not aesthetics or product appeal" in page and "synthetic distortions" in page
    # the ranking: the products with the most photos, each sorted by the data side's score of the stored photo
    scorer = QualityScorer(onnx_file)
    assert [p["product_id"] for p in data["ranking"]] == ["MH01", "MH02", "MH03"]
    assert [len(p["photos"]) for p in data["ranking"]] == [4, 3, 3]
    for product in data["ranking"]:
        scores = [p["score"] for p in product["photos"]]
        assert (
            scores == sorted(scores, reverse=True)
            and [p["rank"] for p in product["photos"]] == [1, 2, 3, 4][: len(scores)]
        )
        for photo in product["photos"]:
            want = _stored_score(root, scorer, photo["partition"], photo["image_id"])
            assert photo["score"] == pytest.approx(want, abs=1e-6)
        sheet = np.asarray(Image.open(tmp_path / "report" / product["sheet"]).convert("RGB"))
        frames = sheet[10]  # a row through the top of every frame: green (best) first, red (worst) last
        green = np.flatnonzero((frames == (23, 107, 28)).all(axis=1))
        red = np.flatnonzero((frames == (176, 0, 32)).all(axis=1))
        assert sheet.shape[0] > 64 and green.size and red.size and green.max() < red.min()
        best, worst = product["photos"][0], product["photos"][-1]
        assert f"#1 {best['image_id'][:12]} {best['score']:.3f}" in page
        assert f"{worst['image_id'][:12]} {worst['score']:.3f}" in page
    # files beside the page, linked relatively; lineage names the grid, the checkpoint and the code
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert {"scatter.png", "curves_train.png", "curves_val.png"} <= set(sources) and len(sources) == 6
    assert all((tmp_path / "report" / s).is_file() for s in sources)
    scatter = np.asarray(Image.open(tmp_path / "report" / "scatter.png").convert("L"))
    assert scatter.std() > 10
    assert "file://" not in page.split("<h2>Lineage")[0]
    lineage = data["lineage"]
    assert (
        lineage["grid_partitions"] == [f"pairs/quality_grid/{PARTITION}"]
        and lineage["code_version"] == "test"
    )
    assert lineage["checkpoint"] == validation.verdict.checkpoint and lineage["onnx"] == str(onnx_file)
    assert lineage["image_partitions"] == [f"images/{PARTITION}", f"images/{PRODUCTS}"]


def test_the_ingest_heuristic_is_the_documented_z_score_mean(root, validation, onnx_file, tmp_path):
    _, json_path = write_quality_report(
        tmp_path / "r", validation.verdict, storage=root, onnx=validation.exported.data
    )
    data = json.loads(Path(json_path).read_text())
    catalog = load_quality_catalog(root, [PARTITION])
    rows = {catalog.rows["sample_id"][r].as_py(): r for m in catalog.groups("val").values() for r in m}
    reader = MemberReader(catalog.rows, root.root, root.options)
    found = [measure(reader.read([rows[s["sample_id"]]])[0], "png") for s in data["samples"]]
    terms = [
        [math.log1p(m.sharpness) for m in found],
        [-math.log1p(m.noise_sigma) for m in found],
        [-math.log(m.blockiness) for m in found],
        [m.contrast for m in found],
        [m.dark_score for m in found],
        [m.light_score for m in found],
    ]
    z = [(np.array(t) - np.mean(t)) / np.std(t) if np.std(t) > 0 else np.zeros(len(t)) for t in terms]
    assert [s["heuristic"] for s in data["samples"]] == pytest.approx(list(np.mean(z, axis=0)), abs=1e-9)
    assert (
        data["ranking"] == []
        and "No image partitions were given" in Path(tmp_path / "r" / "report.html").read_text()
    )
    assert data["lineage"]["onnx"] == "the ONNX bytes given"


def test_report_to_s3_exports_the_checkpoint_itself(root, validation, expected, s3_storage, tmp_path):
    """On an S3 output with the checkpoint on the bucket: the ONNX is exported here from the checkpoint
    (read with the output's options) and scores exactly as the validated export does."""
    s3_storage.write_bytes("runs/q/best.ckpt", Path(validation.verdict.checkpoint).read_bytes())
    s3_storage.write_bytes("runs/q/metrics.csv", _metrics_csv(tmp_path / "metrics.csv").read_bytes())
    on_s3 = validation.verdict.model_copy(update={"checkpoint": s3_storage.uri("runs/q/best.ckpt")})
    html_uri, json_uri = write_quality_report(
        s3_storage.uri("runs/q/report"),
        on_s3,
        storage=root,
        image_partitions=[PRODUCTS],
        metrics_csv=s3_storage.uri("runs/q/metrics.csv"),
        storage_options=s3_storage.options,
        config=QualityReportConfig(products=1),
    )
    assert html_uri == s3_storage.uri("runs/q/report/report.html")
    data = json.loads(s3_storage.read_bytes("runs/q/report/report.json"))
    assert json_uri == s3_storage.uri("runs/q/report/report.json")
    rows = {r["family"]: r for r in data["families"]}
    for family, want in expected.items():
        assert rows[family]["model_srcc"] == pytest.approx(want["model"], abs=1e-6)
    assert data["lineage"]["onnx"].startswith("exported from the checkpoint")
    (product,) = data["ranking"]
    assert product["product_id"] == "MH01" and s3_storage.exists(f"runs/q/report/{product['sheet']}")
    for name in ("scatter.png", "curves_train.png", "curves_val.png"):
        assert s3_storage.exists(f"runs/q/report/{name}")


def test_only_a_quality_models_verdict_has_a_quality_report(root, tmp_path):
    sr = Verdict(
        passed=True, checkpoint="sr.ckpt", meta=CheckpointMeta(arch="espcn", scale=4), config=GateConfig()
    )
    with pytest.raises(ValueError, match="not a quality model"):
        write_quality_report(tmp_path / "a", sr, storage=root)
    rejected = sr.model_copy(update={"meta": None, "passed": False, "reasons": ["safe_load: junk"]})
    with pytest.raises(ValueError, match="rejected"):
        write_quality_report(tmp_path / "b", rejected, storage=root)
