"""Locate the reference image data: SR benchmark sets, the T91 training set and sample product photos.

In: the environment. Out: paths under `$CRISP_SHARED_DATA`, else `../shared/data` beside the checkout
(the layout of that folder's README). Read at call time, so a test or a job can point it elsewhere.
Nothing here checks that a folder exists: callers decide whether a missing set is an error or optional.
"""

from __future__ import annotations

import os
from pathlib import Path

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
