"""Stage 1, classic engine: fill what the portrait did not see, without weights, on any CPU.

Three steps, each weaker than the one before it and used only where the one before had nothing:
symmetric completion (the other side of the face), a smooth multi-scale fill (push-pull, circular
around the back of the head), and synthetic skin grain whose spectrum is measured on the seen skin.
Texels the portrait backs keep their colour: ``out = conf * in + (1 - conf) * fill`` exactly.
"""

from __future__ import annotations

import numpy as np

from ... import atlas_filters as filters
from ...imaging import luminance
from ..base import AtlasTexture, Stage, StageContext

_BANDS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0))
"""Gaussian sigmas (texels) bounding the detail bands; seen and synthetic bands are measured alike."""


def _band_pass(image: np.ndarray, rows: int) -> list[np.ndarray]:
    """Difference-of-Gaussian bands of a single-channel image, finest first."""
    blurred = {0.0: image}
    for lo, hi in _BANDS:
        for sigma in (lo, hi):
            if sigma not in blurred:
                blurred[sigma] = filters.gaussian(image, sigma, rows)
    return [blurred[lo] - blurred[hi] for lo, hi in _BANDS]


def synthesize_grain(color: np.ndarray, confidence: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Skin grain (S, S, 3) for the filled region: noise whose band energies match the seen skin's.

    The smooth fill has no high frequencies; real skin has pores and mottling. The seen region's
    luminance is split into difference-of-Gaussian bands; white noise (seeded by ``ctx.seed``) is
    split the same way and each band scaled to the seen band's robust standard deviation (median
    absolute deviation, so eyes, brows and hair edges do not count as grain). The grain is tinted by
    the skin's mean colour ratio, as skin detail is mostly a change of brightness.
    """
    atlas = ctx.atlas
    rows = atlas.band_rows
    seen = atlas.mask & (confidence > 0.8)
    if seen.sum() < 64:
        return np.zeros_like(color)
    lum = luminance(color)
    rng = np.random.default_rng(ctx.seed)
    noise = rng.standard_normal(lum.shape, dtype=np.float32)
    sample = filters.subsample(seen, 50_000)
    grain = np.zeros_like(lum)
    for seen_band, noise_band in zip(_band_pass(lum, rows), _band_pass(noise, rows), strict=True):
        target = filters.robust_std(seen_band.reshape(-1)[sample])
        have = filters.robust_std(noise_band.reshape(-1)[sample])
        if have > 0:
            grain += noise_band * np.float32(target / have)
    flat = color.reshape(-1, 3)[sample]
    tint = flat.mean(axis=0) / max(float(lum.reshape(-1)[sample].mean()), 1e-3)
    return grain[..., None] * tint.astype(np.float32)


class ClassicInpaint(Stage):
    """Fill low-confidence texels: mirror, push-pull, then grain; confident texels stay as they were."""

    name = "inpaint"
    engine = "classic"

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the completed texture; its confidence is the input's (what the portrait backs)."""
        atlas = ctx.atlas
        style = ctx.style
        # Unseen texels may hold NaN from the projection; they have no weight, but 0 * NaN is NaN.
        color = np.nan_to_num(np.asarray(texture.color, np.float32), nan=0.0)
        conf = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0) * atlas.mask

        ctx.check_cancel()
        ctx.progress(0.0, "symmetric completion and multi-scale fill")
        symmetry = style.classic_at("symmetry", 1.0, ctx.strength)
        filled, sym_conf = filters.smooth_fill(color, conf, atlas, symmetry)

        ctx.check_cancel()
        ctx.progress(0.5, "synthesising skin grain")
        grain_amount = style.classic_at("grain", 1.0, ctx.strength)
        if grain_amount > 0:
            grain = synthesize_grain(color, conf, ctx)
            # Grain only where neither the portrait nor the mirror brought real detail.
            filled = filled + grain * (np.float32(grain_amount) * (1.0 - sym_conf))[..., None]
        filled = np.clip(filled, 0.0, 1.0).astype(np.float32)

        ctx.check_cancel()
        # Exactly the input where conf == 1 (1 * x + 0 * y == x in floating point), outside the
        # mask the fill, so that bilinear lookups at chart borders see plausible colours.
        c = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0)[..., None]
        out = c * color + (1.0 - c) * filled
        ctx.progress(1.0, "inpaint done")
        return AtlasTexture(out.astype(np.float32), np.asarray(texture.confidence, np.float32).copy())
