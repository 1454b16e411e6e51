"""Score a distorted canvas against its reference: the 0-5 target the learned quality model trains on.

In: the reference canvas R and a distorted canvas D of the same size (uint8 HxWx3, from `quality_canvas`
and `distort`). Out: `fr_measures` -> {"ssim_y", "colour_fidelity", "fr"} (floats, recorded in the
sample index as anchors); `target_score` -> one float in [0, 5]; `target_scores` -> the five targets of
one family's levels 1..5, non-increasing in level.

Definition (full-reference, fixed; changing any constant changes every target, bump the grid version):
- structural fidelity s = `pipeline.sr_metrics.ssim_y(D, R, border=0)` (BT.601 luma, 11x11 Gaussian
  window, sigma 1.5; computed as `ssim_of_y` on planes converted once per reference, the same
  numbers), clipped to [0, 1] (a negative SSIM is as bad as zero).
- colour fidelity c = exp(-mean CIE76 dE(R, D) / 20), with CIELAB from OpenCV on float32 RGB in [0, 1]
  (L in 0..100, D65). Blur barely moves it; noise, casts, exposure and saturation do.
- fr = s * c, and the target is 5 * fr ** GAMMA; the pristine member (D == R) scores exactly 5.0.
- Within one reference and family the targets are made non-increasing in level (running minimum), so
  a more severe member never outranks a milder one (it could by a hair, e.g. a lucky noise draw).

GAMMA = 3.0, chosen once on 40 real Magento Luma product photos (seeded shuffle of the set, 384-px
canvas, grid version 1) with the `families.STRENGTHS` tables: over all families the level-1 targets
have a median of 4.31 (10th-90th percentile 4.05-4.59) and level 5 a median of 1.46 (0.96-2.46). A
larger gamma spreads the high-fidelity end (blur, JPEG), a smaller one the colour end; 3 is where the
blur and JPEG floors (SSIM of a mostly white canvas stays high) still reach level-5 targets under 2.
Per family: mean target at level 1 / level 5, [per-photo range at level 1; at level 5]:

    gaussian_blur       4.27 / 1.52  [2.78-4.58; 0.10-2.63]
    motion_blur         4.15 / 1.53  [2.37-4.58; 0.09-2.72]
    defocus_blur        4.29 / 1.60  [2.82-4.59; 0.09-2.65]
    gaussian_noise      4.23 / 1.36  [4.12-4.33; 1.11-1.61]
    poisson_noise       4.29 / 1.22  [4.15-4.42; 0.80-1.59]
    jpeg                4.07 / 1.75  [2.81-4.52; 0.47-2.50]
    double_jpeg         4.24 / 1.81  [3.10-4.65; 0.33-2.72]
    fake_hr             4.38 / 1.62  [3.04-4.65; 0.10-2.66]
    overexposure        4.30 / 1.36  [3.55-4.61; 0.25-2.37]
    underexposure       4.29 / 1.38  [4.22-4.40; 1.20-1.69]
    contrast_loss       4.35 / 1.48  [3.97-4.86; 0.61-3.17]
    colour_cast         4.23 / 1.35  [4.03-4.39; 1.01-1.87]
    oversaturation      4.43 / 1.74  [3.32-4.91; 0.40-3.85]
    chroma_subsampling  4.71 / 3.01  [3.97-4.91; 1.28-4.17]
    posterization       4.36 / 1.44  [3.88-4.66; 0.35-2.76]

The low ends of the structural families are full-frame photos (a video cover, lifestyle shots): with
no white background to hold SSIM up, the FR target reads the same blur as a far larger loss.
Before the running minimum every family's mean falls strictly with the level; single photos invert a
neighbouring pair rarely (motion blur, whose angle is drawn per level: 11 of 160 pairs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.distort.canvas import check_rgb
from pipeline.distort.families import LEVELS
from pipeline.sr_metrics import rgb_to_y, ssim_of_y

GAMMA = 3.0
MAX_SCORE = 5.0
DELTA_E_SCALE = 20.0  # mean dE76 at which colour fidelity drops to 1/e


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2Lab)


class FidelityReference:
    """The reference's luma and CIELAB planes, converted once for all members scored against it."""

    def __init__(self, reference: np.ndarray) -> None:
        self.rgb = check_rgb(reference, "reference")
        self.y = rgb_to_y(self.rgb)
        self.lab = _lab(self.rgb)

    def measures(self, distorted: np.ndarray) -> dict[str, float]:
        arr = check_rgb(distorted, "distorted")
        if arr.shape != self.rgb.shape:
            raise ValueError(f"distorted must have the reference's shape {self.rgb.shape}, got {arr.shape}")
        structural = min(1.0, max(0.0, ssim_of_y(rgb_to_y(arr), self.y)))
        delta = _lab(arr) - self.lab
        mean_delta_e = float(cv2.mean(np.sqrt(np.einsum("hwc,hwc->hw", delta, delta)))[0])
        colour = math.exp(-mean_delta_e / DELTA_E_SCALE)
        return {"ssim_y": structural, "colour_fidelity": colour, "fr": structural * colour}


def fr_measures(reference: np.ndarray, distorted: np.ndarray) -> dict[str, float]:
    """{"ssim_y": s, "colour_fidelity": c, "fr": s * c} of one distorted canvas (all in [0, 1])."""
    return FidelityReference(reference).measures(distorted)


def score_from_fr(fr: float) -> float:
    """The 0-5 target of a full-reference fidelity fr in [0, 1]: 5 * fr ** GAMMA."""
    if not 0.0 <= fr <= 1.0 or math.isnan(fr):
        raise ValueError(f"fr must lie in [0, 1], got {fr}")
    return MAX_SCORE * fr**GAMMA


def target_score(reference: np.ndarray, distorted: np.ndarray) -> float:
    """The target of one member on its own (no running minimum); identical images score 5.0."""
    return score_from_fr(fr_measures(reference, distorted)["fr"])


def target_scores(reference: np.ndarray, distorted_by_level: Sequence[np.ndarray]) -> list[float]:
    """Targets of ONE family's levels 1..LEVELS (in that order), as a running minimum over the levels."""
    if len(distorted_by_level) != LEVELS:
        raise ValueError(f"expected the {LEVELS} levels of one family, got {len(distorted_by_level)} images")
    ref = FidelityReference(reference)
    return targets_from_fr([ref.measures(distorted)["fr"] for distorted in distorted_by_level])


def targets_from_fr(fr_by_level: Sequence[float]) -> list[float]:
    """The targets of one family's levels 1..LEVELS from their fr values: `score_from_fr`, then the running
    minimum over the levels (for callers that measured the members already)."""
    scores: list[float] = []
    for fr in fr_by_level:
        score = score_from_fr(fr)
        scores.append(min(score, scores[-1]) if scores else score)
    return scores
