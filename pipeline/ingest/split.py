"""Split: assign every product to train, val or test, deterministically and for good.

In: a product id and a `SplitConfig` (fractions, salt). Out: "train", "val" or "test".

The split is a pure function of the product id (a salted sha256 mapped to [0, 1)), never of the image,
the partition, the feed order or the machine. So all images of a product share one split, a product
keeps its split across days and reruns, and a test product never leaks into training later on. Changing
the fractions or the salt re-draws the whole assignment: do it only together with a new dataset version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

SPLITS = ("train", "val", "test")


class SplitConfig(BaseModel):
    """Fractions of products per split (they must add up to 1) and the hash salt.

    - train / val / test: default 0.9 / 0.05 / 0.05.
    - salt: mixed into the hash so two datasets can be split independently (default "crisp-split-v1").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: float = Field(default=0.9, ge=0.0, le=1.0)
    val: float = Field(default=0.05, ge=0.0, le=1.0)
    test: float = Field(default=0.05, ge=0.0, le=1.0)
    salt: str = "crisp-split-v1"

    @model_validator(mode="after")
    def _fractions_add_up(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split fractions train={self.train} + val={self.val} + test={self.test} = {total:g}, "
                "they must add up to 1"
            )
        return self


def product_position(product_id: str, salt: str = SplitConfig().salt) -> float:
    """Where the product falls in [0, 1): the first 8 bytes of sha256(salt, product id)."""
    if not isinstance(product_id, str) or not product_id:
        raise ValueError(f"product_id must be a non-empty string to be split, got {product_id!r}")
    digest = hashlib.sha256(f"{salt}\x00{product_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(product_id: str, config: SplitConfig | None = None) -> str:
    """The split of `product_id`: train below `train`, then val, then test."""
    config = config or SplitConfig()
    position = product_position(product_id, config.salt)
    if position < config.train:
        return "train"
    if position < config.train + config.val:
        return "val"
    if config.test > 0:
        return "test"
    # fractions that add up to 1 only after rounding must not leak into an empty split
    return "val" if config.val > 0 else "train"


def assign_splits(product_ids: Iterable[str], config: SplitConfig | None = None) -> dict[str, str]:
    """product_id -> split for every distinct id (each id hashed once)."""
    config = config or SplitConfig()
    return {pid: assign_split(pid, config) for pid in dict.fromkeys(product_ids)}
