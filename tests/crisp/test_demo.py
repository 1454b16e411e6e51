"""`crisp demo` end to end on a temp root: every stage leaves what the issue names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crisp.cli import main
from pipeline.commit import read_manifest, verify
from pipeline.storage import Storage, read_uri
from training.registry.versions import RegistryConfig, list_versions


@pytest.mark.slow
def test_demo_runs_the_whole_path(tmp_path, capsys):
    root = f"file://{tmp_path}/demo"
    assert (
        main(["demo", "--root", root, "--steps", "300", "--quality-steps", "60", "--matte-steps", "40"]) == 0
    )
    out = capsys.readouterr().out
    storage = Storage(root)
    result = json.loads(storage.read_bytes("demo/result.json"))
    # ingest: every catalog row ends somewhere, with the planted duplicate and broken link
    ingest = result["ingest"]
    assert ingest["inputs"] == ingest["accepted"] + ingest["duplicates"] + sum(ingest["rejected"].values())
    assert ingest["duplicates"] >= 1 and ingest["rejected"].get("http_client_error") == 1
    images = read_manifest(storage, "images", result["partition"])
    verify(storage, images, checksums=True)
    pairs = read_manifest(storage, "pairs/bicubic_x4", result["partition"])
    assert pairs.counts["pairs"] == result["pairs"] > 0
    # a champion, an upscaled sample and a report
    versions = list_versions("crisp-sr-x4", RegistryConfig(root=root))
    assert [v.version for v in versions if "champion" in v.aliases] == [result["champion"]]
    assert result["verdict_passed"] and storage.exists("demo/upscaled/chelsea_side_by_side.png")
    report = Path(result["report"]).read_text()
    assert "Set5" in report and "<table" in report
    assert "@champion" in out or "champion" in out
    # the quality model: a grid, a registered crisp-quality version, every accepted photo ranked in its product
    grid = read_manifest(storage, "pairs/quality_grid", result["partition"])
    assert grid.counts["samples"] == 76 * ingest["accepted"]  # pristine + 15 families x 5 levels per photo
    quality = result["quality"]
    (version,) = list_versions("crisp-quality", RegistryConfig(root=root))
    assert version.version == quality["version"] and -1 <= quality["srcc"] <= 1
    ranking = quality["ranking"]
    assert sum(len(photos) for photos in ranking.values()) == ingest["accepted"]
    for photos in ranking.values():
        assert [p["rank"] for p in photos] == list(range(1, len(photos) + 1))
        assert [p["score"] for p in photos] == sorted((p["score"] for p in photos), reverse=True)
    page = Path(quality["report"]).read_text()
    assert "Product ranking" in page and "It is not aesthetics" in page and "ranking/01.png" in page
    # background removal: composites, a registered crisp-matte version, the held-out photo cut out
    matte = result["matte"]
    composites = read_manifest(storage, "pairs/matte_composites", result["partition"])
    assert composites.counts["samples"] > 0 and composites.counts["skipped_matte_not_white_background"] > 0
    (version,) = list_versions("crisp-matte", RegistryConfig(root=root))
    assert version.version == matte["version"] and 0 <= matte["iou"] <= 1
    rgba = np.asarray(Image.open(io.BytesIO(read_uri(matte["cutout"]))))
    white = np.asarray(Image.open(io.BytesIO(read_uri(matte["white"]))))
    assert rgba.shape[2] == 4 and rgba.shape[:2] == white.shape[:2]
    assert (np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]]) == 255).all()
