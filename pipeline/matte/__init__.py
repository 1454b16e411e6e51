"""Mattes and composites for background removal (issue #14): estimate, composite, config.

In: a committed white-background product photo (uint8 H x W x 3) and its `image_id`. Out: its alpha matte
and foreground colours (`estimate_matte`), and seeded composites over new backgrounds with exact ground
truth (`composite_params` + `compose`), regenerated bit for bit from the recorded params.

Typical use, one photo::

    estimate = estimate_matte(photo, MatteConfig())            # reason is None when the matte is usable
    params = composite_params(image_id, variant=0, scenes=sorted(scene_photos))
    sample = compose(estimate.alpha, estimate.foreground, params, 256, scene_photos)
"""

from __future__ import annotations

from pipeline.matte.composite import COMPOSITE_VERSION, COMPOSITES, Composite, compose, composite_params
from pipeline.matte.config import CompositesConfig
from pipeline.matte.estimate import MatteConfig, MatteEstimate, estimate_matte

__all__ = [
    "COMPOSITES",
    "COMPOSITE_VERSION",
    "Composite",
    "CompositesConfig",
    "MatteConfig",
    "MatteEstimate",
    "compose",
    "composite_params",
    "estimate_matte",
]
