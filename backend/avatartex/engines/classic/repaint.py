"""Stage 3, classic engine: put the portrait's fine detail back, then apply the style's filter.

* Detail transfer: the portrait is resampled into the atlas (``ctx.portrait_coords``), and the
  finest wavelet bands (PyWavelets) of its difference to the texture are added where the portrait
  backs the texture. Moles, freckles, pores and lip edges that resampling and the smooth steps
  before softened come back, at the de-lit texture's brightness (the portrait's detail is scaled by
  the local texture/portrait ratio so the photo's shading does not come back with it).
* Style filters (``style.classic["filter"]``): ``none`` (photoreal), ``painterly`` (Kuwahara +
  oriented brush texture + palette shift), ``toon`` (edge-preserving flattening, k-means colour
  quantisation in CIELAB, dark outlines), ``comic`` (flat colours, XDoG ink lines, halftone dots).

Every filter runs per chart with circular padding in the band (``filters.per_chart``), so the back
seam shows no edge. ``ctx.strength`` blends the filtered result with the unfiltered one.
"""

from __future__ import annotations

import cv2
import numpy as np
import pywt

from ... import atlas_filters as filters
from ...imaging import luminance, sample_image
from ..base import AtlasTexture, Stage, StageContext

_WAVELET = "db2"


def wavelet_detail(image: np.ndarray, levels: int, rows: int) -> np.ndarray:
    """The part of ``image`` (S, S, C) in the finest ``levels`` wavelet detail bands, per chart."""
    margin = 4 * 2**levels

    def detail(part: np.ndarray, wrap: bool) -> np.ndarray:
        coeffs = pywt.wavedec2(part, _WAVELET, mode="symmetric", level=levels, axes=(0, 1))
        coeffs[0] = np.zeros_like(coeffs[0])
        rec = pywt.waverec2(coeffs, _WAVELET, mode="symmetric", axes=(0, 1))
        return rec[: part.shape[0], : part.shape[1]].astype(np.float32)

    return filters.per_chart(detail, image, rows, margin)


def transfer_detail(color: np.ndarray, conf: np.ndarray, ctx: StageContext, amount: float) -> np.ndarray:
    """Add the portrait's fine wavelet detail where the portrait backs the texture."""
    atlas = ctx.atlas
    coords = ctx.portrait_coords
    portrait = ctx.portrait
    if amount <= 0 or coords is None or portrait is None:
        return color
    valid = np.isfinite(coords).all(axis=-1) & atlas.mask
    if not valid.any():
        return color
    rows = atlas.band_rows
    sampled = sample_image(portrait, coords, interpolation="cubic")
    weight = (valid * conf).astype(np.float32)
    sigma = max(2.0 * atlas.size / 1024, 1.0)
    # Local brightness ratio texture/portrait: the texture is de-lit, the portrait is not.
    sampled = np.where(valid[..., None], sampled, color)
    low = filters.gaussian(np.concatenate([color, sampled], axis=-1), sigma, rows)
    low_t, low_p = low[..., :3], low[..., 3:]
    ratio = np.clip((low_t + 1e-3) / (low_p + 1e-3), 0.25, 4.0)
    difference = np.where(valid[..., None], sampled * ratio - color, 0.0).astype(np.float32)
    # Pores and freckles live in the finest two bands, brows and lip edges one or two further.
    levels = int(np.clip(round(np.log2(atlas.size / 128)), 2, 4))
    detail = wavelet_detail(difference, levels, rows)
    return color + detail * (np.float32(amount) * weight * weight)[..., None]


def edge_preserving(image: np.ndarray, rows: int, sigma_space: float, sigma_color: float) -> np.ndarray:
    """Domain-transform edge-preserving smoothing (flattens skin, keeps eyes/brows/lip edges)."""
    margin = int(np.ceil(3 * sigma_space))

    def smooth(part: np.ndarray, wrap: bool) -> np.ndarray:
        return cv2.ximgproc.dtFilter(
            part, part, sigma_space, sigma_color, mode=cv2.ximgproc.DTF_RF, numIters=3
        )

    return filters.per_chart(smooth, np.ascontiguousarray(image, np.float32), rows, margin)


def quantise_colors(
    image: np.ndarray, mask: np.ndarray, k: int, lightness_weight: float, saturation: float
) -> tuple[np.ndarray, np.ndarray]:
    """k-means colour quantisation in CIELAB (lightness weighted up so shading becomes bands).

    Returns the quantised image and the label map. Deterministic: the centroids start at
    evenly spaced lightness quantiles of an evenly spread sample.
    """
    lab = cv2.cvtColor(np.clip(image, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    scale = np.array([lightness_weight, saturation, saturation], np.float32)
    feat = lab.reshape(-1, 3) * scale
    sample = feat[filters.subsample(mask if mask.any() else np.ones_like(mask), 8_000)]
    order = np.argsort(sample[:, 0])
    centroids = sample[order[((np.arange(k) + 0.5) / k * len(order)).astype(int)]].copy()
    for _ in range(10):
        labels = np.argmin(((sample[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            members = sample[labels == j]
            if len(members):
                centroids[j] = members.mean(axis=0)
    # Nearest centroid for every texel: argmin |x - c|^2 = argmin (|c|^2 - 2 x.c).
    labels = np.argmin((centroids**2).sum(-1)[None] - 2 * feat @ centroids.T, axis=1)
    palette_lab = (centroids / scale).reshape(k, 1, 3).astype(np.float32)
    palette = np.clip(cv2.cvtColor(palette_lab, cv2.COLOR_Lab2RGB).reshape(k, 3), 0, 1)
    return palette[labels].reshape(image.shape).astype(np.float32), labels.reshape(image.shape[:2])


def _gradient_magnitude(lum: np.ndarray, rows: int) -> np.ndarray:
    def sobel(part: np.ndarray, wrap: bool) -> np.ndarray:
        gx = cv2.Sobel(part, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(part, cv2.CV_32F, 0, 1, ksize=3)
        return np.sqrt(gx * gx + gy * gy) / 8

    return filters.per_chart(sobel, lum, rows, 2)


def _saturate(image: np.ndarray, saturation: float, warmth: float = 0.0) -> np.ndarray:
    lum = luminance(image)[..., None]
    out = lum + (image - lum) * np.float32(saturation)
    return out + np.array([warmth, warmth * 0.3, -warmth], np.float32)


def kuwahara(image: np.ndarray, radius: int, rows: int) -> np.ndarray:
    """Kuwahara filter: each texel takes the mean of its least-varying quadrant (flat paint patches)."""

    def filt(part: np.ndarray, wrap: bool) -> np.ndarray:
        lum = luminance(part)
        stack = np.concatenate([part, (lum * lum)[..., None]], axis=-1)
        size = (radius + 1, radius + 1)
        best_mean = np.zeros_like(part)
        best_var = np.full(part.shape[:2], np.inf, np.float32)
        for anchor in ((0, 0), (radius, 0), (0, radius), (radius, radius)):
            m = cv2.boxFilter(
                stack, -1, size, anchor=anchor, normalize=True, borderType=cv2.BORDER_REFLECT_101
            )
            var = m[..., 3] - luminance(m[..., :3]) ** 2
            better = var < best_var
            best_var = np.where(better, var, best_var)
            best_mean = np.where(better[..., None], m[..., :3], best_mean)
        return best_mean

    return filters.per_chart(filt, np.ascontiguousarray(image, np.float32), rows, radius + 1)


def brush_texture(lum: np.ndarray, rows: int, length: int, seed: int) -> np.ndarray:
    """Unit-variance stroke texture: noise smeared along the image's edges (4 orientations)."""
    rng = np.random.default_rng(seed + 7919)
    noise = rng.standard_normal(lum.shape, dtype=np.float32)
    lumf = lum.astype(np.float32)

    def tensor(part: np.ndarray, wrap: bool) -> np.ndarray:
        gx = cv2.Sobel(part, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(part, cv2.CV_32F, 0, 1, ksize=3)
        return np.stack([gx * gx, gx * gy, gy * gy], axis=-1)

    j = filters.gaussian(filters.per_chart(tensor, lumf, rows, 2), 3.0, rows)
    # Strokes run along edges, i.e. perpendicular to the dominant gradient.
    angle = 0.5 * np.arctan2(2 * j[..., 1], j[..., 0] - j[..., 2]) + np.pi / 2
    bins = np.round(angle / (np.pi / 4)).astype(np.int64) % 4
    out = np.zeros_like(lumf)
    half = length // 2
    for b in range(4):
        kernel = np.zeros((length, length), np.float32)
        dx, dy = np.cos(b * np.pi / 4), np.sin(b * np.pi / 4)
        for t in np.linspace(-half, half, 2 * length):
            kernel[int(round(half + t * dy)), int(round(half + t * dx))] = 1.0
        kernel /= kernel.sum()

        def smear(part: np.ndarray, wrap: bool, kernel: np.ndarray = kernel) -> np.ndarray:
            return cv2.filter2D(part, -1, kernel, borderType=cv2.BORDER_REFLECT_101)

        out = np.where(bins == b, filters.per_chart(smear, noise, rows, half + 1), out)
    return out / max(float(out.std()), 1e-6)


def painterly(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Kuwahara patches, brush strokes along the forms and a warmer, more saturated palette."""
    p = ctx.style.classic
    rows = ctx.atlas.band_rows
    scale = ctx.atlas.size / 1024
    radius = max(2, int(round(p.get("kuwahara_radius", 5) * scale)))
    out = kuwahara(image, radius, rows)
    out = filters.gaussian(out, 0.6 * scale, rows)
    length = max(5, int(round(p.get("brush_length", 11) * scale)) | 1)
    brush = brush_texture(luminance(out), rows, length, ctx.seed)
    out = out * (1.0 + np.float32(p.get("brush_amount", 0.06)) * brush)[..., None]
    return _saturate(out, p.get("saturation", 1.15), p.get("warmth", 0.03))


def toon(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Cel shading: edge-preserving flattening, a few CIELAB colour bands, thin dark outlines."""
    p = ctx.style.classic
    rows = ctx.atlas.band_rows
    scale = ctx.atlas.size / 1024
    smooth = edge_preserving(
        image, rows, p.get("smooth_sigma_space", 12.0) * scale, p.get("smooth_sigma_color", 0.12)
    )
    flat, _ = quantise_colors(
        smooth,
        ctx.atlas.mask,
        int(p.get("colors", 8)),
        p.get("lightness_weight", 1.5),
        p.get("saturation", 1.25),
    )
    outline = float(p.get("outline", 0.8))
    if outline > 0:
        edges = _gradient_magnitude(luminance(smooth), rows) > p.get("outline_threshold", 0.09)
        lum = luminance(flat)
        dark = flat.reshape(-1, 3)[np.argmin(lum)] * 0.25
        flat = np.where(edges[..., None], (1 - outline) * flat + outline * dark, flat)
    return flat


def comic(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Comic inking: flat colours, XDoG ink lines and halftone dots in the shadows."""
    p = ctx.style.classic
    rows = ctx.atlas.band_rows
    s = ctx.atlas.size
    scale = s / 1024
    smooth = edge_preserving(
        image, rows, p.get("smooth_sigma_space", 16.0) * scale, p.get("smooth_sigma_color", 0.15)
    )
    flat, _ = quantise_colors(
        smooth,
        ctx.atlas.mask,
        int(p.get("colors", 6)),
        p.get("lightness_weight", 1.2),
        p.get("saturation", 1.3),
    )
    lum = luminance(smooth)
    # Halftone: a dot screen whose period divides the atlas width, so it wraps at the back seam.
    amount = float(p.get("halftone_amount", 0.5))
    if amount > 0:
        period = s / max(1, round(s / max(p.get("halftone_period", 8) * scale, 3.0)))
        wave = np.cos(2 * np.pi * np.arange(s, dtype=np.float32) / np.float32(period))
        screen = 0.5 + 0.25 * (wave[None, :] + wave[:, None])
        darkness = np.clip((0.45 - lum) / 0.3, 0.0, 1.0)
        dots = screen < 0.8 * darkness
        flat = np.where(dots[..., None], flat * np.float32(1 - amount), flat)
    # XDoG: ink where the image is darker than its surround by more than the threshold.
    sigma = p.get("ink_sigma", 1.4) * scale
    dog = filters.gaussian(lum, sigma, rows) - filters.gaussian(lum, 1.6 * sigma, rows)
    ink = (dog < -p.get("ink_threshold", 0.012)).astype(np.uint8)
    width = int(p.get("ink_width", 1))
    if width > 0:
        kernel = np.ones((3, 3), np.uint8)

        def dilate(part: np.ndarray, wrap: bool) -> np.ndarray:
            return cv2.dilate(part, kernel, iterations=width)

        ink = filters.per_chart(dilate, ink, rows, width + 1)
    return np.where(ink.astype(bool)[..., None], np.array([0.04, 0.035, 0.05], np.float32), flat)


STYLE_FILTERS = {"painterly": painterly, "toon": toon, "comic": comic}


class ClassicRepaint(Stage):
    """Wavelet detail transfer from the portrait, then the style's filter blended by ``ctx.strength``."""

    name = "repaint"
    engine = "classic"

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the repainted texture; the confidence is passed through."""
        style = ctx.style
        strength = float(np.clip(ctx.strength, 0.0, 1.0))
        conf = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0) * ctx.atlas.mask
        color = np.clip(np.nan_to_num(np.asarray(texture.color, np.float32)), 0.0, 1.0)

        ctx.check_cancel()
        ctx.progress(0.0, "transferring portrait detail")
        out = transfer_detail(color, conf, ctx, style.classic_at("detail", 1.0, strength))
        out = np.clip(out, 0.0, 1.0)

        ctx.check_cancel()
        name = str(style.classic_value("filter", "none"))
        if name != "none" and strength > 0:
            if name not in STYLE_FILTERS:
                ctx.warnings.append(f"unknown classic filter {name!r} in style {style.name!r}; none applied")
            else:
                ctx.progress(0.4, f"{name} filter")
                styled = np.clip(STYLE_FILTERS[name](out, ctx), 0.0, 1.0)
                # (1 - s) a + s b is exactly b at s = 1 (the toon palette stays a palette).
                out = (1.0 - strength) * out + strength * styled
        ctx.progress(1.0, "repaint done")
        return AtlasTexture(out.astype(np.float32), np.asarray(texture.confidence, np.float32).copy())
