import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.checkpoints import trained_checkpoint, write_checkpoint
from training.gates.validate import GateConfig, validate_checkpoint
from training.report.sr import PUBLISHED, ReportConfig, write_report

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
]
# Appended to a copy of the page: after load, record how many <img> decoded (naturalWidth > 0).
IMAGE_PROBE = (
    "<script>window.addEventListener('load', () => { const all = [...document.images];"
    " const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;"
    " document.body.setAttribute('data-images', ok + '/' + all.length);"
    " });</script>"
)


@pytest.fixture(scope="module")
def verdict(shared_data, tmp_path_factory):
    path = trained_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "trained.ckpt", shared_data / "sr_train" / "T91"
    )
    config = GateConfig(
        benchmarks={"Set5": shared_data / "sr_benchmarks" / "Set5"}, reference_lr_size=32, latency_repeats=1
    )
    return validate_checkpoint(str(path), config)


def _metrics_csv(path):
    """What Lightning's CSVLogger writes: one row per log call, NaN where a metric was not logged."""
    rows = ["epoch,step,train/loss,train/l1,val/psnr_y,val/ssim_y"]
    for step in range(0, 200, 10):
        rows.append(f"{step // 100},{step},{0.1 / (1 + step / 50):.5f},{0.1 / (1 + step / 50):.5f},,")
        if step % 50 == 49 or step % 50 == 40:
            rows.append(f"{step // 100},{step},,,{27 + step / 100:.3f},{0.8 + step / 2000:.4f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: run `bash scripts/ensure_chromium.sh` (make test does)")
    return binary


def _render(binary, page, tmp_path, *args):
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_report_files_and_numbers(verdict, tmp_path, product_photos):
    photos = sorted(product_photos.glob("*.jpg"))[:2]
    html_path, json_path = write_report(
        tmp_path / "run",
        verdict,
        metrics_csv=_metrics_csv(tmp_path / "metrics.csv"),
        photos=photos,
        lineage={"image_partitions": ["images/2026-01-01"]},
        config=ReportConfig(crop_size=96),
    )
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert html_path.endswith("report.html") and json_path.endswith("report.json")
    (row,) = data["metrics"]
    assert row["name"] == "Set5" and row["published"] == PUBLISHED[("Set5", 4)]
    assert row["published"]["bicubic"] == 28.42 and row["published"]["SwinIR-light"] == 32.44
    assert row["gain_db"] == pytest.approx(
        verdict.score("Set5").psnr_y - verdict.score("Set5").bicubic_psnr_y
    )
    assert data["curves"] == ["curves_train.png", "curves_val.png"]
    assert [c["file"] for c in data["crops"]] == ["crops/00.png", "crops/01.png"]
    crop = Image.open(tmp_path / "run" / "crops" / "00.png")
    assert crop.size == (3 * 96 + 2 * 6, 96)  # bicubic | model | HR
    assert all(c["model_psnr_y"] > 0 and c["bicubic_psnr_y"] > 0 for c in data["crops"])
    lineage = data["lineage"]
    assert lineage["recipe"] == "bicubic_x4" and lineage["data_manifest_hash"] == "sha256:test-manifest"
    assert lineage["pair_partitions"] == ["pairs/bicubic_x4/2026-01-01"] and lineage["image_partitions"]
    assert lineage["checkpoint_sha256"] == verdict.checkpoint_sha256
    page = (tmp_path / "run" / "report.html").read_text()
    assert 'src="curves_train.png"' in page and 'src="crops/01.png"' in page  # relative links only
    assert "file://" not in page.split("<h2>Dataset lineage")[0]


def test_report_renders_in_headless_chromium(verdict, tmp_path, product_photos):
    binary = _chromium()
    photos = sorted(product_photos.glob("*.jpg"))[:2]
    html_path, _ = write_report(
        tmp_path / "run", verdict, metrics_csv=_metrics_csv(tmp_path / "m.csv"), photos=photos
    )
    probe = tmp_path / "run" / "probe.html"  # beside the report, so its relative image links resolve
    probe.write_text(Path(html_path).read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    dom = _render(binary, probe, tmp_path, "--dump-dom")
    loaded = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load event never fired"
    assert loaded.group(1) == loaded.group(2) == "4", dom[:500]  # 2 curve plots + 2 crops, all decoded
    table = re.search(r'<table id="metrics">.*?</table>', dom, re.S).group(0)
    assert "<td>28.42</td>" in table and "Set5" in table and "32.44" in table
    assert '<table id="gates">' in dom and '<table id="lineage">' in dom
    shot = tmp_path / "shot.png"
    _render(binary, probe, tmp_path, "--window-size=1200,1600", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # text, tables and images, not a blank page


def test_report_to_object_storage_and_without_optional_parts(verdict, tmp_path):
    from pipeline.storage import Storage

    storage = Storage("memory://crisp-reports/run-1")
    storage.write_bytes("logs/metrics.csv", _metrics_csv(tmp_path / "metrics.csv").read_bytes())
    html_uri, json_uri = write_report(storage.uri(), verdict, metrics_csv=storage.uri("logs/metrics.csv"))
    assert html_uri == storage.uri("report.html") and storage.exists("report.json")
    assert storage.exists("curves_train.png") and storage.exists("curves_val.png")
    page = storage.read_bytes("report.html").decode()
    assert "No product photos were given" in page and "No metrics.csv" not in page
    assert json.loads(storage.read_bytes("report.json"))["crops"] == []
    html_path, _ = write_report(tmp_path / "bare", verdict)
    assert "No metrics.csv was given" in Path(html_path).read_text()


def test_a_checkpoint_on_s3_is_loaded_with_the_reports_storage_options(verdict, s3_storage, product_photos):
    """The release flow on an S3 root: the report loads the model from the checkpoint on the bucket with
    the root's endpoint and keys (without them boto would go to AWS)."""
    s3_storage.write_bytes("runs/r1/checkpoints/best.ckpt", Path(verdict.checkpoint).read_bytes())
    on_s3 = verdict.model_copy(update={"checkpoint": s3_storage.uri("runs/r1/checkpoints/best.ckpt")})
    photo = sorted(product_photos.glob("*.jpg"))[0]
    html_uri, _ = write_report(
        s3_storage.uri("runs/r1/report"), on_s3, photos=[photo], storage_options=s3_storage.options
    )
    assert html_uri == s3_storage.uri("runs/r1/report/report.html")
    assert json.loads(s3_storage.read_bytes("runs/r1/report/report.json"))["crops"] != []


def test_rejected_verdict_has_no_report(tmp_path, shared_data):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"junk")
    rejected = validate_checkpoint(str(broken), GateConfig(benchmarks={}))
    with pytest.raises(ValueError, match="rejected"):
        write_report(tmp_path / "run", rejected)
    # a JSON verdict file works as input too
    ok = write_checkpoint(tmp_path / "bicubic.ckpt", {}, arch="bicubic", scale=4)
    verdict_file = tmp_path / "verdict.json"
    config = GateConfig(
        benchmarks={"Set5": shared_data / "sr_benchmarks" / "Set5"}, reference_lr_size=16, latency_repeats=1
    )
    verdict_file.write_text(validate_checkpoint(str(ok), config).model_dump_json())
    html_path, _ = write_report(tmp_path / "run2", verdict_file)
    assert "FAILED" in Path(html_path).read_text()
