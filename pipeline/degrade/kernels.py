"""Sample, build and apply the Real-ESRGAN blur kernels (isotropic/anisotropic Gaussian, generalized
Gaussian, plateau, sinc).

In: a `BlurConfig` (Real-ESRGAN's first-stage ranges by default) and a numpy Generator, or a recorded
kernel params dict. Out: a JSON-ready kernel params dict (`sample_kernel`), the normalized float64 kernel
(`build_kernel`), the blurred float32 image (`filter2d`) and the kernel's Gaussian-sigma equivalent.

Formulas follow BasicSR's `degradations.py`: with the covariance ``S = R(theta) diag(sx^2, sy^2) R^T`` and
``q = [x y] S^-1 [x y]^T`` on an integer grid centred on the kernel, Gaussian ``exp(-q/2)``, generalized
``exp(-q^beta/2)``, plateau ``1/(1 + q^beta)``, sinc ``wc J1(wc r) / (2 pi r)`` (circular low-pass).
Kernels are built at their recorded size (7..21) instead of zero-padded to 21: the result is the same.
One deliberate difference: a shape parameter beta is drawn half below and half above 1 only when 1 lies
strictly inside its range (BasicSR does it always, so a plateau beta in [1, 2] is exactly 1 half the time).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from scipy import signal, special

from pipeline.degrade.recipe import check_range

GAUSSIAN_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KernelKind = Literal[
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc"
]


def _check_bounds(bounds: tuple[float, float], name: str, floor: float, ceil: float) -> None:
    if not floor <= bounds[0] <= bounds[1] <= ceil:
        raise ValueError(f"{name}={bounds} must satisfy {floor} <= low <= high <= {ceil}")


class BlurConfig(BaseModel):
    """Ranges and probabilities of one blur stage. Defaults: Real-ESRGAN's first stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_kinds: tuple[str, ...] = GAUSSIAN_KINDS
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1  # chance the stage uses a sinc kernel instead of the Gaussian family
    sigma_range: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape
    sinc_small_below: int = 13  # kernels smaller than this use the narrower cutoff range
    sinc_omega_small: tuple[float, float] = (math.pi / 3, math.pi)
    sinc_omega_large: tuple[float, float] = (math.pi / 5, math.pi)

    @model_validator(mode="after")
    def _valid(self) -> BlurConfig:
        if not self.kernel_sizes or any(s < 3 or s % 2 == 0 or s > 41 for s in self.kernel_sizes):
            raise ValueError(f"kernel_sizes={self.kernel_sizes} must be odd sizes in 3..41")
        unknown = set(self.kernel_kinds) - set(GAUSSIAN_KINDS)
        if unknown or len(self.kernel_kinds) != len(self.kernel_probs):
            raise ValueError(
                f"kernel_kinds must come from {GAUSSIAN_KINDS}, one prob each; got {self.kernel_kinds}"
            )
        if any(p < 0 for p in self.kernel_probs) or abs(sum(self.kernel_probs) - 1.0) > 1e-6:
            raise ValueError(f"kernel_probs={self.kernel_probs} must be >= 0 and sum to 1")
        _check_bounds((self.sinc_prob, self.sinc_prob), "sinc_prob", 0.0, 1.0)
        _check_bounds(self.sigma_range, "sigma_range", 1e-3, 20.0)
        _check_bounds(self.betag_range, "betag_range", 0.05, 10.0)
        _check_bounds(self.betap_range, "betap_range", 0.05, 10.0)
        _check_bounds(self.sinc_omega_small, "sinc_omega_small", 1e-3, math.pi)
        _check_bounds(self.sinc_omega_large, "sinc_omega_large", 1e-3, math.pi)
        return self

    def sinc_omega_range(self, size: int) -> tuple[float, float]:
        return self.sinc_omega_small if size < self.sinc_small_below else self.sinc_omega_large


class KernelParams(BaseModel):
    """One recorded kernel. Gaussian family: sigma_x, sigma_y, theta (+ beta for generalized/plateau);
    sinc: omega_c (cutoff in radians per pixel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: KernelKind
    size: int
    sigma_x: float | None = None
    sigma_y: float | None = None
    theta: float | None = None
    beta: float | None = None
    omega_c: float | None = None

    @model_validator(mode="after")
    def _fields_match_kind(self) -> KernelParams:
        if self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"kernel size must be odd and >= 3, got {self.size}")
        needed = {"omega_c"} if self.kind == "sinc" else {"sigma_x", "sigma_y", "theta"}
        if self.kind.startswith(("generalized", "plateau")):
            needed.add("beta")
        present = {
            f for f in ("sigma_x", "sigma_y", "theta", "beta", "omega_c") if getattr(self, f) is not None
        }
        if present != needed:
            raise ValueError(
                f"kernel kind {self.kind} needs exactly the fields {sorted(needed)}, got {sorted(present)}"
            )
        return self


def _sample_beta(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if low < 1.0 < high:
        return float(rng.uniform(low, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, high))
    return float(rng.uniform(low, high))


def sample_sinc(
    rng: np.random.Generator, sizes: tuple[int, ...], omega: tuple[float, float]
) -> dict[str, Any]:
    size = int(sizes[rng.integers(len(sizes))])
    return {"kind": "sinc", "size": size, "omega_c": float(rng.uniform(*omega))}


def sample_kernel(rng: np.random.Generator, config: BlurConfig) -> dict[str, Any]:
    """Draw one kernel as Real-ESRGAN does: size, then sinc or a Gaussian-family kind and its shape."""
    size = int(config.kernel_sizes[rng.integers(len(config.kernel_sizes))])
    if rng.random() < config.sinc_prob:
        return {"kind": "sinc", "size": size, "omega_c": float(rng.uniform(*config.sinc_omega_range(size)))}
    kind = config.kernel_kinds[int(rng.choice(len(config.kernel_kinds), p=config.kernel_probs))]
    sigma_x = float(rng.uniform(*config.sigma_range))
    if kind.endswith("aniso"):
        sigma_y, theta = float(rng.uniform(*config.sigma_range)), float(rng.uniform(-math.pi, math.pi))
    else:
        sigma_y, theta = sigma_x, 0.0
    params: dict[str, Any] = {
        "kind": kind,
        "size": size,
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "theta": theta,
    }
    if kind.startswith("generalized"):
        params["beta"] = _sample_beta(rng, config.betag_range)
    elif kind.startswith("plateau"):
        params["beta"] = _sample_beta(rng, config.betap_range)
    return params


def check_kernel(kernel: KernelParams, config: BlurConfig, what: str, recipe_name: str) -> None:
    """Raise ValueError when a recorded kernel lies outside what `config` can produce."""
    if kernel.size not in config.kernel_sizes:
        raise ValueError(
            f"recipe {recipe_name}: {what}.size={kernel.size} is not one of {config.kernel_sizes}"
        )
    if kernel.kind == "sinc":
        check_range(kernel.omega_c, config.sinc_omega_range(kernel.size), f"{what}.omega_c", recipe_name)
        return
    if kernel.kind not in config.kernel_kinds:
        raise ValueError(
            f"recipe {recipe_name}: {what}.kind={kernel.kind} is not one of {config.kernel_kinds}"
        )
    check_range(kernel.sigma_x, config.sigma_range, f"{what}.sigma_x", recipe_name)
    check_range(kernel.sigma_y, config.sigma_range, f"{what}.sigma_y", recipe_name)
    check_range(kernel.theta, (-math.pi, math.pi), f"{what}.theta", recipe_name)
    if not kernel.kind.endswith("aniso") and (kernel.sigma_y != kernel.sigma_x or kernel.theta != 0.0):
        raise ValueError(f"recipe {recipe_name}: isotropic {what} needs sigma_y == sigma_x and theta == 0")
    if kernel.beta is not None:
        bounds = config.betag_range if kernel.kind.startswith("generalized") else config.betap_range
        check_range(kernel.beta, bounds, f"{what}.beta", recipe_name)


def build_kernel(kernel: KernelParams) -> np.ndarray:
    """The normalized (sum 1) float64 kernel of shape (size, size) described by `kernel`."""
    half = kernel.size // 2
    axis = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(axis, axis)
    if kernel.kind == "sinc":
        radius = np.hypot(xx, yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            taps = kernel.omega_c * special.j1(kernel.omega_c * radius) / (2.0 * np.pi * radius)
        taps[half, half] = kernel.omega_c**2 / (4.0 * np.pi)
        return taps / taps.sum()
    cos_t, sin_t = math.cos(kernel.theta), math.sin(kernel.theta)
    rotation = np.array([[cos_t, -sin_t], [sin_t, cos_t]])
    covariance = rotation @ np.diag([kernel.sigma_x**2, kernel.sigma_y**2]) @ rotation.T
    inv = np.linalg.inv(covariance)
    quad = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    if kernel.kind.startswith("generalized"):
        taps = np.exp(-0.5 * np.power(quad, kernel.beta))
    elif kernel.kind.startswith("plateau"):
        taps = 1.0 / (np.power(quad, kernel.beta) + 1.0)
    else:
        taps = np.exp(-0.5 * quad)
    return taps / taps.sum()


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate an HxWxC float32 image with a 2-D kernel, reflect padding (as BasicSR's filter2D).

    FFT-based, so a 21x21 kernel on a megapixel costs tens of milliseconds instead of seconds.
    """
    half_y, half_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(img, ((half_y, half_y), (half_x, half_x), (0, 0)), mode="reflect")
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], dtype=img.dtype)[:, :, None]
    return signal.fftconvolve(padded, flipped, mode="valid", axes=(0, 1)).astype(img.dtype, copy=False)


def sigma_equivalent(kernel: KernelParams) -> float:
    """Gaussian sigma (pixels) a kernel blurs like.

    Gaussian family: the sigma of the Gaussian with the same second moment, ``sqrt((var_x + var_y) / 2)``
    of the normalized kernel (exact sigma for an untruncated Gaussian). Sinc (negative lobes, moment not
    meaningful): the Gaussian whose frequency response falls to one half at the same cutoff,
    ``sqrt(2 ln 2) / omega_c``.
    """
    if kernel.kind == "sinc":
        return math.sqrt(2.0 * math.log(2.0)) / kernel.omega_c
    taps = build_kernel(kernel)
    half = kernel.size // 2
    axis = np.arange(-half, half + 1, dtype=np.float64)
    var_y = float(np.sum(taps.sum(axis=1) * axis**2))
    var_x = float(np.sum(taps.sum(axis=0) * axis**2))
    return math.sqrt((var_x + var_y) / 2.0)
