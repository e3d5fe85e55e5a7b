"""The photo's neck kept off a mesh's wider jaw (``jawline``): the mesh's jaw front under the
registered camera, the photo's jaw and whether it is an edge of the photo, and the texture they give
a stylised head."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex import demo_head, jawline
from avatartex.camera import Camera
from avatartex.face import (
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NUM_LANDMARKS,
    RIGHT_EYE_CONTOUR,
)
from avatartex.mesh import Mesh, compute_normals

WIDE_JAW = demo_head.HeadShape(eye_scale=1.35, nose_length=1.3, jaw_width=1.2, chin_scale=0.7)


@pytest.fixture(scope="module")
def wide_jaw():
    positions, triangles, uvs, pins = demo_head.make_demo_head(shape=WIDE_JAW)
    return Mesh(positions, triangles, uvs, compute_normals(positions, triangles), pins, "StylisedHead")


def _camera(pitch_deg: float) -> Camera:
    """A portrait camera 0.6 in front of the face, raised by ``pitch_deg`` (negative: from below)."""
    target = np.array([0.0, -0.04, 0.05])
    pitch = np.radians(pitch_deg)
    eye = target + 0.6 * np.array([0.0, np.sin(pitch), np.cos(pitch)])
    return Camera.look_at(eye, target, np.array([0.0, 1.0, 0.0]), 30.0, 400, 400)


def _on_front(front: np.ndarray, scale: float, camera: Camera, point) -> bool:
    xy, _ = camera.project(np.asarray([point], np.float64))
    x, y = np.round(xy[0] * scale).astype(int)
    return bool(front[y, x])


@pytest.mark.parametrize("pitch", [0.0, 20.0, -25.0])
def test_the_jaw_front_ends_where_the_neck_begins(wide_jaw, pitch):
    """From level, from above and from below (where the jaw's underside runs on into the neck
    without a step in depth), the front holds the chin and the jaw's wide sides below the mouth,
    and neither the cheeks above the mouth nor the neck."""
    features = demo_head.features(WIDE_JAW)
    camera = _camera(pitch)
    corners = np.array([features["mouth_right"], features["mouth_left"]])
    iod = features["left_eye_inner"][0] - features["right_eye_inner"][0] + 0.046  # eye centres
    front, scale = jawline.mesh_jaw_front(
        wide_jaw.positions, wide_jaw.triangles, wide_jaw.normals, np.array([0, 1.0, 0]), corners, camera, iod
    )
    surface = _front_surface(wide_jaw)
    chin = features["chin"]
    assert _on_front(front, scale, camera, surface(0.0, chin[1] + 0.005))
    for side in (-1, 1):
        assert _on_front(front, scale, camera, surface(side * 0.05, -0.085))  # the wide jaw's side
        assert not _on_front(front, scale, camera, surface(side * 0.045, -0.03))  # cheek, above the mouth
    assert not _on_front(front, scale, camera, surface(0.0, -0.16))  # the neck


def _front_surface(mesh: Mesh):
    """The mesh's frontmost point near (x, y) (its vertex of largest z within a few millimetres)."""

    def at(x: float, y: float) -> np.ndarray:
        p = mesh.positions
        near = np.hypot(p[:, 0] - x, p[:, 1] - y) < 0.006
        assert near.any(), (x, y)
        return p[near][np.argmax(p[near][:, 2])]

    return at


def _oval_landmarks() -> np.ndarray:
    """Landmarks of an upright face in a 240x200 portrait: its outline an oval (40 px across, 55
    down from the centre (100, 100)), eyes at y 90 40 px apart, mouth corners at y 125."""
    lm = np.full((NUM_LANDMARKS, 2), np.nan)
    angles = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    lm[list(FACE_OVAL)] = np.c_[100 + 40 * np.sin(angles), 100 - 55 * np.cos(angles)]
    lm[list(RIGHT_EYE_CONTOUR)] = [80.0, 90.0]
    lm[list(LEFT_EYE_CONTOUR)] = [120.0, 90.0]
    lm[MOUTH_RIGHT], lm[MOUTH_LEFT] = [88.0, 125.0], [112.0, 125.0]
    return lm


def test_beyond_the_photo_jaw_counts_only_on_the_chin_side():
    """Eye distances outside a face outline: 0 inside it and above the mouth's line, growing below."""
    lm = _oval_landmarks()
    beyond = jawline.below_the_jaw(lm, (240, 200), 40.0)
    at = beyond.at(np.array([[100.0, 150.0], [100.0, 157.0], [100.0, 159.0], [150.0, 100.0], [100.0, 40.0]]))
    assert at[0] == 0.0  # inside the outline
    assert at[1] == pytest.approx(0.05, abs=0.01)  # 2 px below the chin at 40 px an eye distance
    assert at[2] == pytest.approx(0.1, abs=0.01)
    assert at[3] == 0.0 and at[4] == 0.0  # beside the cheek, above the forehead: not the chin's side
    far = beyond.at(np.array([[100.0, 239.0]]))  # beyond the box the distances were measured in
    assert far[0] > jawline.BEYOND_JAW_IOD[1]


def _oval_portrait(step: float) -> tuple[np.ndarray, np.ndarray]:
    """A grey 240x200 portrait with an upright face outline whose inside is ``step`` brighter than
    its outside, and landmarks for it (outline, eyes, mouth corners)."""
    import cv2

    lm = _oval_landmarks()
    image = np.full((240, 200, 3), 0.4, np.float32)
    inside = np.zeros((240, 200), np.uint8)
    cv2.fillPoly(inside, [np.round(lm[list(FACE_OVAL)]).astype(np.int32)], 1)
    image[inside > 0] += step
    return image, lm


@pytest.mark.parametrize("step, edge", [(0.0, 0.0), (0.04, 0.0), (0.15, 1.0), (-0.15, 1.0)])
def test_the_jaw_counts_as_an_edge_where_the_photo_steps_across_its_outline(step, edge):
    """Brighter or darker inside the outline by much more than ``JAW_EDGE``: an edge; a step like
    the sweep's renders show there, or none: not."""
    image, lm = _oval_portrait(step)
    beyond = jawline.below_the_jaw(lm, image.shape[:2], 40.0)
    assert jawline.jaw_edge(image, lm, beyond, 40.0) == pytest.approx(edge, abs=1e-6)


@pytest.fixture(scope="module")
def rendered_wide_jaw(wide_jaw):
    """Renders of the stylised head with a blotched skin as the sweep makes them (bench/groundtruth):
    front-lit; lit from above with the chin's cast shadow; two lights with shadows."""
    import dataclasses
    import sys

    from testing_paths import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    import groundtruth as gt
    from avatartex.face import default_landmarker, detect_under_any_light

    head = dataclasses.replace(  # the demo head's eyes and frame, the stylised head's surface
        gt.demo_head(),
        name="wide_jaw",
        positions=wide_jaw.positions.astype(np.float64),
        triangles=wide_jaw.triangles,
        uvs=wide_jaw.uvs,
        normals=wide_jaw.normals.astype(np.float64),
    )
    surface = gt.texel_surface(head, 256)
    texture = gt.truth_texture(head, surface, "blotches", 3)
    camera = gt.portrait_camera(head, 10.0, 4.0, 0.0, 30.0, 384, 384)
    background = np.full((384, 384, 3), 0.5, np.float32)
    out = []
    for light, shadows in (("front", False), ("top", True), ("two", True)):
        lights, ambient = gt.lights_for(light, 10.0, shadows)
        image = gt.render_portrait(head, texture, camera, lights, ambient, background).image
        face = detect_under_any_light(default_landmarker(), image)[0]
        assert face is not None, light
        out.append((light, image, face))
    return out


def test_a_render_of_the_sculpture_keeps_the_photo_on_its_jaw(rendered_wide_jaw, astronaut_path):
    """On a render of the mesh the detector reads the jaw's outline inside the jaw, on smooth skin,
    whatever the light: no edge, so the rule leaves the photo on the jaw (session 44's rule without
    the gate cost the sweep's renders up to 2.5 dB). The astronaut's jaw outline is one."""
    from avatartex.face import analyse_portrait, default_landmarker
    from avatartex.image_io import load_portrait

    for light, image, face in rendered_wide_jaw:
        beyond = jawline.below_the_jaw(face.landmarks, image.shape[:2], face.interocular)
        assert jawline.jaw_edge(image, face.landmarks, beyond, face.interocular) == 0.0, light
    photo, _ = load_portrait(astronaut_path)
    face, _ = analyse_portrait(photo, "astronaut", default_landmarker())
    beyond = jawline.below_the_jaw(face.landmarks, photo.shape[:2], face.interocular)
    assert jawline.jaw_edge(photo, face.landmarks, beyond, face.interocular) == 1.0


def test_the_photos_neck_stays_off_a_wider_jaw(wide_jaw, astronaut_path, tmp_path, monkeypatch):
    """The astronaut on a head whose jaw is 1.2 times as wide, its chin 0.7 times: the mesh's jaw
    below her face outline read her neck (a pale band across the jaw: 9.6 CIELAB units a texel from
    her cheeks' median at 512²); with the rule it is her face's skin (2.1). Measured both ways."""
    from avatartex.image_io import load_texture
    from avatartex.imaging import to_lab
    from avatartex.mesh import save_capture
    from avatartex.pipeline import Generator, steps
    from avatartex.protocol import GenerateParams

    mesh_path = tmp_path / "wide_jaw.npz"
    save_capture(wide_jaw, mesh_path)
    seen = {}
    project, factor = steps.project, steps.jaw_front_factor

    def project_spy(geometry, *args):
        seen["geometry"] = geometry
        seen["projection"] = project(geometry, *args)
        return seen["projection"]

    def factor_spy(*args):
        seen["factor"] = factor(*args)
        return seen["factor"]

    monkeypatch.setattr(steps, "project", project_spy)
    monkeypatch.setattr(steps, "jaw_front_factor", factor_spy)
    atlases = {}
    for rule in (True, False):
        generator = Generator()  # a generator keeps a photo's fit (and its projection) for variants
        if not rule:
            monkeypatch.setattr(steps, "jaw_front_factor", lambda *a: np.ones(len(a[-1].coords), np.float32))
        out = tmp_path / f"rule_{rule}"
        generator.generate(
            GenerateParams(str(mesh_path), str(astronaut_path), str(out), size=512, debug=True)
        )
        atlases[rule] = to_lab(load_texture(out / "debug_atlas.png")[..., :3])
        if rule:
            geometry, projection, cut = seen["geometry"], seen["projection"], seen["factor"]
    jaw = np.zeros(geometry.mask.shape, bool)
    jaw[geometry.mask] = cut < 0.5
    jaw &= seen["projection"].partial.confidence > 0.5  # where the photo was read without the rule
    assert jaw.sum() > 0.002 * geometry.mask.sum()  # a band, not a few texels
    cheeks = geometry.face & ~jaw & (projection.partial.confidence > 0.9)
    for rule, lab in atlases.items():
        skin = np.median(lab[cheeks], axis=0)
        seen[rule] = float(np.linalg.norm(lab[jaw] - skin, axis=1).mean())  # CIELAB units per texel
    assert seen[False] > 8.0, seen  # the neck and collar were there
    assert seen[True] < 0.6 * seen[False], seen


def test_the_inked_jaw_lies_on_the_jaws_outline_not_across_the_cheeks(wide_jaw):
    """The detector reads a sculpted wide jaw's outline inside its silhouette, and comic inked that
    reading across the cheeks (a second smile). The jaw the styles draw (``HeadModel.
    drawn_landmarks``) lies where the surface, seen from the front, turns away from it or stands
    before the neck: each point of the inked arc turned away (the forward component of the normal
    under 0.5, where the detector's reading faces the front) and seen from the front (nothing of the
    mesh before it)."""
    from avatartex.face import JAW
    from avatartex.pipeline.generator import Generator

    model = Generator(cache_size=1).head(wide_jaw)
    frame = model.frame
    inked = list(JAW)[5:16]  # the comic's arc, 0.26-0.74 of the 21 points
    read = frame.to_head(model.landmarks.points3d[inked])
    drawn = frame.to_head(model.drawn_landmarks()[inked])
    surface = frame.to_head(model.mesh.positions)
    forward = frame.directions_to_head(model.mesh.normals)[:, 2]

    def turn(points: np.ndarray) -> np.ndarray:
        nearest = np.argmin(np.linalg.norm(surface[None] - points[:, None], axis=-1), axis=1)
        assert np.linalg.norm(surface[nearest] - points, axis=1).max() < 0.05  # on the surface
        return forward[nearest]

    assert np.isfinite(read).all() and np.isfinite(drawn).all()
    assert np.median(turn(read)) > 0.5  # the detector's reading faces the front
    assert turn(drawn).max() < 0.5, turn(drawn)
    moved = np.linalg.norm((drawn - read)[:, :2], axis=1)
    assert 0.05 < np.median(moved) < jawline.OUTLINE_REACH_IOD + 0.01
    # Seen from the front: the frontmost surface at each point's place (an orthographic render, 100
    # pixels an eye distance) is the point's own.
    from avatartex import raster

    low = surface[:, :2].min(axis=0)
    pixels = (surface[:, :2] - low) * [100.0, -100.0] + [0.0, 100.0 * np.ptp(surface[:, 1])]
    height, width = (np.ptp(surface[:, [1, 0]], axis=0) * 100).astype(int) + 2
    triangles = model.mesh.triangles
    _, _, depth = raster.rasterize_triangles(pixels[triangles], -surface[triangles][..., 2], height, width)
    for point in drawn:
        x, y = ((point[:2] - low) * [100.0, -100.0] + [0.0, 100.0 * np.ptp(surface[:, 1])]).astype(int)
        assert -depth[y, x] < point[2] + 0.08, (point, -depth[y, x])  # the neck: 0.3-1 behind


def test_a_jaw_point_found_nowhere_stays_unknown_and_one_past_the_outline_stays(wide_jaw):
    from avatartex.face import JAW
    from avatartex.pipeline.generator import Generator

    model = Generator(cache_size=1).head(wide_jaw)
    mesh = model.mesh
    jaw = np.array(model.landmarks.points3d[list(JAW)])
    jaw[3] = np.nan
    beyond = model.frame.origin + model.frame.scale * (np.array([0.0, -3.5, 3.0]) @ model.frame.axes)
    jaw[10] = beyond  # in the air before the neck: past the outline already
    out = jawline.jaw_on_outline(mesh.positions, mesh.triangles, mesh.normals, model.frame, jaw)
    assert np.isnan(out[3]).all()
    assert np.allclose(out[10], beyond)
