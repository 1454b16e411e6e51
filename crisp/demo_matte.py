"""The demo's background-removal step: composites -> train -> release -> `crisp cutout` of a held-out photo.

In: the demo's storage and its committed images partition (the embedded catalog holds two photos on a
studio-white background: a logo, whose product falls in the demo's train split, and a horse silhouette,
in its test split), a step budget and the demo's `say`. Out: {version, champion, verdict_passed, iou, mae, report, cutout,
white}: a `pairs/matte_composites` partition, a `crisp-matte` version released under the demo's policy
(the same gates, scored on the held-out test split's composites), and the cut-out of the held-out photo as
an RGBA PNG plus its render on pure white, written by `crisp cutout`'s own loop (`cut_out_items`, not
`crisp.cli.main`, which would reconfigure the process's logging) under `demo/cutout/`. A catalog without a studio-white
photo in both splits gets {} and a line saying so.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

MATTE_MODEL = "crisp-matte"
SIDE = 128  # composites of 128 px keep the demo's matte training to about a minute


def run_matte(storage, partition: str, steps: int, say) -> dict[str, Any]:
    from pipeline.pairs.config import PairsConfig
    from pipeline.pairs.job import build_pairs
    from training.fit.train import TrainConfig, train
    from training.gates.matte_gates import MatteGatePolicy
    from training.registry.release import ReleaseTarget, release
    from training.registry.versions import RegistryConfig

    composites = PairsConfig(recipes=["matte_composites"], matte={"side": SIDE, "variants": 32})
    built = build_pairs(storage, "matte_composites", [partition], composites)
    skipped = sum(built.partitions[0].skipped.values())
    say(
        f"    matte composites: {built.pairs} from the studio-white photos ({skipped} photos skipped with a reason)"
    )
    images = _composite_images(storage, partition)
    if not images.get("train") or not images.get("test"):
        say("    no studio-white photo in the train or the test split: the matte model is not trained")
        return {}
    config = TrainConfig(
        task="matte",
        data={
            "root": storage.root,
            "partitions": [partition],
            "crop": 96,
            "batch_size": 8,
            "workers": 0,
            "val_split": "test",
        },  # fmt: skip
        optim={"lr": 2e-3, "warmup_steps": 20},
        trainer={"max_steps": steps, "val_check_interval": max(steps // 2, 1), "accelerator": "cpu"},
        output=storage.uri("runs/demo-matte"),
        resume="never",
    )
    trained = train(config)
    # The demo's policy: one training photo cannot reach the deployment's bar (settings gates.matte); the
    # same gates run on the held-out product's composites, with demo thresholds.
    policy = MatteGatePolicy(min_iou=0.6, max_mae=0.15, sample_split="test")
    target = ReleaseTarget(
        model_name=MATTE_MODEL,
        storage=storage,
        registry=RegistryConfig(root=storage.root, experiment=MATTE_MODEL, policy=policy),
        recipe="matte_composites",
        partitions=[partition],
        task="matte",
    )
    released = release(target, config.model_dump(mode="json"), asdict(trained), run_name="demo")
    metrics = released.verdict.metrics
    say(f"    held-out composites: IoU {metrics.get('iou', float('nan')):.3f}, MAE {metrics.get('mae', float('nan')):.3f}; "
        f"{MATTE_MODEL} v{released.version}, @champion = {released.champion}")  # fmt: skip
    if not released.promoted:
        say(f"    not promoted ({released.refusal}); the cut-out below uses the candidate")
    held_out = sorted(images["test"])[0]
    cut, white = _cutout(storage, partition, held_out, released.champion or released.version)
    say(f"    cut-out: {cut} (RGBA) and {white} (on pure white)")
    return {"version": released.version, "champion": released.champion, "verdict_passed": released.verdict.passed,
            "iou": metrics.get("iou"), "mae": metrics.get("mae"), "report": released.report, "cutout": cut,
            "white": white}  # fmt: skip


def _composite_images(storage, partition: str) -> dict[str, set[str]]:
    """split -> image ids with composites in the committed matte_composites partition."""
    from training.data.matte import load_matte_catalog

    rows = load_matte_catalog(storage, [partition]).rows.select(["image_id", "split"]).to_pylist()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["split"], set()).add(row["image_id"])
    return found


def _cutout(storage, partition: str, image_id: str, version: int) -> tuple[str, str]:
    """`crisp cutout`'s own loop on committed photo `image_id` with version `version`; (rgba, white) URIs."""
    from crisp.commands import onnx_model_file
    from crisp.commands.cutout import cut_out_items
    from crisp.commands.upscale import collect_inputs
    from pipeline.matte.cutout import parse_background
    from pipeline.matte.predict import MattePredictor

    items = [
        (stem, load)
        for stem, load in collect_inputs([f"images/{partition}"], lambda: storage)
        if stem == image_id
    ]
    with tempfile.TemporaryDirectory(prefix="crisp-demo-cutout-") as tmp:
        model = onnx_model_file(f"models:/{MATTE_MODEL}/{version}", storage.root, None, Path(tmp))
        predictor = MattePredictor(model.path)
        out = Path(tmp) / "out"
        if cut_out_items(items, predictor, out, parse_background("white"), 0.85, False):
            raise RuntimeError(f"the cut-out of {image_id} failed (see the line above)")
        for name in (f"{image_id}.png", f"{image_id}_on_white.png"):
            storage.upload(str(out / name), f"demo/cutout/{name}")
    return storage.uri(f"demo/cutout/{image_id}.png"), storage.uri(f"demo/cutout/{image_id}_on_white.png")
