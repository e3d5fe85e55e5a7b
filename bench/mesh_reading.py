"""How the face detector reads the *mesh* (issue 8): its landmarks on the untextured, shaded render
the registration uses, against its landmarks on the same view painted with a face.

    PYTHONPATH=backend python bench/mesh_reading.py [--paint-eyes] [--json rows.json]

The photo's landmarks are read from a face's colours (eyes, brows, lips); the mesh's from its
shading alone. Where the two readings differ, the registration maps the photo's features onto
places its own detector put them, not onto the mesh's features. On each head of the demo family
(whose eyeballs, brows and lips are known, ``groundtruth.made_up_texture``), for several views and
lights, the detector reads

* the *painted* portrait (the made-up skin, as ``bench/sweep.py``'s ``m`` cases), its landmarks
  lifted onto the mesh through the true camera: where a detector puts a painted face's features;
* the *shaded* render of the same view lit like that portrait (``landmarks.detect_from_camera``,
  the registration's view-matched reading): where it puts them from the shading,

and prints, per feature group, the mean distance between the two readings' surface points and its
vertical part (negative: the shading's reading is lower), in the head's eye distances; and the
eye distance of the canonical reading (``landmarks.detect_mesh_landmarks``) over the eyeballs'.

``--paint-eyes`` paints the eyeballs on the shaded render too (the demo head's known spheres): what
a mesh whose eyes are recognised as eyes would give. The gap is the room for a geometric witness
of the mesh's eyes (issue 8 note, session 16).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402

VIEWS = ((0.0, 0.0), (20.0, 5.0), (-30.0, -5.0))
"""(yaw, pitch) in degrees."""
LIGHTS = ("front", "side")
SIZE = 512


def groups() -> dict[str, tuple[int, ...]]:
    from avatartex import face as fc

    return {
        "eyes": fc.RIGHT_EYE_CONTOUR + fc.LEFT_EYE_CONTOUR,
        "brows": fc.RIGHT_EYEBROW + fc.LEFT_EYEBROW,
        "nose": fc.NOSE_BRIDGE + fc.NOSE_LOWER,
        "lips": fc.LIPS_OUTER,
    }


def with_eyes_painted(render, head: gt.Head, to_head=None):
    """``render`` (``landmarks.render_lit_like`` or ``render_shaded``: image, tri_id, bary, world)
    with ``head``'s eyeballs painted (sclera, iris, pupil), shaded as the render's skin is.
    ``to_head`` maps the render's world points into the head's own frame where the mesh rendered is
    a moved copy of it."""
    from avatartex import landmarks as lm

    def painted(*args, **kwargs):
        image, tri_id, bary, world = render(*args, **kwargs)
        covered = tri_id >= 0
        skin = image[covered]
        shade = np.maximum(skin.mean(axis=1, keepdims=True) / float(np.mean(lm._ALBEDO)), 1e-6)
        points = world[covered] if to_head is None else to_head(world[covered])
        colours = gt.paint_eyes(points, head.shape, skin / shade, np.random.default_rng(0))
        image = image.copy()
        image[covered] = (colours * shade).astype(np.float32)
        return image, tri_id, bary, world

    return painted


def similarity_onto(moved: np.ndarray, original: np.ndarray):
    """The map taking points of ``moved`` (a copy of ``original``'s vertices, same order, moved,
    turned and scaled, as the pipeline normalises a mesh) back into ``original``'s frame."""
    a, b = np.asarray(moved, np.float64), np.asarray(original, np.float64)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    u, _, vt = np.linalg.svd((a - ma).T @ (b - mb))
    turn = u @ vt
    scale = np.sqrt(((b - mb) ** 2).sum() / max(((a - ma) ** 2).sum(), 1e-30))
    return lambda points: ((np.asarray(points, np.float64) - ma) @ turn) * scale + mb


class EyePainter:
    """While entered, every render the registration reads a mesh from (``landmarks.render_shaded``,
    ``render_lit_like``) has ``head``'s eyeballs painted, when ``head`` (set per case) is a demo-family
    head and the mesh a copy of it: what a registration that recognises a mesh's eyes as eyes would
    read (``bench/sweep.py --paint-eyes``). The dense alignment (``alignment.py``) matches the
    mesh's shading to the photo's and keeps the plain render."""

    def __init__(self) -> None:
        self.head: gt.Head | None = None
        self._plain = None

    def __enter__(self) -> EyePainter:
        from avatartex import landmarks as lm

        self._plain = lm.render_lit_like, lm.render_shaded
        lm.render_lit_like, lm.render_shaded = self._render(0), self._render(1)
        return self

    def __exit__(self, *exc) -> None:
        from avatartex import landmarks as lm

        lm.render_lit_like, lm.render_shaded = self._plain

    def _render(self, which: int):
        def render(*args, **kwargs):
            plain, head = self._plain[which], self.head
            caller = sys._getframe(1).f_globals.get("__name__", "")
            positions = np.asarray(args[0])
            if head is None or head.shape is None or caller.endswith("alignment"):
                return plain(*args, **kwargs)
            if len(positions) != len(head.positions):
                return plain(*args, **kwargs)
            return with_eyes_painted(plain, head, similarity_onto(positions, head.positions))(*args, **kwargs)

        return render


def read_case(head: gt.Head, yaw: float, pitch: float, light: str, seed: int, landmarker) -> dict | None:
    """One view: the two readings' differences per feature group (eye distances)."""
    from avatartex import landmarks as lm
    from avatartex.face import detect_under_any_light

    surface = gt.texel_surface(head, SIZE)
    texture = gt.truth_texture(head, surface, "made_up", seed)
    camera = gt.portrait_camera(head, yaw, pitch, 0.0, 30.0, SIZE, SIZE)
    lights, ambient = gt.lights_for(light, yaw, False)
    portrait = gt.render_portrait(
        head, texture, camera, lights, ambient, np.full((SIZE, SIZE, 3), 0.5, np.float32)
    )
    faces = detect_under_any_light(landmarker, portrait.image)
    shaded = lm.detect_from_camera(
        head.positions, head.triangles, camera, landmarker, normals=head.normals, photo=portrait.image
    )
    if not faces or shaded is None:
        return None
    tri_id, _, world, _ = lm._raster_view(head.positions, head.triangles, head.normals, camera)
    painted, _, _, _ = lm._lift(faces[0].landmarks, tri_id, world, head.triangles, head.positions, 0.02)
    offset = (shaded.points3d - painted) / head.iod
    row = {"head": head.name, "yaw": yaw, "pitch": pitch, "light": light}
    for name, members in groups().items():
        d = offset[list(members)]
        row[name] = round(float(np.nanmean(np.linalg.norm(d, axis=1))), 4)
        row[name + "_dy"] = round(float(np.nanmean(d[:, 1])), 4)
    return row


def canonical_eye_ratio(head: gt.Head, landmarker) -> float:
    """The eye distance of the mesh's canonical landmarks over the eyeballs' (1: read where they are)."""
    from avatartex import face as fc
    from avatartex import landmarks as lm

    found = lm.detect_mesh_landmarks(head.positions, head.triangles, landmarker, normals=head.normals)
    right = np.nanmean(found.points3d[list(fc.RIGHT_EYE_CONTOUR)], axis=0)
    left = np.nanmean(found.points3d[list(fc.LEFT_EYE_CONTOUR)], axis=0)
    return float(np.linalg.norm(left - right) / head.iod)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paint-eyes", action="store_true", help="paint the eyeballs on the shaded render")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from avatartex import demo_head as demo
    from avatartex.face import default_landmarker

    started = time.perf_counter()
    landmarker = default_landmarker()
    rows, ratios = [], {}
    painter = EyePainter()
    for name in ["", *sorted(demo.STYLIZED_SHAPES)]:
        head = gt.demo_head(name)
        painter.head = head if args.paint_eyes else None
        with painter:
            ratios[head.name] = round(canonical_eye_ratio(head, landmarker), 3)
            for k, (yaw, pitch) in enumerate(VIEWS):
                for light in LIGHTS:
                    row = read_case(head, yaw, pitch, light, 3 + k, landmarker)
                    if row is None:
                        print(f"{head.name:<18} yaw {yaw:+.0f} {light:<6} no face", flush=True)
                        continue
                    rows.append(row)
                    cells = "  ".join(f"{g} {row[g]:.3f} ({row[g + '_dy']:+.3f})" for g in groups())
                    print(f"{head.name:<18} yaw {yaw:+.0f} {light:<6} {cells}", flush=True)
    summary = {
        g: {
            "mean": round(float(np.mean([r[g] for r in rows])), 4),
            "worst": round(float(np.max([r[g] for r in rows])), 4),
            "mean_dy": round(float(np.mean([r[g + "_dy"] for r in rows])), 4),
        }
        for g in groups()
    }
    print("\nshaded reading - painted reading, eye distances (mean / worst; mean vertical, - = lower):")
    for g, s in summary.items():
        print(f"  {g:<6} {s['mean']:.3f} / {s['worst']:.3f}   dy {s['mean_dy']:+.3f}")
    print("canonical reading's eye distance / the eyeballs' (1 = where they are):", ratios)
    if args.paint_eyes:
        print("(eyeballs painted on the shaded render)")
    print(f"{len(rows)} views in {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "eye_ratio": ratios, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
