"""Smears, background, chin and neck, measured as an artist sees them (issue 10, items 2 and 5).

    PYTHONPATH=backend .venv/bin/python bench/look.py [--out DIR] [--size 1024] [--quick]

Part 1, real photos: the scanned head of ``../shared/assets`` (skipped, loudly, when absent) and the
project's demo head, with ``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg``, each
generated on the classic engine (photoreal). Written per case: the textured head from the front,
both three-quarters, both sides and from below (``look_<head>_<photo>.png``), the same with the
streaks found painted red (``streaks_<head>_<photo>.png``), and the atlas before and after the
stages (``atlas_<head>_<photo>.png``: colour x confidence, confidence, result).

**Streaks**, measured in the head atlas (every texel a side, back or under view shows). A smear is
the photo stretched over the surface: where the surface turns away from the camera, one step in
the photo spans many texels along one direction (the *smear direction*, where the portrait
coordinate changes least), and any edge of the photo becomes a line along it. From the projection's
own portrait coordinates, by finite differences in the atlas with the surface's metric, each texel
gets its stretch (the ratio of the singular values of the surface -> portrait Jacobian) and its
smear direction. A texel is a *streak texel* where the produced texture has there a visible
(luminance gradient >= 0.02 per texel, structure tensor over sigma 1.5 texels), strongly
anisotropic edge (coherence >= 0.5) whose isophote runs within 20 degrees of the smear direction
(angles taken on the surface), on a surface stretched at least 2.5:1 (a round freckle would become
a 2.5:1 dash), where the photo is or within 0.1 eye distances of it (a fill can continue a smear;
the synthetic grain far from the photo only lines up by chance). A streak is a connected component
of streak texels; its length is its extent on the surface (along its principal axis), as a share of
the head's height (the crown's top to the chin landmark, along the head's up axis).
Printed: per case the longest streak and the number longer than 5 %; over the cases the median and
the worst. Target: none longer than 5 %.

**Glasses**: whether the regions step found glasses on the photo (``glasses.find_glasses``: Grace
Hopper wears them, the astronaut does not); their frames are filled, not painted on the face.

**The face's border** (``face_border``): the same step all the way round the seen face, and its
lightness step (a border darker than the fill beside it reads as the edge of a mask).

**Chin and neck**, in the atlas (``chin_and_neck``): the seam under the chin (below the mouth,
along the line where the photo's confidence crosses 0.5, the median CIE76 ΔE between the mean
colours of each line texel's 5 x 5 neighbours on its two sides: a photo that fades out steps a
little there, one cut off on a hard edge steps all at once), and the tone of the filled neck and
of every filled texel against the seen face's median colour (ΔE).

Part 2, ground truth (bench/groundtruth.py): the heads rendered with a photograph behind them from
a few known cameras; the pipeline's projection is tapped. A seen texel is a texel the projection
gives confidence >= 0.5; it *takes background colour* where its portrait sample lies on the
background (the true render shows no head at the pixel the sample's centre falls in). Printed: the
share of seen texels that do (target 0 %), the same counting any of the sample's four bilinear taps,
and the confidence-weighted share of all texels.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(ROOT / "backend"))

import groundtruth as gt  # noqa: E402
from avatartex import demo_head  # noqa: E402
from avatartex.bake import bake  # noqa: E402
from avatartex.camera import Camera  # noqa: E402
from avatartex.image_io import load_texture, save_png  # noqa: E402
from avatartex.mesh import Mesh, load_mesh, save_capture  # noqa: E402
from avatartex.pipeline import Generator, steps  # noqa: E402
from avatartex.preview import render_view  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402

SCANNED_HEAD = ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb"
CHIN = 152
"""mediapipe's landmark at the bottom of the chin."""

MIN_STRETCH = 2.5
MIN_EDGE = 0.02
MIN_COHERENCE = 0.5
MAX_ANGLE_DEG = 20.0
STREAK_LIMIT = 0.05
VIEWS = (("front", 0.0, 0.0), ("3/4 left", 45.0, 0.0), ("left", 90.0, 0.0), ("right", -90.0, 0.0),
         ("3/4 right", -45.0, 0.0), ("below", 0.0, -40.0))  # fmt: skip
"""(name, azimuth towards the character's left, elevation) in degrees."""


# --- the pipeline, tapped -----------------------------------------------------------------------------


class Tap:
    """Keeps what the last request's project and bake steps saw (the generator calls them through
    ``pipeline.steps``)."""

    def __init__(self) -> None:
        self.projection = self.geometry = self.head = self.atlas = None
        project, bake_texture = steps.project, steps.bake_texture

        def tapped_project(geometry, head, *args, **kwargs):
            self.geometry, self.head = geometry, head
            self.projection = project(geometry, head, *args, **kwargs)
            return self.projection

        def tapped_bake(*args, **kwargs):
            texture, self.atlas = bake_texture(*args, **kwargs)
            return texture, self.atlas

        steps.project, steps.bake_texture = tapped_project, tapped_bake


# --- measures ------------------------------------------------------------------------------------------


def _atlas_derivatives(values: np.ndarray, geometry, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences (d/dx, d/dy) of an atlas image where both neighbours are valid and on the
    same surface (not across a chart border, a depth step or the band's edge); NaN elsewhere."""
    chart = geometry.chart
    pos = geometry.positions
    step = 4.0 * np.nanmedian(np.linalg.norm(np.diff(pos[geometry.mask.nonzero()][:2000], axis=0), axis=1))
    out = []
    for axis in (1, 0):
        fwd = np.roll(values, -1, axis=axis)
        bwd = np.roll(values, 1, axis=axis)
        ok = valid & np.roll(valid, -1, axis=axis) & np.roll(valid, 1, axis=axis)
        ok &= (np.roll(chart, -1, axis=axis) == chart) & (np.roll(chart, 1, axis=axis) == chart)
        gap = np.linalg.norm(np.roll(pos, -1, axis=axis) - np.roll(pos, 1, axis=axis), axis=-1)
        ok &= gap < max(step, 1e-9)
        d = (fwd - bwd) * 0.5
        out.append(np.where(ok[..., None] if d.ndim == 3 else ok, d, np.nan))
    return out[0], out[1]


@dataclass
class Stretch:
    """How the photo lies on each atlas texel."""

    ratio: np.ndarray
    """(S, S) singular-value ratio of the surface -> portrait Jacobian (1 = undistorted); NaN unknown."""
    smear: np.ndarray
    """(S, S, 2) unit atlas direction along which the portrait coordinate changes least."""
    frame: tuple[np.ndarray, np.ndarray]
    """d(position)/dx and d(position)/dy of the atlas, (S, S, 3) each (to take angles on the surface)."""


def stretch_field(geometry, portrait_coords: np.ndarray) -> Stretch:
    """The photo's stretch over the surface, from finite differences of the portrait coordinates."""
    seen = geometry.mask & np.isfinite(portrait_coords[..., 0])
    px, py = _atlas_derivatives(np.nan_to_num(portrait_coords), geometry, seen)
    dx, dy = _atlas_derivatives(geometry.positions.astype(np.float64), geometry, geometry.mask)
    # Generalised eigenproblem J^T J v = lambda G v (G the surface metric of the atlas).
    g = np.stack([np.stack([(dx * dx).sum(-1), (dx * dy).sum(-1)], -1),
                  np.stack([(dx * dy).sum(-1), (dy * dy).sum(-1)], -1)], -2)  # fmt: skip
    j = np.stack([px, py], -1)  # (S, S, 2 portrait, 2 atlas)
    jtj = np.einsum("...ki,...kj->...ij", j, j)
    ok = np.isfinite(g).all(axis=(-1, -2)) & np.isfinite(jtj).all(axis=(-1, -2))
    ok &= np.nan_to_num(np.linalg.det(np.where(ok[..., None, None], g, np.eye(2)))) > 1e-20
    g = np.where(ok[..., None, None], g, np.eye(2))
    jtj = np.where(ok[..., None, None], jtj, np.eye(2))
    # Whiten by G^-1/2, then an ordinary symmetric eigenproblem.
    gw, gv = np.linalg.eigh(g)
    inv_sqrt = np.einsum("...ik,...k,...jk->...ij", gv, 1.0 / np.sqrt(np.maximum(gw, 1e-30)), gv)
    m = inv_sqrt @ jtj @ inv_sqrt
    w, v = np.linalg.eigh(m)
    ratio = np.sqrt(np.maximum(w[..., 1], 1e-30) / np.maximum(w[..., 0], 1e-30))
    smear = np.einsum("...ij,...j->...i", inv_sqrt, v[..., :, 0])
    smear /= np.maximum(np.linalg.norm(smear, axis=-1, keepdims=True), 1e-30)
    return Stretch(np.where(ok, ratio, np.nan), smear, (dx, dy))


def head_height(head) -> float:
    """Crown top to the chin landmark along the head's up axis, in the pipeline's mesh units."""
    up = head.frame.axes[1]
    top = float((head.mesh.positions @ up).max())
    chin = head.landmarks.points3d[CHIN]
    if not np.isfinite(chin).all():
        return float(np.ptp(head.mesh.positions @ up))
    return top - float(chin @ up)


def _on_surface(vectors: np.ndarray, frame: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Atlas vectors (S, S, 2) as unit 3D tangent vectors."""
    dx, dy = frame
    out = np.nan_to_num(dx) * vectors[..., :1] + np.nan_to_num(dy) * vectors[..., 1:]
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-30)


def streaks(
    atlas: np.ndarray, geometry, portrait_coords: np.ndarray, height: float, confidence: np.ndarray
) -> tuple[np.ndarray, list]:
    """(streak texel mask, lengths of the streaks as shares of ``height``, longest first).

    Only where the photo is, or next to it (within 0.1 eye distances of a texel with confidence):
    a streak is the photo drawn out over the surface, by the projection or by a fill continuing it;
    the synthetic grain far from the photo is random and only sometimes lines up by chance."""
    stretch = stretch_field(geometry, portrait_coords)
    lum = cv2.cvtColor(np.clip(atlas, 0, 1).astype(np.float32), cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    t = [cv2.GaussianBlur(a, (0, 0), 1.5) for a in (gx * gx, gx * gy, gy * gy)]
    half_trace, diff = 0.5 * (t[0] + t[2]), np.sqrt(0.25 * (t[0] - t[2]) ** 2 + t[1] ** 2)
    l1, l2 = half_trace + diff, np.maximum(half_trace - diff, 0)
    coherence = ((l1 - l2) / np.maximum(l1 + l2, 1e-12)) ** 2
    # The isophote (direction of least change) is perpendicular to the dominant gradient.
    theta = 0.5 * np.arctan2(2 * t[1], t[0] - t[2])
    isophote = np.stack([-np.sin(theta), np.cos(theta)], -1)
    along = np.abs((_on_surface(isophote, stretch.frame) * _on_surface(stretch.smear, stretch.frame)).sum(-1))
    reach = max(1, int(round(0.1 * geometry.layout.face_texels_per_iod)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    near_photo = cv2.dilate((confidence >= 0.05).astype(np.uint8), kernel) > 0
    mask = (
        geometry.mask
        & near_photo
        & (np.nan_to_num(stretch.ratio) >= MIN_STRETCH)
        & (np.sqrt(l1) >= MIN_EDGE)
        & (coherence >= MIN_COHERENCE)
        & (along >= np.cos(np.radians(MAX_ANGLE_DEG)))
    )
    labels, count = ndimage.label(mask, np.ones((3, 3), bool))
    lengths = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        pts = geometry.positions[region][labels[region] == index].astype(np.float64)
        if len(pts) < 3:
            continue
        centred = pts - pts.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        lengths.append(float(np.ptp(centred @ axis)) / height)
    return mask, sorted(lengths, reverse=True)


def _steps_across(lab: np.ndarray, half: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per texel, the CIELAB mean of its 5 x 5 neighbours in ``half`` less that of those in
    ``other`` (S, S, 3), and where both sides hold enough of the box to say (S, S) bool."""

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.blur(a.astype(np.float32), (5, 5), borderType=cv2.BORDER_CONSTANT)

    n_in, n_out = box(half), box(other)
    mean_in = np.stack([box(lab[..., k] * half) for k in range(3)], -1) / np.maximum(n_in, 1e-6)[..., None]
    mean_out = np.stack([box(lab[..., k] * other) for k in range(3)], -1) / np.maximum(n_out, 1e-6)[..., None]
    return mean_in - mean_out, (n_in > 0.2) & (n_out > 0.2)


def face_border(atlas: np.ndarray, geometry, confidence: np.ndarray) -> tuple[float, float]:
    """The seen face's border against the fill beside it, all the way round (the chin seam's measure
    on the whole line where the photo's confidence crosses 0.5): the median CIE76 ΔE step, and the
    median lightness step (L* inside less outside: negative where the face's border is darker than
    the skin filled next to it, a mask's edge)."""
    from skimage.color import rgb2lab

    mask = geometry.mask
    lab = rgb2lab(np.clip(atlas, 0, 1))
    half = mask & (confidence >= 0.5)
    other = mask & ~half
    line = half & (cv2.dilate(other.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    step, measured = _steps_across(lab, half, other)
    along = line & measured
    if along.sum() < 20:
        return float("nan"), float("nan")
    return float(np.median(np.linalg.norm(step[along], axis=-1))), float(np.median(step[along][:, 0]))


def chin_and_neck(atlas: np.ndarray, geometry, head, confidence: np.ndarray) -> tuple[float, float, float]:
    """(the seam under the chin, the unseen neck's tone and every unseen texel's tone against the
    face's), each a CIE76 ΔE of CIELAB colours of the produced atlas: mean against mean for the seam,
    mean against the median of the seen face (the face outline's texels the photo backs) for the
    tones.

    The seam: below the mouth on the front of the head, along the line where the photo's confidence
    crosses 0.5, the median colour step between each line texel's 5 x 5 neighbours on the two sides.
    The neck: filled texels on the front from 0.1 to 1.2 eye distances below the chin landmark
    (under the chin and the neck).
    """
    from skimage.color import rgb2lab

    frame = head.frame
    mask = geometry.mask
    pts = np.full(mask.shape + (3,), np.nan)
    pts[mask] = frame.to_head(geometry.positions[mask])  # eye distances, y up, z out of the face
    chin = frame.to_head(head.landmarks.points3d[CHIN][None])[0]
    mouth = frame.to_head(head.landmarks.points3d[[61, 291]]).mean(axis=0)
    lab = rgb2lab(np.clip(atlas, 0, 1))
    seen, unseen = mask & (confidence >= 0.9), mask & (confidence <= 0.02)
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    face = seen & geometry.face if (seen & geometry.face).sum() >= 200 else seen
    face_tone = np.median(lab[face], axis=0)

    def delta(a: np.ndarray, b: np.ndarray | None = None) -> float:
        if a.sum() < 20 or (b is not None and b.sum() < 20):
            return float("nan")
        return float(np.linalg.norm(lab[a].mean(0) - (face_tone if b is None else lab[b].mean(0))))

    # The seam: along the line where the confidence crosses 0.5 below the mouth, the colour step
    # between a texel's 5 x 5 neighbours on either side of it (a photo fading out over a few texels
    # steps a little at each; one cut off steps all at once).
    half = mask & (confidence >= 0.5)
    other = mask & ~half
    line = half & (cv2.dilate(other.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    below = line & (np.abs(np.nan_to_num(x, nan=9)) < 0.9) & (np.nan_to_num(y, nan=9) < mouth[1])
    below &= np.nan_to_num(z, nan=-9) > chin[2] - 1.5

    step, measured = _steps_across(lab, half, other)
    steps = np.linalg.norm(step, axis=-1)[below & measured]
    seam = float(np.median(steps)) if steps.size >= 20 else float("nan")
    neck = unseen & (np.abs(np.nan_to_num(x, nan=9)) < 0.9) & (np.nan_to_num(y, nan=9) < chin[1] - 0.1)
    neck &= np.nan_to_num(y, nan=-9) > chin[1] - 1.2
    return seam, delta(neck), delta(unseen)


def background_share(
    render: gt.Render, coords: np.ndarray, conf: np.ndarray, scale: float
) -> tuple[float, ...]:
    """(share of seen texels whose sample's centre pixel is background, the same for any bilinear tap,
    confidence-weighted share of all texels, seen texels)."""
    hit = np.isfinite(coords[..., 0]) & (conf > 0)
    xy = coords[hit] * scale
    c = conf[hit]
    h, w = render.depth.shape
    background = ~np.isfinite(render.depth)
    centre = background[np.clip(xy[:, 1].astype(int), 0, h - 1), np.clip(xy[:, 0].astype(int), 0, w - 1)]
    x0 = np.floor(xy[:, 0] - 0.5).astype(int)
    y0 = np.floor(xy[:, 1] - 0.5).astype(int)
    any_tap = np.zeros(len(xy), bool)
    for dy in (0, 1):
        for dx in (0, 1):
            any_tap |= background[np.clip(y0 + dy, 0, h - 1), np.clip(x0 + dx, 0, w - 1)]
    seen = c >= 0.5
    n = max(int(seen.sum()), 1)
    weighted = float((c * centre).sum() / max(c.sum(), 1e-9))
    return float(centre[seen].sum() / n), float(any_tap[seen].sum() / n), weighted, int(seen.sum())


# --- pictures --------------------------------------------------------------------------------------------


def view_camera(positions: np.ndarray, azimuth: float, elevation: float, size: int) -> Camera:
    """A camera framing the whole mesh (+Y up, face towards +Z) from ``azimuth``/``elevation``."""
    centre = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
    radius = float(np.linalg.norm(positions - centre, axis=1).max())
    a, e = np.radians(azimuth), np.radians(elevation)
    direction = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
    distance = 1.05 * radius / np.sin(np.radians(10.0))
    return Camera.look_at(centre + distance * direction, centre, np.array([0.0, 1.0, 0.0]), 20.0, size, size)


def views(mesh: Mesh, texture: np.ndarray, size: int = 320) -> np.ndarray:
    """The textured mesh from every view of VIEWS, side by side, uint8."""
    out = []
    for _, azimuth, elevation in VIEWS:
        image, _ = render_view(mesh, texture, view_camera(mesh.positions, azimuth, elevation, 2 * size))
        out.append(image.reshape(size, 2, size, 2, 3).mean(axis=(1, 3)))
    return (np.clip(np.concatenate(out, axis=1), 0, 1) * 255 + 0.5).astype(np.uint8)


def to8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


# --- the cases -------------------------------------------------------------------------------------------


def real_cases(work: Path, only: str = "") -> tuple[list, list]:
    """(heads as (label, mesh path), photos as (label, image path))."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    heads = []
    if SCANNED_HEAD.exists():
        heads.append(("scan", str(SCANNED_HEAD)))
    else:
        print(f"SKIPPED the scanned head: {SCANNED_HEAD} not found (../shared absent)", file=sys.stderr)
    positions, triangles, uvs, pins = demo_head.make_demo_head()
    path = work / "demo_head.npz"
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), path)
    heads.append(("demo", str(path)))
    astronaut = work / "astronaut.png"
    save_png(astronaut, np.asarray(skimage.data.astronaut(), np.uint8))
    hopper = work / "grace_hopper.png"
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        Image.open(handle).convert("RGB").save(hopper)
    photos = [("astronaut", str(astronaut)), ("hopper", str(hopper))]
    return heads, photos


@dataclass
class TruthCase:
    """One ground-truth portrait: a head, a camera (degrees, framing) and a light, over a photo."""

    head: str
    yaw: float
    pitch: float
    fov: float = 30.0
    fill: float = 0.6
    shift: tuple[float, float] = (0.0, 0.0)
    light: str = "front"
    skin: str = "blotches"
    background: str = "rocket"
    """Which ``skimage.data`` photograph is behind the head: rocket, coffee or chelsea."""


TRUTH_CASES = (
    TruthCase("scan", 0, 0, background="coffee"),
    TruthCase("scan", 30, 5, background="chelsea"),
    TruthCase("demo", 0, 0, background="rocket"),
    TruthCase("demo", 30, 5, background="coffee"),
    TruthCase("scan", -40, -8, background="rocket"),
    TruthCase("scan", 20, -10, 25, 0.75, (0.3, 0.2), "side", background="chelsea"),
    TruthCase("scan", -15, 10, 50, 0.45, (-0.4, 0.0), "top", "photo", background="coffee"),
    TruthCase("demo", -20, -5, 40, 0.7, (0.0, -0.3), "two", "stripes", background="chelsea"),
)
"""The quick run takes the first four."""


def run_real(generator: Generator, tap: Tap, work: Path, out: Path, size: int, only: str = "") -> list[dict]:
    heads, photos = real_cases(work, only)
    if only:
        heads = [h for h in heads if h[0] in only.split(",")]
    rows = []
    for head_label, mesh_path in heads:
        mesh = load_mesh(mesh_path)
        for photo_label, photo_path in photos:
            started = time.perf_counter()
            name = f"{head_label}_{photo_label}"
            params = GenerateParams(
                mesh=mesh_path, portrait=photo_path, out_dir=str(work / name), size=size, engine="classic"
            )
            result = generator.generate(params)
            texture = load_texture(result["texture"])
            projection, geometry, head = tap.projection, tap.geometry, tap.head
            confidence = projection.partial.confidence
            mask, lengths = streaks(
                tap.atlas, geometry, projection.portrait_coords, head_height(head), confidence
            )
            seam, neck_de, unseen_de = chin_and_neck(tap.atlas, geometry, head, confidence)
            border, border_dl = face_border(tap.atlas, geometry, confidence)
            save_png(out / f"look_{name}.png", views(mesh, texture))
            marked = np.where(mask[..., None], np.array([1.0, 0.0, 0.0], np.float32), tap.atlas)
            marked_texture = bake(geometry, marked, head.surface(size))
            save_png(out / f"streaks_{name}.png", views(mesh, marked_texture))
            conf = projection.partial.confidence
            partial = projection.partial.color * conf[..., None]
            save_png(
                out / f"atlas_{name}.png",
                to8(np.concatenate([partial, np.repeat(conf[..., None], 3, 2), tap.atlas], 1)),
            )
            row = {
                "case": name,
                "longest": lengths[0] if lengths else 0.0,
                "over": sum(x > STREAK_LIMIT for x in lengths),
                "chin_seam": seam,
                "neck_de": neck_de,
                "unseen_de": unseen_de,
                "border_de": border,
                "border_dl": border_dl,
                "project_s": result["report"]["timings"].get("project"),
                "glasses": bool(result["report"].get("regions", {}).get("glasses")),
                "seconds": time.perf_counter() - started,
            }
            rows.append(row)
            print(
                f"{name:<18} longest streak {100 * row['longest']:5.1f} % of the head's height, "
                f"{row['over']:3d} over 5 %; seam under the chin ΔE {seam:5.1f}; "
                f"unseen neck / all unseen vs the face ΔE {neck_de:5.1f} / {unseen_de:5.1f}; "
                f"the face's border ΔE {border:4.1f}, L* {border_dl:+5.1f}; "
                f"glasses {'found' if row['glasses'] else 'none'}; "
                f"project {row['project_s']:.2f} s ({row['seconds']:.1f} s)",
                flush=True,
            )
    return rows


def photo_background(name: str, width: int, height: int) -> np.ndarray:
    """A ``skimage.data`` photograph resized to fill the portrait (as ``groundtruth.background_image``)."""
    import skimage.data

    photo = getattr(skimage.data, name)()
    photo = (np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., :3]) / 255.0
    return cv2.resize(photo.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)


def run_groundtruth(
    generator: Generator, tap: Tap, work: Path, out: Path, size: int, quick: bool
) -> list[dict]:
    from avatartex.protocol import AvatarTexError

    heads = {"scan": gt.load_scan(), "demo": gt.demo_head()}
    rows = []
    for case in TRUTH_CASES[:4] if quick else TRUTH_CASES:
        head = heads[case.head]
        if head is None:
            continue
        surface = gt.texel_surface(head, size)
        truth = gt.truth_texture(head, surface, case.skin, 1)
        mesh_path = head.path or gt.write_capture(head, gt.placement("none", head), work / f"{head.name}.npz")
        name = f"gt_{head.name}_yaw{case.yaw:+.0f}_pitch{case.pitch:+.0f}_{case.light}_{case.background}"
        camera = gt.portrait_camera(
            head, case.yaw, case.pitch, 0.0, case.fov, 1024, 1024, case.fill, case.shift
        )
        lights, ambient = gt.lights_for(case.light, case.yaw, False)
        background = photo_background(case.background, 1024, 1024)
        render = gt.render_portrait(head, truth, camera, lights, ambient, background)
        portrait = save_png(work / f"{name}.png", render.image)
        params = GenerateParams(
            mesh=str(mesh_path), portrait=str(portrait), out_dir=str(work / name), size=size, engine="classic"
        )
        try:
            result = generator.generate(params)
        except AvatarTexError as exc:
            print(f"{name:<44} not found: {exc.code}", flush=True)
            continue
        projection = tap.projection
        scale = 1024 / float((result["report"].get("portrait") or {}).get("size", [1024])[0])
        share, any_tap, weighted, seen = background_share(
            render, projection.portrait_coords, projection.partial.confidence, scale
        )
        rows.append({"case": name, "share": share, "any_tap": any_tap, "weighted": weighted})
        print(
            f"{name:<44} seen texels {seen:7d}: on the background {100 * share:6.3f} % "
            f"(any bilinear tap {100 * any_tap:6.3f} %, confidence-weighted {100 * weighted:6.3f} %)",
            flush=True,
        )
        # The portrait with the pixels the seen texels read darkened, the background ones red.
        mark = render.image.copy()
        hit = np.isfinite(projection.portrait_coords[..., 0]) & (projection.partial.confidence >= 0.5)
        xy = np.clip((projection.portrait_coords[hit] * scale).astype(int), 0, 1023)
        mark[xy[:, 1], xy[:, 0]] *= 0.5
        wrong = ~np.isfinite(render.depth[xy[:, 1], xy[:, 0]])
        mark[xy[wrong, 1], xy[wrong, 0]] = (1.0, 0.0, 0.0)
        save_png(out / f"{name}.png", to8(mark))
    return rows


def summary(label: str, values: list[float], unit: str = "%", scale: float = 100.0) -> str:
    if not values:
        return f"{label}: no cases"
    v = np.asarray(values, np.float64) * scale
    return f"{label}: median {np.median(v):.2f} {unit}, worst {v.max():.2f} {unit} ({len(v)} cases)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "avatartex-look"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="four ground-truth portraits instead of eight")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--heads", default="", help="comma-separated subset of the real heads: scan, demo")
    parser.add_argument("--skip-groundtruth", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="avatartex-look-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its textures: gigabytes over a run
    generator = Generator()
    tap = Tap()
    real = [] if args.skip_real else run_real(generator, tap, work, out, args.size, args.heads)
    truth = [] if args.skip_groundtruth else run_groundtruth(generator, tap, work, out, args.size, args.quick)
    print()
    print(
        "command: PYTHONPATH=backend python bench/look.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    if real:
        print(summary("longest streak, share of the head's height", [r["longest"] for r in real]))
        print(f"streaks over 5 %: {sum(r['over'] for r in real)} in {len(real)} cases")
        print(summary("seam under the chin, ΔE", [r["chin_seam"] for r in real], "", 1.0))
        print(summary("unseen neck vs the face, ΔE", [r["neck_de"] for r in real], "", 1.0))
        print(summary("every unseen texel vs the face, ΔE", [r["unseen_de"] for r in real], "", 1.0))
        print(
            summary(
                "the seen face's border against the fill beside it, ΔE",
                [r["border_de"] for r in real],
                "",
                1.0,
            )
        )
        dl = [r["border_dl"] for r in real]
        print(f"  its lightness step (inside - outside), median {np.median(dl):+.1f}, darkest {min(dl):+.1f}")
    if truth:
        print(summary("ground truth, seen texels on the background", [r["share"] for r in truth]))
        print(
            summary(
                "ground truth, seen texels with a bilinear tap on the background",
                [r["any_tap"] for r in truth],
            )
        )
    print(f"pictures in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
