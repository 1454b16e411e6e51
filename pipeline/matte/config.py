"""Configure the matte composites sample family: canvas, composites per photo, scene photos, matte estimation.

In: keyword values (the `matte` section of a `PairsConfig`: CLI, settings YAML, DAG Params) or nothing.
Out: a frozen `CompositesConfig`; every field changes the output bytes, so all of it is the family's part of
a partition's content key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.matte.estimate import MatteConfig


class CompositesConfig(BaseModel):
    """Composites per committed white-background photo. Defaults: 4 composites of 256 px, no scene photos
    (procedural backgrounds only) until `scenes` names a reference set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    side: int = Field(default=256, ge=32, le=1024)  # square canvas side in px
    variants: int = Field(default=4, ge=1, le=64)  # composites per photo, each its own seeded params
    # a reference set of scene photos (pipeline.reference_sets: `reference/<name>` under the root, a URI or
    # an absolute folder) for cluttered backgrounds; None: gradients, textures, noise and solid colours only
    scenes: str | None = None
    matte: MatteConfig = Field(default_factory=MatteConfig)
