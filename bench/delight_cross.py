"""The de-lighting when the photographed face is not the mesh (issue 10, item 1).

    PYTHONPATH=backend .venv/bin/python bench/delight_cross.py [--quick] [--out DIR] [--size 1024]

Every other ground truth of the project photographs the mesh it textures: the light a photo recorded
falls on the very surface the texture is laid on, and a de-lighting that models the shading with
the mesh's own normals is exact there. An artist's head is never the photographed person's: its
cheeks, brows and jaw turn other ways, and the photo's light must be taken off the person's face,
not off the sculpture's.

Here a *source* head (the scanned head of ``../shared/assets``, skipped loudly when absent, and the
demo head) is painted with an even skin (``SKIN_BASE`` everywhere; the demo head also gets eyes,
brows and lips painted on its features, as a face detector needs), rendered under known lights
from a known camera, and the render is laid on every *target* head (the source itself and the
others, stylized demo heads included). The true albedo of the skin is the same everywhere, so
whatever lightness the produced texture's skin still varies by is the photo's light left in or
the mesh's shape put in.

Measured on the target's skin zones (in the target's own head frame, eye distances from the eyes'
midpoint: forehead, both cheeks, the chin; facing the camera's side), the produced texture blurred
by 0.08 eye distances (grain and pores out, the light's scale in):

* ``left``: the 10th to 90th percentile range of CIELAB L* over the zones (the light left in);
* ``cheeks``: |L*(left cheek) − L*(right cheek)|, a side light's leftover;
* ``top``: L*(forehead) − L*(chin), a light from above or below;
* ``crease``: the target mesh's own creases put in: the correlation of the magnitudes of the fine
  bands of the texture's error and of the target's shading under the photo's light
  (``groundtruth.shading_correlations``, the sweep's crease measure), on the zones.

With ``--skin blotches`` the source's skin is the sweep's blotched one (``groundtruth.truth_texture``;
the demo head's made-up face, its painted features on the blotches): what the de-lighting costs the skin's own
pattern at the scale of a face's relief, ``kept``: the standard deviation of L* between Gaussians
of ``BAND_IOD`` eye distances over the target's zones, against the source albedo's over its own
(1: all kept). The light left in is not measured there (the albedo varies by itself; measured
against the same source rendered unlit, the registrations of the two renders differ by enough to
move the blotches by several L*).

Printed per case and the median and worst over self (source = target) and cross cases; per case
also the report's ``lighting`` (``detail_explained``, ``relief``, ``relief_strength``) and whether it
warned that the choice of whom the photo shows was unsure (``latent.relief_unsure``), counted at the
end.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(ROOT / "backend"))

import groundtruth as gt  # noqa: E402
from avatartex.image_io import load_texture, save_png  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.protocol import AvatarTexError, GenerateParams  # noqa: E402

LIGHTS = ("front", "side", "top", "two", "below")
YAW, PITCH, FOV = 12.0, 4.0, 30.0
BLUR_IOD = 0.08
ZONES = {
    # (u from, u to, v from, v to), eye distances: u towards the character's left, v up from the eyes.
    "forehead": (-0.55, 0.55, 0.45, 0.95),
    "right cheek": (-0.95, -0.45, -0.95, -0.35),
    "left cheek": (0.45, 0.95, -0.95, -0.35),
    "chin": (-0.3, 0.3, -1.75, -1.45),
}
"""Skin zones of a head in its own frame; the chin's is measured from the mouth (``_zones``)."""


BAND_IOD = (0.03, 0.5)
"""The skin pattern's band ``kept`` is measured in (eye distances)."""


def even_skin(head: gt.Head, surface: gt.TexelSurface) -> np.ndarray:
    """The head's texture with an even skin: the demo head's eyes, brows and lips painted as the
    made-up skin paints them, the rest ``SKIN_BASE``."""
    size = surface.mask.shape[0]
    texture = np.full((size, size, 3), 0.5, np.float32)
    colours = np.tile(gt.SKIN_BASE.astype(np.float32), (len(surface.positions), 1))
    if head.shape is not None:
        painted = gt.made_up_texture(surface.positions, head.shape, 3)
        skin = gt.skin_texture(surface.positions - np.array([0.0, -0.03, 0.05]), 3.2 * 0.064, 3)
        feature = np.abs(painted - np.clip(skin, 0, 1)).max(axis=1) > 1e-4
        colours[feature] = painted[feature]
    texture[surface.mask] = colours
    texture, _ = gt.raster.dilate(texture, surface.mask, 8)
    return texture


def _frame(head: gt.Head) -> tuple[np.ndarray, np.ndarray]:
    """(origin, (3, 3) rows u, v, w) of the head's own frame: the eyes' midpoint, towards the
    character's left eye, up from the mouth to the eyes, out of the face; the unit is the eye distance."""
    right, left = head.eyes
    origin = (right + left) / 2
    u = (left - right) / np.linalg.norm(left - right)
    v = origin - head.mouth
    v = v - u * (v @ u)
    v /= np.linalg.norm(v)
    return origin, np.stack([u, v, np.cross(u, v)])


def zones(head: gt.Head, surface: gt.TexelSurface, camera_direction: np.ndarray) -> dict[str, np.ndarray]:
    """Each skin zone's texels, (S, S) bool, facing the camera's side (normal . direction > 0.3)."""
    origin, axes = _frame(head)
    local = (surface.positions - origin) @ axes.T / head.iod
    mouth_v = float((head.mouth - origin) @ axes[1] / head.iod)
    front = (surface.normals @ camera_direction > 0.3) & (surface.normals @ axes[2] > 0.2)
    front &= local[:, 2] > -1.2
    out = {}
    for name, (u0, u1, v0, v1) in ZONES.items():
        if name == "chin":
            v0, v1 = mouth_v + (v0 + 1.2), mouth_v + (v1 + 1.2)
        inside = front & (local[:, 0] >= u0) & (local[:, 0] <= u1) & (local[:, 1] >= v0) & (local[:, 1] <= v1)
        grid = np.zeros(surface.mask.shape, bool)
        grid[surface.mask] = inside
        out[name] = grid
    return out


def lightness(texture: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """CIELAB L* of the texture blurred by ``sigma`` texels inside ``mask`` (normalised)."""
    import cv2
    from skimage.color import rgb2lab

    m = mask.astype(np.float32)
    blurred = cv2.GaussianBlur(texture * m[..., None], (0, 0), sigma)
    blurred /= np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-6)[..., None]
    return rgb2lab(np.clip(blurred, 0, 1))[..., 0]


def texels_per_iod(head: gt.Head, surface: gt.TexelSurface) -> float:
    """Texels per eye distance on the head's surface, from the mesh's area over the texels covering it."""
    corners = head.positions[head.triangles]
    area = 0.5 * np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    return head.iod / np.sqrt(area.sum() / max(int(surface.mask.sum()), 1))


def pattern(texture: np.ndarray, head: gt.Head, surface: gt.TexelSurface, where: np.ndarray) -> float:
    """The standard deviation of L* in the ``BAND_IOD`` band over the texels ``where``."""
    scale = texels_per_iod(head, surface)
    fine, coarse = (lightness(texture, surface.mask, max(b * scale, 1.0)) for b in BAND_IOD)
    return float(np.std((fine - coarse)[where]))


def measure(
    texture: np.ndarray,
    head: gt.Head,
    surface: gt.TexelSurface,
    direction: np.ndarray,
    shading: np.ndarray | None = None,
    albedo_pattern: float = float("nan"),
) -> dict:
    parts = zones(head, surface, direction)
    sigma = max(BLUR_IOD * texels_per_iod(head, surface), 1.0)
    light = lightness(texture, surface.mask, sigma)
    all_zones = np.logical_or.reduce(list(parts.values()))
    left = light[all_zones]
    mean = {k: float(light[v].mean()) if v.any() else float("nan") for k, v in parts.items()}
    crease = float("nan")
    if shading is not None:  # the target's own creases under the photo's light put in?
        crease = gt.shading_correlations(texture, even_skin(head, surface), shading, surface.mask, all_zones)[
            0
        ]
    return {
        "crease": crease,
        "left": float(np.percentile(left, 90) - np.percentile(left, 10)),
        "kept": pattern(texture, head, surface, all_zones) / albedo_pattern,
        "cheeks": abs(mean["left cheek"] - mean["right cheek"]),
        "top": mean["forehead"] - mean["chin"],
        "texels": int(all_zones.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two lights (front, side) instead of five")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=None, help="write the renders and textures here")
    parser.add_argument("--skin", choices=("even", "blotches"), default="even", help="the source's skin")
    args = parser.parse_args(argv)

    scan = gt.load_scan()
    if scan is None:
        print(f"SKIPPED: the scanned head ({gt.SHARED_SCAN}) is absent; demo heads only", flush=True)
    sources = [h for h in (scan, gt.demo_head()) if h is not None]
    targets = [h for h in (scan, gt.demo_head(), gt.demo_head("wide_jaw"), gt.demo_head("big_eyes")) if h]
    lights = LIGHTS[:2] if args.quick else LIGHTS
    generator = Generator(cache_size=8)
    work = Path(tempfile.mkdtemp(prefix="delight_cross_"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its textures: gigabytes over a run
    out = args.out
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    captures = {}
    surfaces = {}
    for head in targets:
        captures[head.name] = head.path or gt.write_capture(
            head, gt.placement("none", head), work / f"{head.name}.npz"
        )
        surfaces[head.name] = gt.texel_surface(head, args.size)
    rows = []
    start = time.perf_counter()
    blotches = args.skin == "blotches"
    for source in sources:
        surface = gt.texel_surface(source, 1024)
        if blotches:  # the sweep's skins: made up where the head's features are known
            albedo = gt.truth_texture(source, surface, "blotches" if source.shape is None else "made_up", 3)
        else:
            albedo = even_skin(source, surface)
        camera = gt.portrait_camera(source, YAW, PITCH, 0.0, FOV, 1024, 1024)
        direction = np.array([np.sin(np.radians(YAW)), np.sin(np.radians(PITCH)), np.cos(np.radians(YAW))])
        albedo_pattern = float("nan")
        if blotches:
            where = np.logical_or.reduce(list(zones(source, surface, direction).values()))
            albedo_pattern = pattern(albedo, source, surface, where)
        for light in lights:
            sun, ambient = gt.lights_for(light, YAW, False)
            render = gt.render_portrait(source, albedo, camera, sun, ambient, np.full((1024, 1024, 3), 0.45))
            name = f"{source.name}_{light}"
            portrait = save_png(work / f"{name}.png", render.image)
            if out is not None:
                save_png(out / f"portrait_{name}.png", render.image)
            for target in targets:
                params = GenerateParams(
                    mesh=str(captures[target.name]),
                    portrait=str(portrait),
                    out_dir=str(work / f"{name}_{target.name}"),
                    size=args.size,
                    engine="classic",
                )
                try:
                    result = generator.generate(params)
                except AvatarTexError as exc:
                    print(f"{name:<22} -> {target.name:<14} failed: {exc.code}", flush=True)
                    continue
                texture = load_texture(result["texture"])[..., :3]
                if out is not None:
                    save_png(out / f"texture_{name}_{target.name}.png", texture)
                row = {"case": f"{name} -> {target.name}", "self": target.name == source.name}
                lighting = result["report"].get("lighting", {})
                row["relief"] = lighting.get("relief", float("nan"))
                row["strength"] = lighting.get("relief_strength", float("nan"))
                row["explained"] = lighting.get("detail_explained", float("nan"))
                row["warned"] = any("relief" in w for w in result["report"].get("warnings", []))
                # The crease measure takes the target's truth for the even skin: not for the blotches.
                shading = None if blotches else gt.texel_shading(target, surfaces[target.name], sun, ambient)
                row.update(
                    measure(texture, target, surfaces[target.name], direction, shading, albedo_pattern)
                )
                rows.append(row)
                figures = (
                    f"kept {row['kept']:4.2f}"
                    if blotches
                    else f"L* left {row['left']:5.1f}, cheeks {row['cheeks']:4.1f}, "
                    f"forehead - chin {row['top']:+5.1f}, crease {row['crease']:+.3f}"
                )
                print(
                    f"{row['case']:<40} {figures} ({row['texels']} texels); explained "
                    f"{row['explained']:.2f}, relief {row['relief']:.2f} of {row['strength']:.3f}"
                    f"{' (warned)' if row['warned'] else ''}",
                    flush=True,
                )
    print(
        f"\n{len(rows)} cases in {time.perf_counter() - start:.0f} s "
        f"(PYTHONPATH=backend .venv/bin/python bench/delight_cross.py{' --quick' if args.quick else ''}"
        f"{' --skin blotches' if blotches else ''})"
    )
    for label, pick in (("self", True), ("cross", False)):
        chosen = [r for r in rows if r["self"] == pick]
        if not chosen:
            continue
        warned = sum(r["warned"] for r in chosen)
        print(f"{label:<5} warned that whom the photo shows was unsure: {warned} of {len(chosen)}")
        keys = (
            (("kept", "ratio"),)
            if blotches
            else (("left", "L*"), ("cheeks", "L*"), ("top", "L*"), ("crease", "corr"))
        )
        for key, unit in keys:
            v = np.abs([r[key] for r in chosen])
            worst = v.min() if key == "kept" else v.max()  # the least kept
            print(
                f"{label:<5} {key:<7} median {np.median(v):5.2f}, worst {worst:5.2f} {unit} ({len(v)} cases)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
