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

import weakref

import cv2
import numpy as np
import pywt

from ... import atlas_filters as filters
from ...atlas import AtlasGeometry, directions
from ...features import Stroke, arc, brow_arc, draw_strokes, fill_polygon, taper
from ...imaging import from_lab, luminance, put_rows, sample_image, smoothstep, take_rows, to_lab, unit_range
from ...regions import plausible_iris
from ..base import AtlasTexture, Stage, StageContext

_WAVELET = "db2"


def transfer_detail(color: np.ndarray, conf: np.ndarray, ctx: StageContext, amount: float) -> np.ndarray:
    """Add the portrait's fine wavelet detail where the portrait backs the texture.

    Only texels the portrait backs (``conf`` > 0, about a fifth of the atlas) receive detail, and the
    detail of a texel depends on the texture and portrait within a fixed reach of it: each chart is
    worked on in the box around its backed texels grown by that reach (``_work_box``), padded like
    the whole chart wherever the box meets the chart's edge, so the result is the whole chart's.
    """
    atlas = ctx.atlas
    coords = ctx.portrait_coords
    portrait = ctx.portrait
    if amount <= 0 or coords is None or portrait is None:
        return color
    valid = np.isfinite(coords[..., 0]) & np.isfinite(coords[..., 1]) & atlas.mask
    if not valid.any():
        return color
    weight = (valid * ctx.photo_part(conf)).astype(np.float32)
    sigma = max(2.0 * atlas.size / 1024, 1.0)
    # Pores and freckles live in the finest two bands, brows and lip edges one or two further.
    levels = int(np.clip(round(np.log2(atlas.size / 128)), 2, 4))
    out = color.copy()
    for chart, wrap in filters.charts(color, atlas.band_rows):
        box = _work_box(weight[chart] > 0, _detail_reach(sigma, levels), 2**levels, wrap)
        if box is None:
            continue
        rows, cols, edges = box
        window = (slice(chart.start + rows.start, chart.start + rows.stop), cols)
        w = weight[window]
        delight = None if ctx.delight is None else ctx.delight[window]
        detail = _box_detail(
            color[window], portrait, coords[window], valid[window], delight, sigma, levels, edges, wrap
        )
        out[window] = color[window] + detail * (np.float32(amount) * w * w)[..., None]
    return out


def _detail_reach(sigma: float, levels: int) -> int:
    """Texels around a texel whose texture and portrait its detail depends on: the wavelets' reach
    (4 * 2**levels, the padding their transform of a whole chart needs) plus the brightness blur's
    kernel radius (cv2 uses 4 sigma)."""
    return 4 * 2**levels + int(np.ceil(4 * sigma)) + 1


def _work_box(
    need: np.ndarray, reach: int, align: int, wrap: bool
) -> tuple[slice, slice, tuple[bool, bool, bool]] | None:
    """Rows and columns of a chart around the texels ``need`` grown by ``reach``, the first row and
    column a multiple of ``align`` (the wavelets' dyadic grid then matches the whole chart's), and
    which edges (top, bottom, sides) of the chart the box reaches, where the chart's padding applies.
    A band box that would reach one side takes the full width (its columns wrap around)."""
    if not need.any():
        return None
    h, w = need.shape
    r = np.flatnonzero(need.any(axis=1))
    c = np.flatnonzero(need.any(axis=0))
    r0 = max(0, (int(r[0]) - reach) // align * align)
    r1 = min(h, int(r[-1]) + 1 + reach)
    c0 = max(0, (int(c[0]) - reach) // align * align)
    c1 = min(w, int(c[-1]) + 1 + reach)
    sides = c0 == 0 or c1 == w
    if sides:
        c0, c1 = 0, w
    return slice(r0, r1), slice(c0, c1), (r0 == 0, r1 == h, sides)


def _pad_edges(image: np.ndarray, width: int, edges: tuple[bool, bool, bool], wrap: bool) -> np.ndarray:
    """``image`` padded by ``width`` on the chart edges it reaches, as ``filters.pad`` pads the chart."""
    top, bottom, sides = edges
    out = image
    if top or bottom:
        out = cv2.copyMakeBorder(
            out, width if top else 0, width if bottom else 0, 0, 0, cv2.BORDER_REFLECT_101
        ).reshape((out.shape[0] + width * (top + bottom),) + out.shape[1:])
    if sides:
        border = cv2.BORDER_WRAP if wrap else cv2.BORDER_REFLECT_101
        out = cv2.copyMakeBorder(out, 0, 0, width, width, border).reshape(
            (out.shape[0], out.shape[1] + 2 * width) + out.shape[2:]
        )
    return out


def _unpad_edges(image: np.ndarray, width: int, edges: tuple[bool, bool, bool]) -> np.ndarray:
    top, bottom, sides = edges
    h, w = image.shape[:2]
    return image[
        width if top else 0 : h - (width if bottom else 0),
        width if sides else 0 : w - (width if sides else 0),
    ]


def _box_detail(
    color: np.ndarray,
    portrait: np.ndarray,
    coords: np.ndarray,
    valid: np.ndarray,
    delight: np.ndarray | None,
    sigma: float,
    levels: int,
    edges: tuple[bool, bool, bool],
    wrap: bool,
) -> np.ndarray:
    """The portrait's wavelet detail over one box of a chart (``transfer_detail``). ``delight``:
    the latent stage's de-lighting factor over the box (``StageContext.delight``), applied to the
    photo first so that the creases' shading it took out does not come back as detail."""
    sampled = color.copy()
    # The portrait is read only where the atlas texel sees it (the rest keeps the texture's colour).
    put_rows(sampled, valid, sample_image(portrait, take_rows(coords, valid), interpolation="cubic"))
    if delight is not None:
        np.multiply(sampled, delight, out=sampled, where=valid[..., None])
    # Local brightness ratio texture/portrait: the texture is de-lit, the portrait is not.
    margin = int(np.ceil(3 * sigma)) + 1
    stack = _pad_edges(np.concatenate([color, sampled], axis=-1), margin, edges, wrap)
    low = cv2.GaussianBlur(stack, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(stack.shape)
    low = _unpad_edges(low, margin, edges)
    ratio = np.clip((low[..., :3] + 1e-3) / (low[..., 3:] + 1e-3), 0.25, 4.0)
    difference = np.where(valid[..., None], sampled * ratio - color, 0.0).astype(np.float32)
    margin = 4 * 2**levels
    padded = _pad_edges(difference, margin, edges, wrap)
    return _unpad_edges(_wavelet_part(padded, levels), margin, edges)


def _wavelet_part(image: np.ndarray, levels: int) -> np.ndarray:
    """The part of ``image`` in its finest ``levels`` wavelet detail bands (no padding)."""
    coeffs = pywt.wavedec2(image, _WAVELET, mode="symmetric", level=levels, axes=(0, 1))
    coeffs[0] = np.zeros_like(coeffs[0])
    rec = pywt.waverec2(coeffs, _WAVELET, mode="symmetric", axes=(0, 1))
    return rec[: image.shape[0], : image.shape[1]].astype(np.float32)


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


def generalised_kuwahara(image: np.ndarray, radius: int, rows: int, sharpness: float = 8.0) -> np.ndarray:
    """Papari's generalised Kuwahara filter: the mean of 8 smooth overlapping sectors around each
    texel, weighted by 1 / variance^(sharpness / 2): flat paint inside a form, crisp edges between
    forms, and none of the blocky quadrant artefacts of the classic filter."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float32)
    dist = np.sqrt(xx * xx + yy * yy)
    radial = np.exp(-0.5 * (dist / (0.5 * radius)) ** 2) * (dist <= radius + 0.5)
    angle = np.arctan2(yy, xx)
    kernels = []
    for i in range(8):
        sector = ((1 + np.cos(angle - i * np.pi / 4)) / 2) ** 8
        sector[radius, radius] = 1.0
        k = radial * sector
        kernels.append((k / k.sum()).astype(np.float32))

    def filt(part: np.ndarray, wrap: bool) -> np.ndarray:
        lum = luminance(part)
        stack = np.concatenate([part, (lum * lum)[..., None]], axis=-1)  # 4 channels: one cv2 pass
        means, logw = [], []
        for k in kernels:
            m = cv2.filter2D(stack, -1, k, borderType=cv2.BORDER_REFLECT_101).reshape(stack.shape)
            var = np.maximum(m[..., 3] - luminance(m[..., :3]) ** 2, 0.0)
            means.append(m[..., :3])
            logw.append(-0.5 * sharpness * np.log(var + 1e-6))
        logw = np.stack(logw)
        w = np.exp(logw - logw.max(axis=0, keepdims=True))
        return (np.stack(means) * w[..., None]).sum(0) / w.sum(0)[..., None]

    return filters.per_chart(filt, np.ascontiguousarray(image, np.float32), rows, radius + 1)


def _structure_tensor(lum: np.ndarray, rows: int) -> np.ndarray:
    """(H, W, 3) the structure tensor (gx², gx·gy, gy²) of ``lum``, pooled per chart (sigma 3)."""

    def tensor(part: np.ndarray, wrap: bool) -> np.ndarray:
        gx = cv2.Sobel(part, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(part, cv2.CV_32F, 0, 1, ksize=3)
        return np.stack([gx * gx, gx * gy, gy * gy], axis=-1)

    return filters.gaussian(filters.per_chart(tensor, lum.astype(np.float32), rows, 2), 3.0, rows)


def _typical(j: np.ndarray) -> float:
    """The median trace of a structure tensor where it is not zero: its ordinary strength."""
    trace = j[..., 0] + j[..., 2]
    return max(float(np.median(trace[trace > 1e-12])) if (trace > 1e-12).any() else 0.0, 1e-12)


FORM_WEIGHT = 3.0
"""How much the head's forms count against the image's own edges in ``_orientation_bins``, each
tensor taken against its ordinary strength."""


def _orientation_bins(lum: np.ndarray, rows: int, forms: np.ndarray | None = None) -> np.ndarray:
    """Per texel, which of 4 directions (0, 45, 90, 135 degrees) runs along the local edges; with
    ``forms`` (the head's forms' structure, ``form_flow``), along their lines where the image has no
    edge of its own (smooth skin), the image's tensor counted against its ordinary strength: strokes
    then follow the head's forms, not the skin's noise, which set them every way (a uniform swirl)."""
    j = _structure_tensor(lum, rows)
    if forms is not None:
        j = j / np.float32(_typical(j)) + forms
    # Strokes run along edges, i.e. perpendicular to the dominant gradient.
    angle = 0.5 * np.arctan2(2 * j[..., 1], j[..., 0] - j[..., 2]) + np.pi / 2
    return np.round(angle / (np.pi / 4)).astype(np.int64) % 4


def _line_kernel(length: int, direction: int) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    half = length // 2
    dx, dy = np.cos(direction * np.pi / 4), np.sin(direction * np.pi / 4)
    for t in np.linspace(-half, half, 2 * length):
        kernel[int(round(half + t * dy)), int(round(half + t * dx))] = 1.0
    return kernel / kernel.sum()


def flow_smear(image: np.ndarray, rows: int, length: int, forms: np.ndarray | None = None) -> np.ndarray:
    """``image`` averaged along its own edges' direction (4 directions), and the ``forms``' where it
    has none (``_orientation_bins``, ``form_flow``): paint pulled along the forms."""
    bins = _orientation_bins(luminance(image), rows, forms)
    out = np.zeros_like(image)
    for b in range(4):
        kernel = _line_kernel(length, b)

        def smear(part: np.ndarray, wrap: bool, kernel: np.ndarray = kernel) -> np.ndarray:
            return cv2.filter2D(part, -1, kernel, borderType=cv2.BORDER_REFLECT_101).reshape(part.shape)

        out = np.where((bins == b)[..., None], filters.per_chart(smear, image, rows, length // 2 + 1), out)
    return out


def brush_texture(
    lum: np.ndarray, rows: int, length: int, seed: int, forms: np.ndarray | None = None
) -> np.ndarray:
    """Unit-variance stroke texture: noise smeared along the image's edges (4 orientations), and the
    ``forms``' where it has none."""
    rng = np.random.default_rng(seed + 7919)
    noise = rng.standard_normal(lum.shape, dtype=np.float32)
    bins = _orientation_bins(lum, rows, forms)
    out = np.zeros_like(noise)
    for b in range(4):
        kernel = _line_kernel(length, b)

        def smear(part: np.ndarray, wrap: bool, kernel: np.ndarray = kernel) -> np.ndarray:
            return cv2.filter2D(part, -1, kernel, borderType=cv2.BORDER_REFLECT_101)

        out = np.where(bins == b, filters.per_chart(smear, noise, rows, length // 2 + 1), out)
    return out / max(float(out.std()), 1e-6)


def _saturate(image: np.ndarray, saturation: float, warmth: float = 0.0) -> np.ndarray:
    lum = luminance(image)[..., None]
    out = lum + (image - lum) * np.float32(saturation)
    return out + np.array([warmth, warmth * 0.3, -warmth], np.float32)


SKIN_CHROMA_KNEE = 40.0
"""CIELAB chroma over which a style's saturation adds a third of what it would to the skin's tone
(``styled_skin``). Skin reads C* 15-35 in most photos; a warm or faded print more (Grace Hopper's
cheek 45), which toon's 1.25 took to 55 and anime's to 58: a fake tan."""


def styled_skin(skin: np.ndarray, saturation: float, warmth: float = 0.0) -> np.ndarray:
    """The skin's tone (3,) saturated and warmed as a style's palette is (``_saturate``), its chroma
    over ``SKIN_CHROMA_KNEE`` raised by a third of the rest only, never under the tone's own."""
    skin = np.asarray(skin, np.float32)
    raised = np.clip(_saturate(skin[None], saturation, warmth)[0], 0.0, 1.0)
    lab, own = to_lab(raised), to_lab(skin)
    chroma, own_chroma = float(np.hypot(lab[1], lab[2])), float(np.hypot(own[1], own[2]))
    if chroma <= SKIN_CHROMA_KNEE:
        return raised
    kept = max(SKIN_CHROMA_KNEE + (chroma - SKIN_CHROMA_KNEE) / 3.0, min(own_chroma, chroma))
    lab[1:] *= np.float32(kept / chroma)
    return from_lab(lab).astype(np.float32)


# -- what the styles share: half-resolution work, the head's forms, clean colour regions -----------


def _half(image: np.ndarray, rows: int) -> tuple[np.ndarray, int]:
    """The atlas at half resolution (the colour work of every style runs there: 4x fewer texels)."""
    return filters.downsample(np.ascontiguousarray(image, np.float32), rows)


def _full(small: np.ndarray, small_rows: int, like: np.ndarray, rows: int) -> np.ndarray:
    return filters.upsample(small, small_rows, like.shape[:2], rows)


_FORMS: dict[int, tuple[weakref.ref, dict[str, np.ndarray]]] = {}


CAVITY_SIGMA_IOD = 0.2
"""Eye distances over which the surface is smoothed to measure its folds (``head_forms``'s cavity,
and the bake's for the texels the atlas does not hold: ``bake.StyleShadow``)."""


def _cavity(atlas: AtlasGeometry) -> np.ndarray:
    """(S, S) float32 how far each atlas texel's surface point lies below the surface around it
    (smoothed over CAVITY_SIGMA_IOD), eye distances: the mesh's own (``occlusion.MeshCavity``).
    Measured in the atlas's layout instead, the band's edge (mirrored by the blur) read a scanned
    bust's neck under each ear as a fold, and the styles drew a shadow band there that stopped in a
    straight edge where the band ends. 0 for an atlas not built from a mesh."""
    if atlas.cavity is None:
        return np.zeros(atlas.mask.shape, np.float32)
    scale = float(atlas.frame.scale)
    return atlas.cavity.at_texels(CAVITY_SIGMA_IOD * scale, atlas.tri_id, atlas.bary) / np.float32(scale)


FACING_DOWN_FADE = (-2.8, -3.6)
"""Head-frame heights (eye distances; the frame's origin is 0.1 above the eyes) between which a
surface facing down stops being a form of the head that casts a cel shadow. Under the chin and the
jaw (the chin at -1.9 to -2.0 on the scanned and the demo head, the jaw's underside to about -2.6)
it is the head's own; far below it is the cut of a bust (the scanned bust's bottom, -4.7, was 75 %
in shadow: a dark line, in comic a band of halftone dots, along the bust's bottom edge) or the
bottom of a neck. Heights of a face shorter than a typical one in eye distances (a head made wider:
its eyes further apart) are read stretched to a typical face's (``HeadFrame.stretch``): the scanned
bust made 1.3 times wider and 0.85 times as tall had its chest's notch at -2.9, and anime drew a red
V there."""


CUT_FADE_IOD = (0.1, 0.4)
"""Eye distances above the mesh's lowest point between which a surface facing down becomes a form
of the head: below, it is where the mesh was cut (the bottom of a neck, a bust's base), however
high that is. The stylised demo head's neck ends at -2.6, above ``FACING_DOWN_FADE``: its bottom's
cap was a disc of halftone dots, a dotted ring under the neck from the back."""


def head_part(heights: np.ndarray, lowest: float = -np.inf, stretch: float = 1.0) -> np.ndarray:
    """1 at head-frame heights above FACING_DOWN_FADE and ``CUT_FADE_IOD`` over the mesh's
    ``lowest`` height, fading to 0 below them; both read ``stretch`` times (``HeadFrame.stretch``)."""
    top, bottom = FACING_DOWN_FADE
    heights, lowest = np.asarray(heights) * stretch, lowest * stretch
    fade = np.clip((heights - bottom) / (top - bottom), 0.0, 1.0)
    low, high = CUT_FADE_IOD
    above_cut = np.clip((heights - lowest - low) / (high - low), 0.0, 1.0)
    return (fade * above_cut).astype(np.float32)


BEHIND_EARS_DEG = 120.0
"""Longitude (degrees from the face's forward direction) beyond which the surface is the back of the
head: no feature there, the ears at 90-105 on the scanned and the demo head. A fold shadow there
smaller than a form (``TONE_SHADOW_MIN_IOD2``) is a bump of the sculpt or the scan: the scanned
head's occipital groove (0.003-0.009 square eye distances) was a dark dash, in comic a dotted smudge,
on the back of its head; the demo head's nape under the skull (0.06-0.19) stays."""


def _lowest(atlas: AtlasGeometry) -> float:
    """The lowest head-frame height of the surface the atlas shows (-inf for an empty one), kept
    with the atlas geometry: the forms and every request's ``_keep_shadow`` read it."""
    if "lowest" not in atlas.cache:
        heights = atlas.frame.to_head(atlas.positions[atlas.mask])[:, 1]
        atlas.cache["lowest"] = float(heights.min()) if len(heights) else -np.inf
    return atlas.cache["lowest"]


def head_forms(atlas: AtlasGeometry) -> dict[str, np.ndarray]:
    """The head's own forms in the atlas, from the mesh alone (cached per atlas geometry).

    ``cavity``: how far the surface lies below its smoothed self along the normal, in eye distances
    (> 0 in eye sockets, under the nose and lips, in the ear's folds); ``down``: how much the surface
    faces down (under the chin, the jaw's underside; not far below the head); ``head``: 1 on the
    head, fading to 0 far below it (``head_part``); ``front``: 1 before the back of the head
    (``BEHIND_EARS_DEG``), 0 behind it. The styles paint their shadow shapes from these, so shading
    follows the head and not the photo's noise.
    """
    key = id(atlas)
    hit = _FORMS.get(key)
    if hit is not None and hit[0]() is atlas:
        return hit[1]
    points = atlas.frame.to_head(np.where(atlas.mask[..., None], atlas.positions, 0.0))
    head = head_part(points[..., 1], _lowest(atlas), atlas.frame.stretch) * atlas.mask
    front = (np.abs(directions(points)[0]) <= np.radians(BEHIND_EARS_DEG)).astype(np.float32)
    down = (-atlas.normals[..., 1] * head).astype(np.float32)
    out = {"cavity": _cavity(atlas), "down": down, "head": head, "front": front}
    _FORMS.clear()  # one head at a time is what a batch of variants needs
    _FORMS[key] = (weakref.ref(atlas), out)
    return out


def clean_regions(
    image: np.ndarray,
    mask: np.ndarray,
    rows: int,
    k: int,
    lightness_weight: float,
    saturation: float,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat colour regions of a half-resolution image: k-means in CIELAB, then each texel takes the
    label that dominates its ``sigma`` neighbourhood (no specks, no camouflage, smooth borders).

    Returns the palette (k, 3) and the per-label soft membership (H, W, k) for crisp upsampling.
    """
    _, labels = quantise_colors(image, mask, k, lightness_weight, saturation)
    onehot = (labels[..., None] == np.arange(k)).astype(np.float32)
    votes = filters.gaussian(onehot, sigma, rows)
    # The palette: each region's mean colour (not the centroid of a weighted feature space).
    winner = np.argmax(votes, axis=-1)
    flat = image.reshape(-1, 3)
    counts = np.bincount(winner.reshape(-1), weights=mask.reshape(-1), minlength=k)
    palette = (
        np.stack(
            [
                np.bincount(winner.reshape(-1), weights=flat[:, c] * mask.reshape(-1), minlength=k)
                for c in range(3)
            ],
            axis=1,
        )
        / np.maximum(counts, 1e-6)[:, None]
    )
    return palette.astype(np.float32), votes


def _crisp(votes_small: np.ndarray, small_rows: int, like: np.ndarray, rows: int) -> np.ndarray:
    """Full-resolution labels from half-resolution soft votes: smooth, sharp region borders."""
    return np.argmax(_full(votes_small, small_rows, like, rows), axis=-1)


def _mix(base: np.ndarray, color, alpha: np.ndarray) -> np.ndarray:
    """``base`` over-painted by ``color`` (a colour, or an image like ``base``) with coverage ``alpha``.

    Only the bounding box where ``alpha`` > 0 is touched: strokes and features cover little.
    """
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return base
    cols = np.flatnonzero(alpha[rows[0] : rows[-1] + 1].any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    color = np.asarray(color, np.float32)
    paint = color[box] if color.ndim == 3 else color
    a = np.clip(alpha[box], 0.0, 1.0)[..., None].astype(np.float32)
    out = base.copy()
    out[box] = base[box] * (1 - a) + paint * a
    return out


def _region_color(image: np.ndarray, region: np.ndarray, percentile: float = 50.0) -> np.ndarray | None:
    """The colour at a lightness percentile of ``image`` inside ``region`` (None if it is empty)."""
    pixels = image[region > 0.5]
    if len(pixels) < 4:
        return None
    lum = luminance(pixels)
    near = np.abs(lum - np.percentile(lum, percentile)) <= np.std(lum) * 0.25 + 1e-3
    return pixels[near].mean(axis=0)


SHADOW_RAMP = 1.0 / 6.0
"""Fold depth (``_shadow_level``'s units) over which a cel shadow goes from none to full past its
bar: crisp, a texel or two on a typical fold."""


def _shadow_level(
    cavity: np.ndarray | float, down: np.ndarray, threshold: float, ramp: float = SHADOW_RAMP
) -> np.ndarray:
    """A cel shadow (0..1) from the head's forms: how deep the surface lies below its smoothed self
    (``cavity``) and how much it faces down (``down``), from none at ``threshold`` to full ``ramp``
    past it (crisp at ``SHADOW_RAMP``)."""
    level = cavity * 12.0 + np.clip(down - 0.25, 0, 1) * 1.5
    return np.clip((level - threshold) * (1.0 / ramp), 0.0, 1.0).astype(np.float32)


def _shadow_shapes(
    atlas: AtlasGeometry, strength: float, threshold: float, ramp: float = SHADOW_RAMP
) -> np.ndarray:
    """Cel-shadow shapes (0..1) from the head's forms: sockets, under nose/lips/chin; crisp at the
    default ``ramp``. From the mesh alone, so kept with ``head_forms`` per threshold and ramp (25 ms
    on a 1024² atlas, most of it the back of the head's specks: once per head, not per variant)."""
    forms = head_forms(atlas)
    key = f"shapes {threshold} {ramp}"
    if key not in forms:
        shapes = _shadow_level(forms["cavity"] * forms["head"], forms["down"], threshold, ramp)
        unit = atlas.layout.face_texels_per_iod
        forms[key] = without_specks(shapes, forms["front"], TONE_SHADOW_MIN_IOD2 * unit * unit)
    return forms[key] * np.float32(strength)


def _keep_shadow(
    ctx: StageContext, shown: np.ndarray, threshold: float, hair: np.ndarray | None = None
) -> None:
    """Hand the style's cel shadow to the bake (``ctx.style_shadow``, ``bake.StyleShadow``): where the
    styled atlas shows it, as far as the style is applied, and the rule it was drawn by, for a
    surface point the atlas does not hold (its fold, measured on the mesh, and how much it faces
    down). Not under the flat hair (``hair``, ``flat_hair_cover``), painted over it: the photo's
    darker hair counted as shadow there, so the bake filled a crown texel the atlas does not hold
    from the light texels nearest it, the skin's, a dotted line of skin across the hair."""
    from ...bake import StyleShadow

    frame, strength = ctx.atlas.frame, float(np.clip(ctx.strength, 0.0, 1.0))
    lowest = _lowest(ctx.atlas)

    def at(normals: np.ndarray, cavity: np.ndarray, positions: np.ndarray) -> np.ndarray:
        head = head_part(frame.to_head(positions)[..., 1], lowest, frame.stretch)
        down = -frame.directions_to_head(normals)[..., 1] * head
        return _shadow_level(cavity * head, down, threshold) * np.float32(strength)

    shadow = np.clip(shown, 0.0, 1.0).astype(np.float32) * np.float32(strength)
    if hair is not None:
        shadow *= 1.0 - hair
    ctx.style_shadow = StyleShadow(shadow, at, float(frame.scale), CAVITY_SIGMA_IOD)


def _skin_tone(image: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """The face's skin colour: the median of the face region away from the features."""
    region = atlas.face if atlas.face.any() else atlas.mask
    pixels = image[region]
    if len(pixels) == 0:
        return np.array([0.85, 0.68, 0.58], np.float32)
    lum = luminance(pixels)
    middle = (lum > np.percentile(lum, 35)) & (lum < np.percentile(lum, 80))
    return np.median(pixels[middle] if middle.any() else pixels, axis=0).astype(np.float32)


SKIN_COLLAPSE_SOFT = 0.25
"""Share of ``collapse_skin``'s distance either side of it over which a palette colour goes from the
skin's to its own (a smoothstep): a hard threshold flipped whole regions between skin and blotch
with a change of a few tenths of a unit (comic's palette on the styles' test scene held colours at
19.3 and 20.3 for a threshold of 20, and 315 changed texels of a 512² atlas moved one across it)."""


def collapse_skin(
    palette: np.ndarray, skin: np.ndarray, distance: float, lightness_weight: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The palette with every colour near the skin tone drawn to it (CIELAB, lightness weighted
    down: the uneven light a photo leaves on the skin must not become blotches): wholly within
    ``distance`` less ``SKIN_COLLAPSE_SOFT`` of it, not at all beyond as much more, smoothly
    between, so a palette colour near the bar does not flip a region. Also returns which palette
    entries are skin (within ``distance``)."""
    lab = cv2.cvtColor(np.concatenate([palette, skin[None]])[None].astype(np.float32), cv2.COLOR_RGB2Lab)[0]
    delta = (lab[:-1] - lab[-1]) * np.array([lightness_weight, 1.0, 1.0], np.float32)
    far = np.linalg.norm(delta, axis=1)
    soft = SKIN_COLLAPSE_SOFT * distance
    own = smoothstep((far - (distance - soft)) / (2.0 * soft))[:, None]
    return (skin[None] + own * (palette - skin[None])).astype(np.float32), far < distance


NOSE_RISE = 1.0
"""Rise over run (up the atlas) from which the nose's ink stops towards either end: the underside of
the nose and the nostril wings' curl, not the wings' outer edge climbing steeply into the cheek's
crease (the stylised demo head's wide nostrils drew two black claws up from them, in toon and comic;
stubs now). Not lower: the scanned head's nostril wings curl up at 45 degrees in the atlas, the
nose's own shape, and lost their ink at 0.4."""


def _without_rise(line: np.ndarray, rise: float) -> np.ndarray:
    """``line`` (N, 2, atlas pixels, y down) kept from its middle point outwards on each side up to
    where it first climbs more steeply than ``rise`` (over a few samples: a kink is not a climb)."""
    n = len(line)
    if n < 5:
        return line
    middle, step = n // 2, max(1, n // 24)

    def end(direction: int) -> int:
        i = middle
        while 0 <= i + direction * step < n:
            dx, dy = line[i + direction * step] - line[i]
            if -dy > rise * abs(dx):  # climbing (y down)
                return i
            i += direction * step
        return 0 if direction < 0 else n - 1

    return line[end(-1) : end(1) + 1]


def _stroke(line: np.ndarray, start: float, stop: float, width: float, ends: float = 0.2) -> Stroke:
    part = arc(line, start, stop)
    return Stroke(part, taper(len(part), width, ends))


def feature_strokes(lines: dict[str, np.ndarray], unit: float, weight: float, look: str) -> list[Stroke]:
    """The ink strokes of a style along the feature lines; widths in eye distances x ``unit`` texels.

    Eye contours run upper lid outer->inner, then lower lid inner->outer (``face.py``); the inner
    lips' second half is the line where the lips meet.
    """
    w = unit * weight
    strokes: list[Stroke] = []
    for eye in ("right_eye", "left_eye"):
        if eye in lines:
            strokes.append(_stroke(lines[eye], 0.0, 0.5, 0.045 * w, 0.3))  # upper lid: the lash line
            strokes.append(_stroke(lines[eye], 0.58, 0.95, 0.016 * w, 0.1))  # lower lid, lighter
    if "lips_inner" in lines:
        strokes.append(_stroke(lines["lips_inner"], 0.5, 1.0, 0.026 * w, 0.15))  # where the lips meet
    if "nose" in lines:
        start, stop = (0.3, 0.7) if look == "anime" else (0.05, 0.95)
        under = _without_rise(arc(lines["nose"], start, stop), NOSE_RISE)
        strokes.append(Stroke(under, taper(len(under), 0.02 * w, 0.1)))
    if look in ("toon", "comic") and "lips_outer" in lines:
        # Under the middle of the lower lip (its contour runs from the right corner, 61, along the
        # lower lip: 17, its middle, at a quarter; 0.3-0.45 drew it towards the left corner, a line
        # slanting off the mouth onto the cheek).
        strokes.append(_stroke(lines["lips_outer"], 0.175, 0.325, 0.014 * w, 0.1))
    if look == "comic":
        # A brow is a stroke along its middle, thick in the middle and tapering to the tail, over its
        # flat fill: an outline round the fill read as a grey capsule stuck on, a tab from the side.
        for brow in ("right_brow", "left_brow"):
            if brow in lines:
                mid = brow_arc(lines[brow])
                strokes.append(Stroke(mid, taper(len(mid), 0.04 * w, 0.35)))
        if "jaw" in lines:
            strokes.append(_stroke(lines["jaw"], 0.26, 0.74, 0.03 * w, 0.05))
    if look == "anime":
        for brow in ("right_brow", "left_brow"):
            if brow in lines:
                mid = brow_arc(lines[brow])
                strokes.append(Stroke(mid, taper(len(mid), 0.03 * w, 0.2)))
    return strokes


def _brow_and_lip_fills(
    out: np.ndarray,
    source: np.ndarray,
    lines: dict[str, np.ndarray],
    shape: tuple[int, int],
    lip_saturation: float,
    colour_lines: dict[str, np.ndarray] | None = None,
    saturation: float = 1.0,
) -> np.ndarray:
    """Brows as flat dark shapes and lips as one flat colour along ``lines``, both of the texture's
    own colours (the lips' read inside ``colour_lines``' lips: the photo's, where the style draws
    the head's own; default ``lines``), the brows' saturated as the style's palette (``saturation``):
    left as the photo has them, an ash brow (C* 17) was a grey marker line beside toon's saturated
    skin."""
    colour_lines = lines if colour_lines is None else colour_lines

    def lips_of(found: dict[str, np.ndarray], feather: float) -> np.ndarray:
        lips = fill_polygon(shape, found["lips_outer"], feather=feather)
        if "lips_inner" in found:
            lips = np.clip(lips - fill_polygon(shape, found["lips_inner"]), 0, 1)
        return lips

    for brow in ("right_brow", "left_brow"):
        if brow in lines:
            region = fill_polygon(shape, lines[brow], feather=0.6)
            colour = _region_color(source, region, 20.0)
            if colour is not None:
                out = _mix(out, np.clip(_saturate(colour[None] * 0.75, saturation)[0], 0, 1), region)
    if "lips_outer" in lines:
        lips = lips_of(lines, 0.6)
        read = (
            lips if colour_lines is lines or "lips_outer" not in colour_lines else lips_of(colour_lines, 0.6)
        )
        colour = _region_color(source, read, 50.0)
        if colour is not None:
            lum = luminance(colour)
            colour = np.clip(lum + (colour - lum) * lip_saturation, 0, 1)
            out = _mix(out, colour, lips)
    return out


def _grown(area: np.ndarray, reach: float) -> np.ndarray:
    """``area`` (0..1) grown by ``reach`` texels (at least one) and feathered over half of it."""
    grow = max(1, int(round(reach)))
    return filters.dilated_blurred(area, grow, grow / 2)


FOCAL_FEATURES = ("right_eye", "left_eye", "right_brow", "left_brow")
"""The features a painter paints finer than the rest: the filter's flat patches, a tenth of an eye
distance across, made each iris a brown smudge without its pupil or lid line and wiped the brows out
(QA: "dead eyes")."""
FOCAL_GROW_IOD = 0.06
"""Eye distances by which those features are grown, and half of it feathered."""


def painted_finer(lines: dict[str, np.ndarray], shape: tuple[int, int], unit: float) -> np.ndarray:
    """(H, W) float32 0..1: FOCAL_FEATURES' areas (``lines``), grown by FOCAL_GROW_IOD, feathered."""
    area = np.zeros(shape, np.float32)
    for name in FOCAL_FEATURES:
        if name in lines:
            area = np.maximum(area, fill_polygon(shape, lines[name]))
    if not area.any():
        return area
    return np.clip(_grown(area, FOCAL_GROW_IOD * unit), 0.0, 1.0)


FORM_LIGHT = (0.0, 0.6, 1.0)
"""Head-frame direction (x right, y up, z ahead) of the light whose Lambert shading of the head's
normals is its ``form_shading``: from the front and above, its lines run across the forehead, round
the sockets and the cheeks and down the neck, as a painter's strokes go round the forms."""


def form_shading(atlas: AtlasGeometry) -> np.ndarray:
    """(S, S) float32 the head's own shading under FORM_LIGHT (0 off the surface): the lines painterly's
    strokes follow on smooth skin."""
    light = np.asarray(FORM_LIGHT, np.float32) / np.float32(np.linalg.norm(FORM_LIGHT))
    return (np.clip(atlas.normals @ light, 0.0, 1.0) * atlas.mask).astype(np.float32)


def form_flow(atlas: AtlasGeometry, half: bool = False) -> np.ndarray:
    """(S, S, 3) float32 the structure tensor of ``form_shading`` against its ordinary strength, times
    FORM_WEIGHT (``_orientation_bins``' ``forms``), at the atlas's resolution or, with ``half``, at
    the half one the styles' colour work runs at. From the mesh alone: made once per atlas geometry
    (about 90 ms a painterly request at 1024² before)."""
    key = ("form flow", half)
    if key not in atlas.cache:
        rows = atlas.band_rows
        shading = form_shading(atlas)
        if half:
            shading, rows = _half(shading, rows)
        tensor = _structure_tensor(shading, rows)
        atlas.cache[key] = (tensor * np.float32(FORM_WEIGHT / _typical(tensor))).astype(np.float32)
    return atlas.cache[key]


def painterly(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Oil paint: a generalised Kuwahara filter (8 smooth sectors: flat patches with crisp edges)
    at half resolution, smeared along the forms' flow, the hair (``scalp=hair``) in strokes along its
    strands instead, the eyes and brows painted finer (``painted_finer``), brush-stroke texture, a
    warmer palette."""
    p = ctx.style.classic
    rows = ctx.atlas.band_rows
    scale = ctx.atlas.size / 1024
    small, small_rows = _half(image, rows)
    radius = max(2, int(round(p.get("kuwahara_radius", 5) * scale)))
    paint = generalised_kuwahara(small, radius, small_rows, float(p.get("sharpness", 8.0)))
    length = max(5, int(round(p.get("brush_length", 11) * scale)) | 1)
    paint = flow_smear(paint, small_rows, max(3, (length // 2) | 1), form_flow(ctx.atlas, half=True))
    out = _full(paint, small_rows, image, rows)
    if ctx.hair is not None:  # hair in strokes along its strands: the patches merged them into blotches
        out = _mix(out, flow_smear(image, rows, length), np.clip(ctx.hair, 0, 1).astype(np.float32))
    focal = painted_finer(ctx.features(), image.shape[:2], ctx.atlas.layout.face_texels_per_iod)
    out = _mix(out, image, focal * np.float32(p.get("focal_detail", 0.8)))
    brush = brush_texture(luminance(out), rows, length, ctx.seed, form_flow(ctx.atlas))
    out = out * (1.0 + np.float32(p.get("brush_amount", 0.06)) * brush)[..., None]
    return _saturate(out, p.get("saturation", 1.15), p.get("warmth", 0.03))


def _flat_colours(
    image: np.ndarray,
    ctx: StageContext,
    *,
    sigma_space: float,
    sigma_color: float,
    colors: int,
    lightness: float,
    saturation: float,
    region: float,
    skin_tone: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """The flat colour regions toon and comic start from, at full size: a few palette colours over
    an edge-preserving smoothing at half size, every colour near the skin's made the skin's. The
    keyword values are the defaults of the style's ``classic`` settings of the same meaning;
    ``skin_tone`` is the face's (``_skin_tone``) where the caller read it already.

    Returns (flat image, per-texel palette label, per-label is-skin, the half-size smoothing, its
    band rows, the skin's styled tone)."""
    p = ctx.style.classic
    atlas, rows = ctx.atlas, ctx.atlas.band_rows
    scale = atlas.size / 1024
    saturation = p.get("saturation", saturation)
    small, small_rows = _half(image, rows)
    smooth = edge_preserving(
        small,
        small_rows,
        p.get("smooth_sigma_space", sigma_space) * scale,
        p.get("smooth_sigma_color", sigma_color),
    )
    mask_small, _ = _half(atlas.mask.astype(np.float32), rows)
    palette, votes = clean_regions(
        smooth,
        mask_small > 0.5,
        small_rows,
        int(p.get("colors", colors)),
        p.get("lightness_weight", lightness),
        saturation,
        p.get("region_sigma", region) * scale,
    )
    palette = np.clip(_saturate(palette, saturation), 0, 1)
    skin = styled_skin(_skin_tone(image, atlas) if skin_tone is None else skin_tone, saturation)
    palette, is_skin = collapse_skin(palette, skin, p.get("skin_distance", 20.0))
    labels = _crisp(votes, small_rows, image, rows)
    return palette[labels], labels, is_skin, smooth, small_rows, skin


TONE_SHADOW_MIN_IOD2 = 0.04
"""Square eye distances under which a cel shadow read from the photo's darker skin alone (not touching
a shadow the head's forms draw) is a speck, not a form: a mole, a crease's or a wrinkle's shadow, the
photo's neck colour on a wider jaw. Found as dark dots on cheeks, chins and jaws: the astronaut's
smile crease on the scanned head's cheek (0.0045), on the demo head 0.0006-0.031, Grace Hopper's chin
wrinkles 0.014-0.036. The forms the photo's tone adds are larger: the sockets' and eye bags'
0.068-0.17, her nasolabial folds 0.075 and more (``toon``, 1024² atlases)."""


def without_specks(shadow: np.ndarray, forms: np.ndarray, min_area: float) -> np.ndarray:
    """``shadow`` (0..1) without its islands (at 0.5, 8-connected) smaller than ``min_area`` texels
    that do not touch ``forms`` (0..1, the form shadow; at 0.5: an island beside it extends it),
    their soft rims included."""
    islands = (shadow > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(islands, connectivity=8)
    if count <= 1:
        return shadow
    touching = np.zeros(count, bool)
    near_forms = cv2.dilate((forms > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    touching[np.unique(labels[near_forms & (labels > 0)])] = True
    speck = (stats[:, cv2.CC_STAT_AREA] < min_area) & ~touching
    speck[0] = False  # the background
    if not speck.any():
        return shadow
    # Grown by two texels: the ramp round an island (under 0.5) goes with it.
    gone = cv2.dilate(speck[labels].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return np.where(gone & (forms <= 0.5), np.float32(0.0), shadow).astype(shadow.dtype)


HAIRLINE_INK_IOD = 0.035
"""Width, eye distances, of the ink line toon and comic draw inside the hair's edge."""


FLAT_HAIRLINE_IOD = 0.06
"""Eye distances over which a flat style's hairline is smoothed before it is cut: the photo's fringe,
strand by strand, cut a ragged edge (teeth 0.02-0.05 eye distances across) that toon's ink traced."""


def flat_hair_cover(ctx: StageContext) -> np.ndarray | None:
    """(S, S) float32 0..1: where a flat style paints the hair (``scalp=hair``, ``ctx.hair``) one
    colour; None without hair. Crisp at the hairline (the layer's feathered edge read at half its
    cover, one texel of ramp), and the texels the layer leaves out at a chart's edge inside the hair
    (the band's top rows under the crown's disc) closed, per chart: left to the palette they were
    skin, a dotted line over the crown. Its hairline is smoothed (FLAT_HAIRLINE_IOD), as drawn."""
    cover = ctx.hair
    if cover is None:
        return None
    atlas, rows = ctx.atlas, ctx.atlas.band_rows
    if ((cover > 0.5) & atlas.mask).sum() < 16:
        return None
    held = atlas.mask.astype(np.float32)
    reach = FLAT_HAIRLINE_IOD * atlas.layout.face_texels_per_iod
    cover = filters.normalized_gaussian(cover[..., None], held, reach, rows)[0][..., 0]
    alpha = smoothstep((cover - 0.35) / 0.3).astype(np.float32) * held
    near = filters.gaussian((alpha > 0.5) * held, 1.5, rows) / np.maximum(
        filters.gaussian(held, 1.5, rows), 1e-3
    )
    return np.maximum(alpha, smoothstep((near - 0.5) / 0.2).astype(np.float32) * held)


HAIR_TONE_PERCENTILE = 75.0
"""The lightness percentile of the hair's texels whose colour a flat style paints the hair in: its lit
strands, as an artist picks a hair colour, not the median, which the dark gaps between strands and
the hair's own shadow pull down. The astronaut's hair on the demo head: median L* 39.8, which toon's
saturation turned olive (L* 40, C* 31); 75th percentile 49 (the lit crown of her photo reads 52)."""
HAIR_TONE_BAND = 3.0
"""L* either side of that percentile whose texels' median colour is the hair's tone."""


def hair_tone(pixels: np.ndarray) -> np.ndarray:
    """The colour (3,) a flat style paints hair ``pixels`` (N, 3) in: the median, in CIELAB, of those
    at the HAIR_TONE_PERCENTILE of their lightness (its hue and chroma there: a blond's lit strands
    are paler than its shadowed ones)."""
    lab = to_lab(np.asarray(pixels, np.float32))
    lightness = float(np.percentile(lab[:, 0], HAIR_TONE_PERCENTILE))
    near = np.abs(lab[:, 0] - lightness) <= HAIR_TONE_BAND
    return np.clip(from_lab(np.median(lab[near], axis=0)[None])[0], 0.0, 1.0).astype(np.float32)


def flat_hair(
    flat: np.ndarray,
    image: np.ndarray,
    ctx: StageContext,
    saturation: float,
    ink: bool,
    alpha: np.ndarray | None = None,
) -> np.ndarray:
    """``flat`` with the hair (``scalp=hair``, ``ctx.hair``) painted as a flat style paints it: one
    colour, its lit strands' in ``image`` (``hair_tone``), saturated as the style saturates its
    palette, and, with ``ink``, a line along its edge. (A cel shadow on its underside, where the
    normal faces down, was tried: on a round skull it is a soft dark oval on the back of the head,
    not a form.)

    Quantised with the rest of the atlas, the synthesised strands and the photo's streaks split into
    palette regions, some of them near enough to the skin to be made skin: a blond head came out as
    olive and beige camouflage, with bars of skin colour on the back of the head. ``alpha``: its
    ``flat_hair_cover``, where the caller has it already."""
    alpha = flat_hair_cover(ctx) if alpha is None else alpha
    if alpha is None:
        return flat
    atlas, rows = ctx.atlas, ctx.atlas.band_rows
    held = atlas.mask.astype(np.float32)
    inside = (ctx.hair > 0.5) & atlas.mask
    base = np.clip(_saturate(hair_tone(image[inside])[None], saturation)[0], 0.0, 1.0)
    hair = np.broadcast_to(base, flat.shape)
    out = _mix(flat, hair, alpha)
    if ink:
        width = max(HAIRLINE_INK_IOD * atlas.layout.face_texels_per_iod, 1.0)
        # Per chart (``filters.gaussian``) and over the atlas's texels alone: neither the atlas's
        # seams nor the edges of its charts are an edge of the hair.
        near = filters.gaussian((alpha > 0.5) * held, width, rows) / np.maximum(
            filters.gaussian(held, width, rows), 1e-3
        )
        line = np.clip((0.97 - near) * 8.0, 0.0, 1.0) * (alpha > 0.5)
        out = _mix(out, np.clip(base * 0.35, 0.0, 1.0), line.astype(np.float32))
    return out


def _others_as_skin(
    flat: np.ndarray, labels: np.ndarray, is_skin: np.ndarray, skin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``flat`` with every palette colour (``_flat_colours``) made the skin's ``skin``, and (S, S)
    float32 1 where a colour not the skin's (past its bar, ``is_skin``) was darker than it: the
    shadow's candidates.

    The photo's other colours on a head (folds and wrinkles de-lit red or grey, under-eye shadows, a
    mole, stubble) are no colour of a cel-shaded or inked head: Grace Hopper's folds came out as grey
    or red bars (a moustache) and blotches on the chin. As shadow candidates a form is kept and a
    speck dropped (``without_specks``), in the style's own shadow. Brows, lips, eyes and hair are
    drawn over them after.

    The colours near the skin's are the skin's too, wholly: ``collapse_skin`` leaves one near its bar
    partly its own, and made so while the one just past the bar was made the skin's, a dark colour
    at 19.3 of a bar of 20 was a brown stroke along Grace Hopper's nasolabial fold on the scanned
    head's one side, where the other side's fold, a little lighter, was the next colour, past the
    bar: the skin's, and its shadow taken off round the mouth (``around_mouth``)."""
    other = ~is_skin[labels]
    darker = (other & (luminance(flat) < luminance(skin))).astype(np.float32)
    return np.broadcast_to(skin, flat.shape).astype(np.float32), darker


EYE_RIM_IOD = 0.12
"""Eye distances round each eye's outline in which a flat style takes no shadow from the photo's
darker colours (``eye_rims``): the photo's lashes, liner and the shadow at the eye's outer corner
reach past the landmarks' outline, and toon drew them as a brown blob past the corner (the demo
heads with the astronaut), comic as dots; the eye's own ink and the socket's cel shadow stay."""


def eye_rims(lines: dict[str, np.ndarray], shape: tuple[int, int], unit: float) -> np.ndarray:
    """(H, W) float32 0..1: within ``EYE_RIM_IOD`` of each eye's outline, fading out beyond."""
    rims = np.zeros(shape, np.float32)
    reach = max(1, int(round(EYE_RIM_IOD * unit)))
    for eye in ("right_eye", "left_eye"):
        if eye in lines:
            rims = np.maximum(rims, fill_polygon(shape, lines[eye]))
    return np.clip(filters.dilated_blurred(rims, reach, reach / 3), 0.0, 1.0)


UPPER_LIP_GROW_IOD = 0.05
"""Eye distances by which the skin between the nose and the upper lip is grown (its soft rim)."""
FOLD_HALF_WIDTH_IOD = 0.25
"""Eye distances either side of the line from a nostril wing to its mouth corner (and a half of it on
beyond the corner) within which the photo's darker skin is a smile fold, not a form."""


def around_mouth(lines: dict[str, np.ndarray], shape: tuple[int, int], unit: float) -> np.ndarray:
    """(H, W) float32 0..1: the skin between the nose's underside and the upper lip (``lines``'
    ``nose``, the right wing to the left, and ``lips_outer``, from the right mouth corner along the
    lower lip: ``face.LIPS_OUTER``), grown by UPPER_LIP_GROW_IOD, and the smile folds, from each
    nostril wing down past its mouth corner (FOLD_HALF_WIDTH_IOD). The photo's darker skin there (an
    upper lip's fine wrinkles and down, a nose's shadow under a top light, deep nasolabial folds) drew
    toon's cel shadow and comic's halftone as a moustache on Grace Hopper's face; the head's own forms
    still shade it."""
    return _mouth_parts(lines, shape, unit, upper_lip=True)


def smile_folds(lines: dict[str, np.ndarray], shape: tuple[int, int], unit: float) -> np.ndarray:
    """(H, W) float32 0..1: ``around_mouth``'s smile folds alone, without the upper lip (whose dark
    skin may be a moustache, the photo's own colour)."""
    return _mouth_parts(lines, shape, unit, upper_lip=False)


def _mouth_parts(
    lines: dict[str, np.ndarray], shape: tuple[int, int], unit: float, upper_lip: bool
) -> np.ndarray:
    """``around_mouth``'s area, the upper lip in it or not."""
    area = np.zeros(shape, np.float32)
    if "nose" not in lines or "lips_outer" not in lines:
        return area
    lips, nose = lines["lips_outer"], lines["nose"]
    left_corner = int(np.argmax(np.linalg.norm(lips - lips[0], axis=1)))
    reach = max(1, int(round(UPPER_LIP_GROW_IOD * unit)))
    if upper_lip:
        top_lip = np.concatenate([lips[left_corner:], lips[:1]])
        area = filters.dilated_blurred(fill_polygon(shape, np.concatenate([nose, top_lip])), reach, 0.0)
    width = max(1, int(round(2 * FOLD_HALF_WIDTH_IOD * unit)))
    for wing, corner in ((nose[0], lips[0]), (nose[-1], lips[left_corner])):
        end = corner + 0.5 * (corner - wing)
        cv2.line(area, tuple(np.round(wing).astype(int)), tuple(np.round(end).astype(int)), 1.0, width)
    return np.clip(filters.dilated_blurred(area, 0, reach / 2), 0.0, 1.0)


FOLD_TINT_SIGMA_IOD = 0.08
"""Eye distances over which the skin's own colour around a smile fold is read (a fold's line is 0.02-0.05
wide)."""
FOLD_TINT_PASSES = 3
"""Times the skin around a fold is read and the fold's tint taken off: the first reading has the fold's
own tint in it (a painted fold's excess chroma 4.8 went to 2.1 in one pass, to 0.4 in three)."""
FOLD_TINT_HUE_DEG = 45.0
"""Degrees of hue (CIELAB) within which a fold's colour is the skin's own, more saturated: further,
it is a mark or paint of its own colour (a blue disc by the astronaut's mouth came out purple)."""


def fold_tint_taken_off(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """``image`` with the photo's smile folds (``smile_folds``) no more saturated than the skin
    around them. The skin in a fold's shadow is redder and yellower than lit skin (light scattered
    under it); once the shadow is lifted its tint stays, and on the scanned head with the astronaut
    (her smile's right fold, 16 L* darker, b* 31 against the skin's 24) it rendered as an orange-brown
    scar beside the head's own fold. Only the tint is taken off (the fold's darkness, a stubble's dots,
    are the photo's), only where the fold is more saturated than its surroundings, and not on the lips
    (the band reaches past the mouth corners: the demo's lips came out paler). Not told apart:
    a freckle or a mole in the fold's band loses its colour too (an average along the fold, to keep
    spots, left the folds' tint half on), and so does a pattern of the skin's hue there (the sweep's
    striped skins, 0.1-0.3 dB on 6 of its 39 quick cases); one of another hue keeps its colour
    (FOLD_TINT_HUE_DEG)."""
    unit = ctx.atlas.layout.face_texels_per_iod
    lines = ctx.features()
    band = smile_folds(lines, image.shape[:2], unit)
    # The band reaches past the mouth corners: not over the lips, the photo's or those it was laid
    # over (the mesh's, where the photo's mouth was open).
    for found in (lines, ctx.drawn()):
        if "lips_outer" in found:
            band *= 1.0 - fill_polygon(image.shape[:2], found["lips_outer"], feather=1.0)
    rows = np.nonzero(band.max(axis=1) > 0.01)[0]
    cols = np.nonzero(band.max(axis=0) > 0.01)[0]
    if len(rows) == 0:
        return image
    sigma = FOLD_TINT_SIGMA_IOD * unit
    pad = int(np.ceil(3 * sigma))
    y0, y1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, image.shape[0])
    x0, x1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, image.shape[1])
    lab = to_lab(image[y0:y1, x0:x1])
    # Only where the colour has the skin's own hue (FOLD_TINT_HUE_DEG from the box's median, skin
    # round the folds, the nose and the lips): a mark or paint of another hue keeps its colour.
    ab = lab[..., 1:]
    skin = np.median(ab[ctx.atlas.mask[y0:y1, x0:x1]], axis=0)
    cosine = np.float32(np.cos(np.radians(FOLD_TINT_HUE_DEG)))
    skin_hue = ab @ skin >= cosine * np.hypot(ab[..., 0], ab[..., 1]) * np.float32(np.hypot(*skin))
    weight = band[y0:y1, x0:x1, None] * skin_hue[..., None]
    for _ in range(FOLD_TINT_PASSES):  # the skin around read again without the fold's tint in it
        ab = lab[..., 1:]
        around = cv2.GaussianBlur(ab, (0, 0), sigma)
        beyond = np.hypot(ab[..., 0], ab[..., 1]) > np.hypot(around[..., 0], around[..., 1])
        lab[..., 1:] = ab + weight * beyond[..., None] * (around - ab)
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(from_lab(lab), 0.0, 1.0)
    return out


MOVED_FEATURES = ("lips_outer",)
"""The photo's filled features a flat style clears to skin where it draws them elsewhere
(``features.drawn_lines``: the lips; the nose is a stroke)."""
MOVED_GROW_IOD = 0.04
"""Eye distances by which the photo's features are grown when cleared (their soft rims)."""


def moved_features(ctx: StageContext, shape: tuple[int, int]) -> np.ndarray | None:
    """(S, S) 0..1 where the photo's own lips lie in the texture and the flat style draws them
    elsewhere (``StageContext.drawn``: on the head's own lips): there the photo's darker colours would
    stay as a ghost (Grace Hopper's lower lip's shadow, a blotch under the head's lip; anime's flat
    region of them), so they are cleared to skin. None where nothing moved."""
    photo, drawn = ctx.features(), ctx.drawn()
    cleared = np.zeros(shape, np.float32)
    for name in MOVED_FEATURES:
        if name in photo and not np.array_equal(photo[name], drawn.get(name, photo[name])):
            cleared = np.maximum(cleared, fill_polygon(shape, photo[name]))
    if not cleared.any():
        return None
    return _grown(cleared, MOVED_GROW_IOD * ctx.atlas.layout.face_texels_per_iod)


def _cel_shaded(flat: np.ndarray, shadow: np.ndarray, depth: float) -> np.ndarray:
    """``flat`` darkened by ``depth`` where ``shadow`` (0..1) falls, a little more in green and blue
    (a warm shadow tone): toon's cel shadow and comic's tone under its screen."""
    tint = 1 - depth * np.array([1.0, 1.2, 1.15], np.float32)
    return flat * (1 - shadow[..., None] * (1 - tint))


def toon(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Cel shading: a few clean flat colour regions, flat brows and lips, cel shadows from the head's
    forms, and tapered outlines drawn along the eyes, nose and mouth (never along noise)."""
    p = ctx.style.classic
    atlas, rows, lines = ctx.atlas, ctx.atlas.band_rows, ctx.features()
    face_skin = _skin_tone(image, atlas)
    flat, labels, is_skin, smooth, small_rows, skin_colour = _flat_colours(
        image,
        ctx,
        sigma_space=12.0,
        sigma_color=0.12,
        colors=6,
        lightness=1.0,
        saturation=1.25,
        region=2.5,
        skin_tone=face_skin,
    )
    flat, darker = _others_as_skin(flat, labels, is_skin, skin_colour)
    shape = image.shape[:2]
    drawn, cleared = ctx.drawn(), moved_features(ctx, shape)
    if cleared is not None:  # the photo's features drawn on the head's own: theirs cleared
        darker = darker * (1 - cleared)
    # Two skin tones: where the photo's skin is clearly darker at the scale of the forms (cheek
    # hollows, the sides of the nose), or the head's forms turn away, a crisp cel shadow.
    unit_small = atlas.layout.face_texels_per_iod / 2
    tone = filters.gaussian(luminance(smooth), 0.05 * unit_small, small_rows)
    split = luminance(face_skin) * (1 - p.get("tone_split", 0.12))
    tone_shadow = np.clip((split - _full(tone, small_rows, image, rows)) * 60.0, 0.0, 1.0)
    tone_shadow = np.maximum(tone_shadow * (1 if cleared is None else 1 - cleared), darker)
    tone_shadow *= head_forms(atlas)["head"]  # the face's forms, not a bust's chest or cut
    unit = atlas.layout.face_texels_per_iod
    tone_shadow *= 1.0 - eye_rims(drawn, shape, unit)  # the photo's lashes and liner: the eyes' ink
    lenses = ctx.lens_cover()
    if lenses is not None:  # the skin seen through tinted lenses: darker by the lens, not a form
        tone_shadow *= 1.0 - lenses
    tone_shadow *= 1.0 - around_mouth(drawn, shape, unit)  # a moustache of the photo's folds
    threshold = p.get("shadow_threshold", 0.6)
    forms = _shadow_shapes(atlas, 1.0, threshold)
    tone_shadow = without_specks(tone_shadow, forms, TONE_SHADOW_MIN_IOD2 * unit * unit)
    shadow = np.maximum(forms, tone_shadow)
    hair = flat_hair_cover(ctx)
    _keep_shadow(ctx, shadow, threshold, hair)
    flat = _cel_shaded(flat, shadow, p.get("shadow", 0.2))
    flat = _brow_and_lip_fills(
        flat, image, drawn, shape, p.get("lip_saturation", 1.4), lines, p.get("saturation", 1.25)
    )
    flat = drawn_eyes(flat, image, drawn, shape, unit, p, iris_share=0.42, iris_saturation=1.1)
    flat = flat_hair(flat, image, ctx, p.get("saturation", 1.25), ink=True, alpha=hair)
    ink = draw_strokes(
        shape, feature_strokes(drawn, atlas.layout.face_texels_per_iod, p.get("outline_width", 1.0), "toon")
    )
    ink_colour = np.array(p.get("ink_color", [0.16, 0.08, 0.07]), np.float32)
    return _mix(flat, ink_colour, ink * float(p.get("outline", 1.0)))


COMIC_SCREEN_RAMP = 0.5
"""Fold depth (``_shadow_level``'s units) past comic's ``shadow_threshold`` over which its halftone
screen grows from no dots to full ones, as a printed screen shades a form. Crisp at the bar (the
toon's cel-shadow ramp) a fold just past it (the crease beside a nose wing, the chin's under the
lower lip, along the jaw: 0.45-0.6 on the demo head, its eye sockets over 0.9) was a hard-edged
patch of full dots, blotched skin on a darker skin most of all."""
COMIC_TONE_PAST = 0.4
"""Share of ``COMIC_SCREEN_RAMP`` past the bar from which comic lays its flat shadow tone under the
screen (crisp, as before): the deep folds' (sockets, under the nose and the chin) alone."""


COMIC_DARKEST = (0.3, 0.6)
"""Luminance under which comic prints its screen over a colour (a brow, lashes) besides the head's
shadows: the first, or the second times the skin's where that is lower. The first alone put a dark
skin itself under the screen, the whole head dotted (the astronaut's skin darkened to L* x 0.38);
a skin of luminance 0.5 or more keeps the first."""


def comic(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Comic inking: flat colours, bold inks along the features and the jaw, and where the head's
    forms turn away (sockets, under the nose, lips and chin) a flat shadow tone with a light halftone
    screen printed over it (and over the darkest colours)."""
    p = ctx.style.classic
    atlas, lines = ctx.atlas, ctx.features()
    s = atlas.size
    scale = s / 1024
    unit = atlas.layout.face_texels_per_iod
    flat, labels, is_skin, smooth, small_rows, skin = _flat_colours(
        image, ctx, sigma_space=16.0, sigma_color=0.15, colors=5, lightness=1.2, saturation=1.3, region=3.0
    )
    flat, darker = _others_as_skin(flat, labels, is_skin, skin)
    shape = image.shape[:2]
    drawn, cleared = ctx.drawn(), moved_features(ctx, shape)
    if cleared is not None:  # the photo's features drawn on the head's own: theirs cleared
        darker = darker * (1 - cleared)
    darker = darker * (1.0 - eye_rims(drawn, shape, unit))  # the photo's lashes and liner
    lenses = ctx.lens_cover()
    if lenses is not None:  # the skin seen through tinted lenses
        darker = darker * (1.0 - lenses)
    flat = _brow_and_lip_fills(
        flat, image, drawn, shape, p.get("lip_saturation", 1.5), lines, p.get("saturation", 1.3)
    )
    hair = flat_hair_cover(ctx)
    flat = flat_hair(flat, image, ctx, p.get("saturation", 1.3), ink=True, alpha=hair)
    # Halftone: a dot screen whose period divides the atlas width, so it wraps at the back seam.
    amount = float(p.get("halftone_amount", 0.55))
    if amount > 0:
        period = s / max(1, round(s / max(p.get("halftone_period", 7) * scale, 3.0)))
        wave = np.cos(2 * np.pi * np.arange(s, dtype=np.float32) / np.float32(period))
        screen = 0.5 + 0.25 * (wave[None, :] + wave[:, None])
        threshold = p.get("shadow_threshold", 0.45)
        tone_bar = threshold + COMIC_TONE_PAST * COMIC_SCREEN_RAMP
        screened = _shadow_shapes(atlas, 1.0, threshold, COMIC_SCREEN_RAMP)
        shade = _shadow_shapes(atlas, 1.0, tone_bar)
        photo_tone = darker * head_forms(atlas)["head"] * (1.0 - around_mouth(drawn, shape, unit))
        toned = without_specks(photo_tone, shade, TONE_SHADOW_MIN_IOD2 * unit * unit)
        shade = np.maximum(shade, toned)
        # The darkest colours (brows, lashes) screened too: those darker than the skin by far, not
        # a dark skin itself (COMIC_DARKEST).
        darkest = min(COMIC_DARKEST[0], COMIC_DARKEST[1] * float(luminance(skin)))
        dark = np.clip((darkest - luminance(flat)) / 0.2, 0.0, 1.0)
        darkness = np.clip(np.maximum(np.maximum(screened, shade) * 0.75, dark * 0.6), 0.0, 1.0)
        if hair is not None:  # the hair one inked colour, as toon paints it: no dots from its strands
            darkness = darkness * (1.0 - hair)
            shade = shade * (1.0 - hair)
        dots = np.clip((0.85 * darkness - screen) * 8.0 + 0.5, 0.0, 1.0) * (darkness > 0.05)
        _keep_shadow(ctx, shade, tone_bar)  # the hair already off it
        # The shadow a flat tone of the colour under it, the dots a screen printed over it: dark dots
        # alone on light skin read as stubble (a goatee on a woman's chin, a moustache under the nose).
        flat = _cel_shaded(flat, shade, p.get("shadow", 0.2))
        flat = flat * (1 - np.float32(amount) * dots)[..., None]
    # The eyes after the dots: a socket's halftone does not cover the eye itself.
    flat = drawn_eyes(
        flat, image, drawn, shape, unit, p, iris_share=0.42, highlight=False, iris_saturation=1.1
    )
    ink = draw_strokes(shape, feature_strokes(drawn, unit, p.get("ink_width", 1.3), "comic"))
    return _mix(flat, np.array([0.04, 0.035, 0.05], np.float32), ink)


ANIME_SHADOW_BELOW_IOD = 0.25
"""Eye distances below the lower lip from which anime's shadow falls: under the chin and the jaw, on
the neck. Above it the head's folds (the sockets, the fold under the lower lip, the nose's underside)
drew a mauve soul patch, moustache strips and tear streaks from the inner eye corners (QA): an anime
face is not shaded."""


def _below_mouth(atlas: AtlasGeometry, drawn: dict[str, np.ndarray]) -> np.ndarray:
    """(S, S) float32 0..1: the head below ANIME_SHADOW_BELOW_IOD under the lower lip (``drawn``'s
    ``lips_outer``), fading in over a tenth of an eye distance; 1 everywhere without lips."""
    if "lips_outer" not in drawn:
        return np.ones(atlas.mask.shape, np.float32)
    s = atlas.size
    xy = np.clip(np.floor(drawn["lips_outer"]).astype(int), 0, s - 1)
    lowest = float(atlas.frame.to_head(atlas.positions[xy[:, 1], xy[:, 0]])[:, 1].min())
    heights = atlas.frame.to_head(atlas.positions)[..., 1]
    below = smoothstep((lowest - ANIME_SHADOW_BELOW_IOD - heights) / 0.1).astype(np.float32)
    return below * atlas.mask


def anime(image: np.ndarray, ctx: StageContext) -> np.ndarray:
    """Anime cel look: one flat skin tone with one crisp shadow tone, simplified eyes (sclera, a large
    iris with a dark top and a highlight), thin brows, a strong lash line, a tiny nose mark."""
    p = ctx.style.classic
    atlas, rows = ctx.atlas, ctx.atlas.band_rows
    scale = atlas.size / 1024
    small, small_rows = _half(image, rows)
    smooth = edge_preserving(small, small_rows, 20.0 * scale, p.get("smooth_sigma_color", 0.15))
    mask_small, _ = _half(atlas.mask.astype(np.float32), rows)
    palette, votes = clean_regions(
        smooth, mask_small > 0.5, small_rows, int(p.get("colors", 4)), 1.0, 1.0, 4.0 * scale
    )
    skin = _skin_tone(image, atlas)
    skin = np.clip(styled_skin(skin, p.get("saturation", 1.2), 0.01) * p.get("skin_lift", 1.06), 0, 1)
    # Every region close to the skin becomes the one skin tone; the rest (hair) stays flat.
    palette, _ = collapse_skin(np.clip(_saturate(palette, 1.15), 0, 1), skin, p.get("skin_distance", 26.0))
    flat = palette[_crisp(votes, small_rows, image, rows)]
    shape = image.shape[:2]
    drawn, cleared = ctx.drawn(), moved_features(ctx, shape)
    if cleared is not None:  # the photo's features drawn on the head's own: theirs cleared
        flat = np.where(cleared[..., None] > 0.5, skin, _mix(flat, skin, cleared))
    threshold = p.get("shadow_threshold", 0.55)
    shadow = _shadow_shapes(atlas, 1.0, threshold) * _below_mouth(atlas, drawn)
    shade_colour = np.clip(skin * np.array([0.86, 0.72, 0.74], np.float32), 0, 1)
    is_skin = np.all(np.abs(flat - skin) < 1e-4, axis=-1)
    shaded = is_skin & (shadow > 0.5)
    flat = np.where(shaded[..., None], shade_colour, flat)
    hair = flat_hair_cover(ctx)
    _keep_shadow(ctx, shaded.astype(np.float32), threshold, hair)
    flat = flat_hair(flat, image, ctx, 1.15, ink=False, alpha=hair)
    unit = atlas.layout.face_texels_per_iod
    flat = drawn_eyes(flat, image, drawn, shape, unit, p)
    if "lips_outer" in drawn:  # the lips only as a faint tint
        lips = fill_polygon(shape, drawn["lips_outer"], feather=1.0)
        flat = _mix(flat, np.clip(skin * np.array([0.95, 0.72, 0.72], np.float32), 0, 1), lips * 0.6)
    ink = draw_strokes(shape, feature_strokes(drawn, unit, p.get("outline_width", 1.2), "anime"))
    return _mix(flat, np.array(p.get("ink_color", [0.12, 0.06, 0.07]), np.float32), ink)


def drawn_eyes(
    flat: np.ndarray,
    source: np.ndarray,
    lines: dict[str, np.ndarray],
    shape: tuple[int, int],
    unit: float,
    p,
    iris_share: float = 0.55,
    highlight: bool = True,
    iris_saturation: float = 1.4,
) -> np.ndarray:
    """Each eye redrawn as a flat style draws it inside the eye's outline: sclera, an iris of the
    photo's iris colour (saturated by ``iris_saturation``; ``iris_share`` of the opening's height in
    radius: anime's large, toon's and comic's smaller), darker under the upper lid, a pupil and,
    with ``highlight``, a catch light. Left to the palette, the eye's few texels went into the
    skin's or the sclera's colour: toon's and comic's eyes were outlines round skin, closed or
    blank."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    for eye in ("right_eye", "left_eye"):
        if eye not in lines:
            continue
        contour = lines[eye]
        inside = fill_polygon(shape, contour)
        if inside.sum() < 4:
            continue
        x0, y0 = np.floor(contour.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(contour.max(axis=0)).astype(int) + 3
        box = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
        # The iris: the darkest part of the photo's eye.
        region = inside[box] > 0.5
        lum = luminance(source[box])
        dark = region & (lum <= np.percentile(lum[region], 35)) if region.any() else region
        if dark.sum() < 2:
            continue
        cx, cy = xx[box][dark].mean(), yy[box][dark].mean()
        iris_colour = np.clip(_saturate(source[box][dark].mean(axis=0)[None], iris_saturation)[0] * 1.3, 0, 1)
        # Never red: the lids' rims and a warm print read into the eye's darkest part.
        iris_colour = np.clip(from_lab(plausible_iris(to_lab(iris_colour), lightest=100.0)), 0, 1)
        height = float(contour[:, 1].max() - contour[:, 1].min())
        r = max(iris_share * height, 0.12 * unit * iris_share / 0.55)
        d = np.sqrt((xx[box] - cx) ** 2 + (yy[box] - cy) ** 2)
        iris = np.clip(r - d + 0.5, 0, 1)
        pupil = np.clip(0.45 * r - d + 0.5, 0, 1)
        top = np.clip((cy - yy[box]) / r + 0.3, 0, 1)  # darker towards the upper lid
        hl = np.clip(
            0.22 * r - np.sqrt((xx[box] - cx - 0.35 * r) ** 2 + (yy[box] - cy + 0.35 * r) ** 2) + 0.5, 0, 1
        )
        eye_img = np.broadcast_to(np.array(p.get("sclera", [0.96, 0.95, 0.93]), np.float32), flat[box].shape)
        iris_img = _mix(np.broadcast_to(iris_colour, flat[box].shape).copy(), iris_colour * 0.35, top * 0.8)
        eye_img = _mix(eye_img, iris_img, iris)
        eye_img = _mix(eye_img, iris_colour * 0.15, pupil)
        if highlight:
            eye_img = _mix(eye_img, np.ones(3, np.float32), hl)
        flat[box] = _mix(flat[box], eye_img, inside[box])
    return flat


STYLE_FILTERS = {"painterly": painterly, "toon": toon, "comic": comic, "anime": anime}


class ClassicRepaint(Stage):
    """Wavelet detail transfer from the portrait, then the style's filter blended by ``ctx.strength``."""

    name = "repaint"
    engine = "classic"

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the repainted texture; the confidence is passed through."""
        style = ctx.style
        strength = float(np.clip(ctx.strength, 0.0, 1.0))
        conf = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0) * ctx.atlas.mask
        color = unit_range(texture.color)

        ctx.check_cancel()
        ctx.progress(0.0, "transferring portrait detail")
        out = transfer_detail(color, conf, ctx, style.classic_at("detail", 1.0, strength))
        out = fold_tint_taken_off(np.clip(out, 0.0, 1.0), ctx)

        ctx.check_cancel()
        name = str(style.classic_value("filter", "none"))
        if name != "none" and strength > 0:
            if name not in STYLE_FILTERS:
                ctx.warnings.append(f"unknown classic filter {name!r} in style {style.name!r}; none applied")
            else:
                ctx.progress(0.4, f"{name} filter")
                styled = np.clip(filters.caps_into_band(STYLE_FILTERS[name](out, ctx), ctx.atlas), 0.0, 1.0)
                # (1 - s) a + s b is exactly b at s = 1 (the toon palette stays a palette).
                out = (1.0 - strength) * out + strength * styled
        ctx.progress(1.0, "repaint done")
        return AtlasTexture(out.astype(np.float32), np.asarray(texture.confidence, np.float32).copy())
