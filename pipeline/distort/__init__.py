"""The distortion grid of the learned image-quality model (issue #13): canvas, families, apply, target.

In: a product photo (uint8 HxWx3) and its `image_id`. Out: the 384-px quality canvas, the recorded
params of every grid member, the distorted canvases and their 0-5 training targets.

Typical use, one reference::

    reference = quality_canvas(photo, version=2)             # also what serving scores
    for params in grid(image_id, version=2):                 # pristine + 15 families x 5 levels
        distorted = distort(reference, params)               # regenerates bit for bit from params
    scores = target_scores(reference, [distort(reference, grid_params(image_id, "jpeg", lv, 2))
                                       for lv in range(1, LEVELS + 1)])
"""

from __future__ import annotations

from pipeline.distort.apply import distort
from pipeline.distort.canvas import CANVAS_LONG_SIDE, CANVAS_VERSION, CANVAS_VERSIONS, quality_canvas
from pipeline.distort.families import (
    FAMILIES,
    GRID_NAME,
    LEVELS,
    PRISTINE,
    STRENGTHS,
    grid,
    grid_params,
    validate_params,
)
from pipeline.distort.target import (
    GAMMA,
    FidelityReference,
    fr_measures,
    score_from_fr,
    target_score,
    target_scores,
    targets_from_fr,
)

__all__ = [
    "CANVAS_LONG_SIDE",
    "CANVAS_VERSION",
    "CANVAS_VERSIONS",
    "FAMILIES",
    "FidelityReference",
    "GAMMA",
    "GRID_NAME",
    "LEVELS",
    "PRISTINE",
    "STRENGTHS",
    "distort",
    "fr_measures",
    "grid",
    "grid_params",
    "quality_canvas",
    "score_from_fr",
    "target_score",
    "target_scores",
    "targets_from_fr",
    "validate_params",
]
