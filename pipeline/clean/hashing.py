"""Hashing: the content-addressed image id, the 64-bit perceptual hash and the colour signature of pixels.

In: normalized pixels (HxWx3 uint8, as `normalize` returns them). Out: `image_id` (sha256 hex of the
shape and the decoded pixels, so one picture stored as JPEG, PNG or under any URL gets one id; the id
follows the image from clean to training batch), `phash` (an int in [0, 2**64): DCT perceptual hash,
robust to re-encoding and resizing), `hamming` (bits that differ between two hashes), `color_signature`
(COLOR_SIGNATURE_BYTES bytes: the mean CIELAB colour of each cell of a coarse grid), `color_distance` /
`color_distances` (how far two signatures are apart, in CIE94 Delta E units) and `pairs_within_radius`
(every pair of two hash arrays within a Hamming radius, for dedup).

The perceptual hash follows the classic pHash recipe also used by the `imagehash` package: luma
(ITU-R 601-2), resized to 32x32 with Lanczos, 2-D DCT-II, the 8x8 lowest frequencies (DC included),
each bit = coefficient above the median of those 64. Bit 63 is the DC coefficient, bit 0 the highest
of the kept frequencies (row-major, most significant bit first).

pHash sees only luma and normalizes it away (median threshold), so a black and a gray shirt photographed
in the same pose hash alike. The colour signature keeps what pHash drops: the image is box-averaged onto
an 8x8 grid (exact area means, so resizing the picture barely moves them), each cell's mean sRGB is
converted to CIELAB (D65) and quantized to three bytes (L* in steps of 100/255, a* and b* in steps of 1,
offset by 128). Two signatures are as far apart as their most different cell (CIE94 graphic-arts
weights, made symmetric by weighting with the mean chroma of the two cells), so a garment that changes
colour in a few cells is not averaged away by the white background around it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

_HASH_SIDE = 32
_LOW_FREQUENCIES = 8
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's "L"
# Rows k = 0..7 of the (unnormalized) DCT-II basis over 32 samples; the scale does not matter because
# only comparisons with the median are kept.
_DCT_ROWS = np.cos(
    np.pi * np.arange(_LOW_FREQUENCIES)[:, None] * (2 * np.arange(_HASH_SIDE)[None, :] + 1) / (2 * _HASH_SIDE)
)

# Cells per side. On the 476 product photos the closest colour variants of one garment measure 4.1 with
# 8 cells but only 1.8 with 4 (inside the 1.5 of JPEG q70 copies) and 3.2 with 6: variants often differ
# in a small part (a liner, a trim) that bigger cells average away.
COLOR_GRID = 8
COLOR_SIGNATURE_BYTES = COLOR_GRID * COLOR_GRID * 3  # row-major cells, (L*, a*, b*) bytes each
_L_STEP = 100.0 / 255.0
_AB_OFFSET = 128.0
# sRGB (D65) linear RGB -> XYZ, and the D65 white point (IEC 61966-2-1).
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE_XYZ = np.array([0.95047, 1.0, 1.08883])
_QUERY_CHUNK = 8192  # bounds the candidate-pair arrays of one lookup
_DENSE_BAND_BITS = 20  # bands this narrow are looked up in a table of 2**bits buckets (8 MiB at most)


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[2] != 3
    ):
        shape = getattr(pixels, "shape", None)
        dtype = getattr(pixels, "dtype", type(pixels).__name__)
        raise ValueError(
            f"pixels must be an HxWx3 uint8 array (NormalizedImage.pixels), got shape {shape} dtype {dtype}"
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"pixels must not be empty, got shape {pixels.shape}")
    return np.ascontiguousarray(pixels)


def _pillow_image(pixels: np.ndarray, image: Image.Image | None) -> Image.Image:
    """`pixels` as a Pillow image: `image` when the caller has it (same pixels, mode RGB), else converted."""
    pixels = _check_pixels(pixels)
    if image is None:
        return Image.fromarray(pixels)
    height, width, _ = pixels.shape
    if not isinstance(image, Image.Image) or image.mode != "RGB" or image.size != (width, height):
        raise ValueError(
            f"image must be the RGB Pillow image of the {width}x{height} pixels (NormalizedImage.image), got "
            f"{getattr(image, 'mode', type(image).__name__)} {getattr(image, 'size', '')}"
        )
    return image


def image_id(pixels: np.ndarray) -> str:
    """sha256 hex of the pixel shape and bytes: equal ids mean identical decoded pixels."""
    pixels = _check_pixels(pixels)
    height, width, _ = pixels.shape
    digest = hashlib.sha256(f"crisp-rgb8:{height}x{width}x3;".encode())
    digest.update(pixels)  # the array's buffer, no copy
    return digest.hexdigest()


def phash(pixels: np.ndarray, image: Image.Image | None = None) -> int:
    """64-bit DCT perceptual hash of the pixels (see the module docstring); `image`, the same pixels as
    an RGB Pillow image when the caller has one (`NormalizedImage.image`), saves a conversion."""
    # Luma is linear in RGB, so resizing first and weighting the 32x32 result equals weighting first;
    # reducing_gap lets Pillow box-reduce before Lanczos (about 3x faster on 2 MP photos).
    small = _pillow_image(pixels, image).resize(
        (_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0
    )
    luma = np.asarray(small, dtype=np.float64) @ _LUMA_WEIGHTS
    coefficients = _DCT_ROWS @ luma @ _DCT_ROWS.T
    bits = coefficients > np.median(coefficients)
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (int(a) ^ int(b)).bit_count()


def color_signature(pixels: np.ndarray, image: Image.Image | None = None) -> bytes:
    """COLOR_SIGNATURE_BYTES bytes: quantized mean CIELAB of each grid cell (see the module docstring);
    `image` as for `phash`."""
    # BOX is an exact area average, also for images smaller than the grid (cells then share pixels).
    # Taken from the full-resolution pixels, not a reduced copy: a 4x reduced copy moves cells by up
    # to 2 dE94 on the product photos, too much of the 3.0 near-duplicate budget.
    cells = _pillow_image(pixels, image).resize((COLOR_GRID, COLOR_GRID), Image.Resampling.BOX)
    lab = _srgb_to_lab(np.asarray(cells, dtype=np.float64).reshape(-1, 3))
    quantized = np.empty_like(lab)
    quantized[:, 0] = lab[:, 0] / _L_STEP
    quantized[:, 1:] = lab[:, 1:] + _AB_OFFSET
    return np.clip(np.rint(quantized), 0, 255).astype(np.uint8).tobytes()


def color_distance(a: bytes, b: bytes) -> float:
    """CIE94 Delta E of the most different cell of two colour signatures (0 = same colours)."""
    rows, _ = signature_rows([a, b])
    return float(color_distances(rows[:1], rows[1:])[0])


def signature_rows(signatures: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Signatures as (n, COLOR_SIGNATURE_BYTES) uint8 rows, zeros where None (colour unknown), and the
    mask of known rows; ValueError names a signature of the wrong size."""
    known = np.array([s is not None for s in signatures], dtype=bool)
    rows = np.zeros((len(signatures), COLOR_SIGNATURE_BYTES), dtype=np.uint8)
    for index, signature in enumerate(signatures):
        if signature is None:
            continue
        if not isinstance(signature, bytes | bytearray) or len(signature) != COLOR_SIGNATURE_BYTES:
            size = len(signature) if isinstance(signature, bytes | bytearray) else type(signature).__name__
            raise ValueError(
                f"a colour signature must be {COLOR_SIGNATURE_BYTES} bytes (hashing.color_signature) or "
                f"None when unknown, got {size}"
            )
        rows[index] = np.frombuffer(signature, dtype=np.uint8)
    return rows, known


def color_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise `color_distance` of two (n, COLOR_SIGNATURE_BYTES) uint8 arrays -> (n,) float64."""
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != COLOR_SIGNATURE_BYTES:
        raise ValueError(
            f"colour signature arrays must both be (n, {COLOR_SIGNATURE_BYTES}), got {a.shape} and {b.shape}"
        )
    if a.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    lab_a, lab_b = _dequantize(a), _dequantize(b)
    delta_l = lab_a[..., 0] - lab_b[..., 0]
    chroma_a = np.hypot(lab_a[..., 1], lab_a[..., 2])
    chroma_b = np.hypot(lab_b[..., 1], lab_b[..., 2])
    delta_c = chroma_a - chroma_b
    delta_ab_squared = np.square(lab_a[..., 1:] - lab_b[..., 1:]).sum(axis=-1)
    delta_h_squared = np.maximum(delta_ab_squared - np.square(delta_c), 0.0)
    # CIE94 (graphic arts: kL = 1, K1 = 0.045, K2 = 0.015): chroma and hue differences of saturated
    # colours count less, which is where JPEG chroma quantization moves the cell means most.
    chroma = (chroma_a + chroma_b) / 2
    delta_e = np.sqrt(
        np.square(delta_l)
        + np.square(delta_c / (1 + 0.045 * chroma))
        + delta_h_squared / np.square(1 + 0.015 * chroma)
    )
    return delta_e.max(axis=1)


def _dequantize(signatures: np.ndarray) -> np.ndarray:
    lab = signatures.reshape(signatures.shape[0], -1, 3).astype(np.float64)
    lab[..., 0] *= _L_STEP
    lab[..., 1:] -= _AB_OFFSET
    return lab


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(n, 3) sRGB values in 0..255 -> (n, 3) CIELAB (D65)."""
    encoded = rgb / 255.0
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    xyz = (linear @ _RGB_TO_XYZ.T) / _WHITE_XYZ
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > epsilon, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def pairs_within_radius(
    queries: np.ndarray, base: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query index, base index, distance) of two uint64 arrays with Hamming distance <= radius.

    Multi-index hashing: the 64 bits are split into radius // 2 + 1 bands, so two hashes within the
    radius agree on some band to within one bit (pigeonhole); each band is looked up in a sorted array
    with 1 + band-width probes, all in numpy, then the full distance is checked.
    """
    n_bands = radius // 2 + 1
    probe_radius = radius // n_bands  # 0 or 1 by the choice of n_bands
    widths = [64 // n_bands + (1 if band < 64 % n_bands else 0) for band in range(n_bands)]
    shifts = np.cumsum([0, *widths[:-1]])
    found_query, found_base, found_distance = [], [], []
    for shift, width in zip(shifts, widths, strict=True):
        mask = np.uint64((1 << width) - 1)
        base_keys = (base >> np.uint64(shift)) & mask
        order = np.argsort(base_keys, kind="stable")
        sorted_keys = base_keys[order]
        flips = [0] + ([1 << bit for bit in range(width)] if probe_radius else [])
        flips = np.array(flips, dtype=np.uint64)
        # Narrow bands get a dense bucket table (O(1) lookups); wide ones a binary search.
        bucket_start = None
        if width <= _DENSE_BAND_BITS:
            bucket_count = np.bincount(sorted_keys.astype(np.intp), minlength=1 << width)
            bucket_start = np.concatenate([[0], np.cumsum(bucket_count)[:-1]])
        for start in range(0, queries.size, _QUERY_CHUNK):
            chunk = queries[start : start + _QUERY_CHUNK]
            probes = (((chunk >> np.uint64(shift)) & mask)[:, None] ^ flips[None, :]).ravel()
            if bucket_start is not None:
                low = bucket_start[probes.astype(np.intp)]
                counts = bucket_count[probes.astype(np.intp)]
            else:
                low = np.searchsorted(sorted_keys, probes, side="left")
                counts = np.searchsorted(sorted_keys, probes, side="right") - low
            total = int(counts.sum())
            if total == 0:
                continue
            query_index = np.repeat(np.repeat(np.arange(start, start + chunk.size), flips.size), counts)
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            base_index = order[np.repeat(low, counts) + offsets]
            distance = np.bitwise_count(queries[query_index] ^ base[base_index]).astype(np.int64)
            close = distance <= radius
            found_query.append(query_index[close])
            found_base.append(base_index[close])
            found_distance.append(distance[close])
    if not found_query:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    query_index = np.concatenate(found_query)
    base_index = np.concatenate(found_base)
    distance = np.concatenate(found_distance)
    # The same pair can be found through several bands.
    _, unique = np.unique(query_index * np.int64(base.size) + base_index, return_index=True)
    return query_index[unique], base_index[unique], distance[unique]
