"""`crisp pairs` end to end on a local root and an in-process Dask scheduler; bad input exits 2 before work."""

from __future__ import annotations

import argparse
import json

import pytest

from crisp.commands import pairs
from pipeline.commit import read_manifest
from tests.support.image_partitions import write_image_partition

DAY = "2026-11-20"


def main(argv: list[str]) -> int:
    """`crisp <argv>` with only this subcommand registered (crisp.cli imports every command module)."""
    parser = argparse.ArgumentParser(prog="crisp")
    parser.add_argument("--config")
    pairs.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


@pytest.fixture
def root(tmp_path, shared_data):
    from pipeline.storage import Storage

    storage = Storage(f"file://{tmp_path}/root")
    t91 = shared_data / "sr_train" / "T91"
    photos = [shared_data / "products" / "magento_luma" / "lt01.jpg", t91 / "t1.png", t91 / "t20.png"]
    write_image_partition(storage, DAY, photos, max_side=300)
    return storage


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_builds_and_summarizes_then_reruns_as_a_no_op(root, scheduler, capsys):
    argv = ["pairs", "--recipe", "bicubic_x2", "--from", DAY, "--root", root.root, "--scheduler", scheduler,
            "--tile", "240", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    manifest = read_manifest(root, "pairs/bicubic_x2", DAY)
    assert f"{DAY}  committed: {manifest.counts['pairs']} pairs from 3 images" in out
    assert "too_small" in out and "pairs/s" in out and "KiB per pair" in out
    assert main([*argv, "--json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["partitions"][DAY]["reused"] is True
    assert summary["partitions"][DAY]["attempt_id"] == manifest.attempt_id
    assert summary["skipped"] == {"too_small": 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--recipe", "bicubic_x5", "--from", DAY], "unknown recipe"),
        (["--recipe", "bicubic_x3", "--from", DAY, "--tile", "250"], "not a multiple of recipe bicubic_x3"),
        (
            ["--recipe", "bicubic_x4", "--from", DAY, "--to", "2026-11-21"],
            "images/2026-11-21 is not committed",
        ),
        (["--recipe", "bicubic_x4", "--from", "2026-13-01"], "must be dates"),
        (["--recipe", "bicubic_x4", "--from", DAY, "--to", "2026-11-01"], "before --from"),
    ],
)
def test_bad_input_exits_2_before_any_cluster_is_contacted(root, capsys, extra, message):
    # an unreachable scheduler proves no work started: reaching it would fail differently
    assert main(["pairs", *extra, "--root", root.root, "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert message in capsys.readouterr().err
    assert not root.exists("pairs")
