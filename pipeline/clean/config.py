"""Clean configuration: the limits that decide whether an image is accepted, the quality-flag thresholds and
the main-image compliance rules.

In: keyword arguments (all optional). Out: `CleanConfig` (with a nested `QualityThresholds` and
`ComplianceConfig`), validated
and frozen; a bad value raises ValueError naming the field and the fix. The defaults need no setup.
Flag thresholds start from cleanvision's published defaults where a like-for-like score exists and
were checked on the 476 real product photos otherwise (see each comment).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class QualityThresholds(BaseModel):
    """When `quality.flags` raises each flag. A flag marks an image for review; it never rejects it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # dark: the 99th percentile of perceived brightness (0..1) is below this, so even the brightest
    # parts of the image are dim. cleanvision's default (0.37).
    dark_max_p99_brightness: float = Field(default=0.37, ge=0.0, le=1.0)
    # light: 1 - the 5th percentile of perceived brightness is below this, so even the darkest parts
    # are near white (washed out). cleanvision's default (0.05).
    light_max_inverted_p5_brightness: float = Field(default=0.05, ge=0.0, le=1.0)
    # blurry: variance of the Laplacian of the luma (gray levels squared) on the copy whose long side
    # is at most 512 px is below this. The 476 real product photos measure 53..3,100 (median 330); a
    # Gaussian blur of radius 4 px at full size brings them to 4..80 (median 20).
    blurry_max_sharpness: float = Field(default=30.0, ge=0.0)
    # low_information: Shannon entropy of the RGB histogram (bits, Pillow's Image.entropy) is below
    # this. cleanvision flags 0.1 * entropy < 0.3, that is entropy < 3 bits; real photos measure 3.5..8.4.
    low_information_max_entropy: float = Field(default=3.0, ge=0.0, le=10.0)
    # low_contrast: RMS contrast (standard deviation of luma / 255) is below this. Flat, foggy images
    # measure under 0.05; the real photos measure 0.12..0.44.
    low_contrast_max_rms: float = Field(default=0.05, ge=0.0, le=1.0)
    # grayscale: mean over pixels of max(R,G,B) - min(R,G,B), in gray levels, is at most this. A few
    # levels of tolerance so gray photos stored as colour JPEGs (chroma noise) are still caught.
    grayscale_max_channel_spread: float = Field(default=2.0, ge=0.0, le=255.0)
    # odd_aspect: min(w/h, h/w) is below this. cleanvision's default (0.35, about 1:2.9).
    odd_aspect_min_ratio: float = Field(default=0.35, ge=0.0, le=1.0)
    # odd_size: the short side is below this many pixels (too small to give an x4 training tile with
    # context) or the image has more than odd_size_max_pixels. cleanvision judges size relative to
    # the dataset mean; a per-image rule is used here so a flag never depends on the partition.
    odd_size_min_side: int = Field(default=512, ge=1)
    odd_size_max_pixels: int = Field(default=40_000_000, ge=1)
    # noisy: Immerkaer noise sigma (green channel, gray levels) on a full-resolution centre crop is
    # above this. The 476 real studio photos measure 0..6.3 (median 0.37) except two black items whose
    # fine weave reads as 8.9 and 18.6 (texture at the pixel scale looks like noise); added Gaussian
    # noise of sigma 8 measures 8.0.
    noisy_min_sigma: float = Field(default=7.0, ge=0.0)
    # low_jpeg_quality: the JPEG quality estimated from the quantization tables is below this (the
    # IJG scale, 1..100). Only JPEG-stored images can raise it.
    low_jpeg_quality_max: float = Field(default=60.0, ge=1.0, le=100.0)


class ComplianceConfig(BaseModel):
    """When `compliance.check_compliance` calls an image a compliant marketplace main image (a column of the
    index, never a reject): a pure white background, a product that fills the frame, a large enough photo.

    Measured on the 476 real product photos (studio shots on white, long side 1000..1580 px): the 38 gear
    photos (bags, gloves, mats, straps) have a pure white border (share 1.0) but most leave margins (fill
    0.45..0.96, median about 0.75); the 438 apparel photos fill the frame (0.95..1.0) because the model or
    the garment runs off it, so only 0.59..0.93 of their border is pure white. 5 of the 476 (yoga gear)
    meet all three rules at the defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The border band: this share of each side (rounded, at least 1 px) along all four edges, judged at
    # full resolution. 1 % of a 1274x1580 photo is a band of 16 rows and 13 columns.
    border_share: float = Field(default=0.01, gt=0.0, le=0.25)
    # white_border_share: the share of band pixels that are exactly RGB (255, 255, 255) must be at least
    # this. Marketplaces (Amazon, Google Shopping) ask for pure white; a product that runs off the frame
    # also lowers it (the apparel photos above). 0.95 allows a shadow or a strap touching the edge.
    min_white_border_share: float = Field(default=0.95, ge=0.0, le=1.0)
    # Background for product_fill: every channel at least 255 - this (JPEG leaves 1-3 levels of ringing
    # on studio white). On the 476 photos fill changes by under 0.01 between 0 and 16.
    background_tolerance: int = Field(default=8, ge=0, le=254)
    # product_fill: the extent of the non-background pixels along the long side / the long side must be
    # at least this (marketplaces: the product fills at least 85 % of the frame).
    min_product_fill: float = Field(default=0.85, ge=0.0, le=1.0)
    # The long side must be at least this many pixels (marketplaces: 1000 px enables zoom).
    min_long_side: int = Field(default=1000, ge=1)


class CleanConfig(BaseModel):
    """What `normalize` accepts and how `dedup` groups images.

    - max_pixels: width * height above this is rejected as decompression_bomb from the header alone,
      before any pixel is decoded (default 64,000,000). Pillow's own global limit
      (PIL.Image.MAX_IMAGE_PIXELS, about 179 M pixels for an error) still applies above this.
    - min_side: a shorter side below this many pixels is rejected as too_small (default 256).
    - max_aspect_ratio: long side / short side above this is rejected as bad_aspect_ratio (default 4.0).
    - phash_radius: two images whose 64-bit perceptual hashes differ in at most this many bits may be
      near duplicates (default 4; 0 = only identical hashes); they also need close colours (below).
      Measured on the 476 real product photos: every benign copy sits 0..2 bits from its original
      (JPEG q70 at 0.8x and q50 at 0.5x of all 476; q30 at 0.4x, WebP, PNG at 0.6x, unsharp mask,
      1 px blur and gamma 0.9 of 60 of them; flips come in pairs, so distances are even). Pairs of different products by pHash alone:
      20 of 112,626 within 6 bits (models in the same pose on white), 3 within 4, 0 within 2. The
      default was 6; with the colour test no different-product pair survives at any radius up to 10,
      so the radius only matters where colour is unknown (a schema v1 prior index), and 4 keeps twice
      the measured copy distance while cutting those pHash-only false matches from 20 pairs to 3.
    - color_distance_max: near duplicates also need colour signatures (`hashing.color_signature`:
      mean CIELAB on an 8x8 grid) at most this far apart: CIE94 Delta E of the most different cell
      (default 3.0; math.inf = pHash only). Measured on the 476 photos: JPEG q70 0.8x copies 0.4..2.1
      (median 1.3; quantization alone gives about 1.4), q50 0.5x up to 2.7; colour variants of one
      garment within 6 pHash bits (96 pairs) 4.1 (black shorts, pink vs orange liner) .. 64, with
      two exceptions at 1.3 and 1.4 that are the same photograph filed under two colours (mp09 and
      mp12 black/blue: 0.2 gray levels apart on average, so they are, correctly, duplicates); different
      products within 10 bits: 17 and up. A global tone edit is a different image to this test (gamma
      0.9 measures up to 4.4, +5 % brightness about 4).
    - quality: thresholds for the quality flags (`QualityThresholds`).
    - compliance: the main-image rules behind the index's `compliant` column (`ComplianceConfig`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pixels: int = Field(default=64_000_000, ge=1)
    min_side: int = Field(default=256, ge=1)
    max_aspect_ratio: float = Field(default=4.0, ge=1.0)
    phash_radius: int = Field(default=4, ge=0, le=32)
    color_distance_max: float = Field(default=3.0, ge=0.0)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)

    @model_validator(mode="after")
    def _limits_leave_room_for_an_image(self) -> CleanConfig:
        if self.min_side * self.min_side > self.max_pixels:
            raise ValueError(
                f"min_side={self.min_side} needs at least {self.min_side**2} pixels but max_pixels="
                f"{self.max_pixels}: raise max_pixels or lower min_side"
            )
        return self
