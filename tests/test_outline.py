"""A portrait's face placed from the head's outline and shading (avatartex.outline), for portraits
the face detector cannot read: painted skins, grazing light."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.camera import Camera
from avatartex.demo_head import make_demo_head
from avatartex.face import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, Face, MediapipeLandmarker
from avatartex.landmarks import detect_mesh_landmarks, render_shaded
from avatartex.mesh import compute_normals
from avatartex.outline import locate_by_outline, outline_face
from avatartex.protocol import AvatarTexError, ErrorCode


@pytest.fixture(scope="module")
def head():
    positions, triangles, _, _ = make_demo_head(64)
    positions = positions.astype(np.float64)
    landmarks = detect_mesh_landmarks(positions, triangles, MediapipeLandmarker())
    return positions, triangles, landmarks


def _painted_portrait(
    head, yaw: float, pitch: float, background: str = ""
) -> tuple[np.ndarray, np.ndarray, Camera]:
    """The head seen from (yaw, pitch) about its face direction, lit from the side, with bold stripes
    painted across it, on a flat background or the skimage photo ``background``; and its true mask
    and camera."""
    positions, triangles, landmarks = head
    forward, up = landmarks.forward, landmarks.up
    right = np.cross(up, forward)
    a, b = np.radians(yaw), np.radians(pitch)
    direction = forward * np.cos(a) + right * np.sin(a)
    direction = direction * np.cos(b) + up * np.sin(b)
    centre = np.nanmean(landmarks.points3d, axis=0)
    radius = float(np.linalg.norm(positions - centre, axis=1).max())
    camera = Camera.look_at(centre + direction * radius * 4.5, centre, up, 30.0, 480, 512)
    light = (right * 0.8 + up * 0.4 + forward * 0.45, 0.25)
    image, tri_id, _, _ = render_shaded(
        positions, triangles, compute_normals(positions, triangles), camera, light
    )
    covered = tri_id >= 0
    y = np.arange(image.shape[0])[:, None] + 0.4 * np.arange(image.shape[1])[None, :]
    stripes = (np.sin(2 * np.pi * y / 36.0) > 0)[..., None]
    image = np.where(stripes, image * np.array([0.35, 0.45, 0.9]), image)
    image[~covered] = (0.55, 0.6, 0.5)
    if background:
        import cv2
        import skimage.data

        photo = getattr(skimage.data, background)()[..., :3]
        photo = cv2.resize(photo, image.shape[1::-1], interpolation=cv2.INTER_AREA) / 255.0
        image[~covered] = photo[~covered]
    return image.astype(np.float32), covered.astype(np.float32), camera


def _eye_error(face, landmarks, camera: Camera) -> float:
    true = []
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        xy, _ = camera.project(landmarks.points3d[list(contour)])
        true.append(np.nanmean(xy, axis=0))
    true = np.array(true)
    found = np.stack([face.right_eye_center, face.left_eye_center])
    return float(np.linalg.norm(found - true, axis=1).mean() / np.linalg.norm(true[1] - true[0]))


@pytest.mark.parametrize(("yaw", "pitch"), [(22.0, -6.0), (-28.0, 8.0)])
def test_a_painted_face_is_placed_from_its_outline_and_shading(head, yaw, pitch) -> None:
    positions, triangles, landmarks = head
    image, mask, camera = _painted_portrait(head, yaw, pitch)
    fit = locate_by_outline(
        image, mask, positions, triangles, landmarks.points3d, landmarks.forward, landmarks.up, 30.0
    )
    assert fit is not None
    # the side the head turns to is read (a mirrored view would put the eyes half an eye distance off)
    assert abs(fit.yaw - yaw) < 8.0
    assert _eye_error(fit.face, landmarks, camera) < 0.2
    assert fit.face.extras["pass"] == "outline" and fit.face.score == 0.0


class _Segmenter:
    def __init__(self, mask: np.ndarray) -> None:
        self._mask = mask

    def mask(self, image: np.ndarray) -> np.ndarray:
        return self._mask


def test_outline_face_warns_and_gives_up_without_a_person(head) -> None:
    positions, triangles, landmarks = head
    image, mask, _ = _painted_portrait(head, 15.0, 0.0)
    unreadable = AvatarTexError(ErrorCode.NO_FACE_IN_PORTRAIT, "No face was found.", "Use another photo.")
    face, warnings = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", None, unreadable, _Segmenter(mask)
    )
    assert face.extras["pass"] == "outline"
    assert len(warnings) == 1 and "outline" in warnings[0] and "pins" in warnings[0]
    with pytest.raises(AvatarTexError) as raised:
        outline_face(
            image,
            positions,
            triangles,
            landmarks,
            30.0,
            "p.png",
            None,
            unreadable,
            _Segmenter(np.zeros_like(mask)),
        )
    assert raised.value is unreadable


def test_an_unsure_detection_far_from_the_outline_gives_way_to_it(head) -> None:
    positions, triangles, landmarks = head
    image, mask, camera = _painted_portrait(head, 20.0, 0.0)
    placed, _ = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", None, None, _Segmenter(mask)
    )
    shift = np.array([placed.interocular, 0.3 * placed.interocular], np.float32)
    misread = Face(placed.landmarks + shift, 0.0)  # what the landmark model alone saw: a cheek
    face, warnings = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", misread, None, _Segmenter(mask)
    )
    assert face.extras["pass"] == "outline" and "disagrees" in warnings[0]
    assert _eye_error(face, landmarks, camera) < 0.2
    close = Face(placed.landmarks + 0.1 * shift, 0.0)  # an unsure reading that agrees is kept
    face, warnings = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", close, None, _Segmenter(mask)
    )
    assert face is close and warnings == []


def test_the_cut_does_not_depend_on_what_ran_before(head) -> None:
    import cv2
    from avatartex.outline import _cut_out

    image, mask, _ = _painted_portrait(head, 10.0, 0.0)
    leaky = np.clip(mask + 0.6 * (np.arange(mask.shape[1])[None, :] > 400), 0, 1)  # a strip of wall
    cuts = []
    for seed in (1, 2):
        cv2.setRNGSeed(seed)
        cv2.randu(np.zeros((64, 64), np.float32), 0, 1)  # some other OpenCV work drew random numbers
        cuts.append(_cut_out(image, leaky.astype(np.float32)))
    assert np.array_equal(cuts[0], cuts[1])
    # the wall strip, a flat colour unlike the head, goes back to the background
    assert cuts[0][:, 420:].mean() < 0.2 and (cuts[0] & (mask > 0.5)).sum() > 0.9 * (mask > 0.5).sum()


def test_a_head_before_a_busy_photo_is_placed_from_its_own_outline(head) -> None:
    positions, triangles, landmarks = head
    # the person segmentation takes the cup behind the head for part of the person, and GrabCut
    # started from it keeps the cup: that outline fitted (cost 0.027, under MAX_COST) with the eyes
    # 1.1 eye distances off; the cut that may only shrink the segmentation finds the head's own
    image, _, camera = _painted_portrait(head, 22.0, -6.0, "coffee")
    face, _ = outline_face(image, positions, triangles, landmarks, 30.0, "p.png", None, None)
    assert face.extras["pass"] == "outline" and face.extras["cost"] < 0.015
    assert _eye_error(face, landmarks, camera) < 0.25


@pytest.mark.parametrize("name", ["coffee", "coins"])
def test_a_photo_without_a_head_is_still_no_face(head, name) -> None:
    import skimage.data

    positions, triangles, landmarks = head
    image = getattr(skimage.data, name)()
    image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    unreadable = AvatarTexError(ErrorCode.NO_FACE_IN_PORTRAIT, "No face was found.", "Use another photo.")
    # the person segmentation takes part of a cup or a heap of coins for a person: its outline is no
    # head's, and the detector's "no face" stands
    with pytest.raises(AvatarTexError) as raised:
        outline_face(
            image.astype(np.float32) / 255, positions, triangles, landmarks, 35.0, "p.png", None, unreadable
        )
    assert raised.value is unreadable


def test_a_generate_placed_from_the_outline_segments_the_portrait_once(head, tmp_path, monkeypatch) -> None:
    """The person mask the outline fallback reads is the one the projection uses: one segmentation
    per request, not two (about 0.1 s each), and the report says how the face was found."""
    from avatartex.face import default_segmenter
    from avatartex.image_io import save_png
    from avatartex.mesh import Mesh, save_capture
    from avatartex.pipeline import Generator
    from avatartex.protocol import GenerateParams

    class Counting:
        def __init__(self, inner) -> None:
            self.inner, self.calls = inner, 0

        def mask(self, image):
            self.calls += 1
            return self.inner.mask(image)

    positions, triangles, uvs, _ = make_demo_head(64)
    mesh_path = tmp_path / "demo.npz"
    save_capture(Mesh(positions, triangles, uvs, name="demo"), mesh_path)
    image, _, _ = _painted_portrait(head, 15.0, 0.0)
    portrait = save_png(tmp_path / "painted.png", image)
    generator = Generator()
    counting = Counting(default_segmenter())
    generator._segmenter = counting
    # whichever way a step asks for the process's segmenter, it gets the counting one
    monkeypatch.setattr("avatartex.face.default_segmenter", lambda: counting)
    monkeypatch.setattr("avatartex.pipeline.steps.default_segmenter", lambda: counting, raising=False)
    result = generator.generate(
        GenerateParams(mesh=str(mesh_path), portrait=str(portrait), out_dir=str(tmp_path / "out"), size=512)
    )
    assert result["report"]["quality"]["signals"]["portrait_pass"] == "outline"
    assert counting.calls == 1


def test_a_face_the_detector_cannot_read_again_is_checked_against_the_outline(head, monkeypatch) -> None:
    """A face the detector confirmed but could not read again in the photo's turned and scaled views
    (``outline.UNSURE_SCATTER_IOD``) is checked against the head's outline as an unconfirmed one is:
    on a painted skin the detector can confirm a face that lies on a cheek. Read again surely, the
    same face is kept as read."""
    from types import SimpleNamespace

    from avatartex.face import ViewReadings
    from avatartex.pipeline import steps

    positions, triangles, landmarks = head
    image, mask, camera = _painted_portrait(head, 20.0, 0.0)
    placed, _ = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", None, None, _Segmenter(mask)
    )
    shift = np.array([placed.interocular, 0.3 * placed.interocular], np.float32)
    misread = Face(placed.landmarks + shift, 0.9)  # confirmed by the face detector, on a cheek
    analysis = steps.Analysis(
        portrait=image,
        face=misread,
        mesh=None,
        head=SimpleNamespace(
            mesh=SimpleNamespace(positions=positions, triangles=triangles), landmarks=landmarks
        ),
        person=None,  # no person mask read yet: the check reads one, for the projection too
    )
    iod = misread.interocular
    unread = ViewReadings(misread.landmarks.astype(np.float64), [None] * 4, iod)
    monkeypatch.setattr(steps, "read_views", lambda *args: unread)
    steady = steps.steady_portrait(None, analysis, "p.png", _Segmenter(mask))
    face, scatter, warnings = steady.face, steady.scatter, steady.warnings
    assert face.extras["pass"] == "outline" and scatter is None
    assert steady.person is mask  # the mask the check read is the projection's too
    assert len(warnings) == 1 and "disagrees" in warnings[0]
    assert _eye_error(face, landmarks, camera) < 0.2 < _eye_error(misread, landmarks, camera)

    surely = ViewReadings(
        misread.landmarks.astype(np.float64), [misread.landmarks.astype(np.float64)] * 4, iod
    )
    monkeypatch.setattr(steps, "read_views", lambda *args: surely)
    steady = steps.steady_portrait(None, analysis, "p.png")
    face, scatter, warnings = steady.face, steady.scatter, steady.warnings
    assert face.extras.get("pass") != "outline" and scatter == 0.0 and warnings == []
    assert np.allclose(face.landmarks, misread.landmarks)


def test_the_registration_may_start_from_the_outline_where_the_face_was_read_unsurely(
    head, monkeypatch
) -> None:
    """``steps.outline_start``: a face the detector read surely (the scatter of a real photo) or no
    person mask gives no start; a face read unsurely gives the camera of the head's outline
    placement, near the true one; a face placed from the outline gives its own camera, without a
    second placement."""
    from types import SimpleNamespace

    from avatartex.outline import SURE_SCATTER_IOD
    from avatartex.pipeline import steps
    from avatartex.registration import FovPrior

    positions, triangles, landmarks = head
    image, mask, camera = _painted_portrait(head, 20.0, 0.0)
    model = SimpleNamespace(
        mesh=SimpleNamespace(positions=positions, triangles=triangles), landmarks=landmarks
    )
    prior = FovPrior.for_image((image.shape[1], image.shape[0]))
    placed, _ = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", None, None, _Segmenter(mask)
    )
    misread = Face(placed.landmarks + np.float32(placed.interocular), 0.9)  # a cheek read as a face
    assert steps.outline_start(model, misread, image, mask, 0.5 * SURE_SCATTER_IOD, prior) is None
    assert steps.outline_start(model, misread, image, None, 0.1, prior) is None

    def eye_error(found: Camera) -> float:
        as_placed = Face(found.project(landmarks.points3d)[0].astype(np.float32), 0.0)
        return _eye_error(as_placed, landmarks, camera)

    start = steps.outline_start(model, misread, image, mask, 2.0 * SURE_SCATTER_IOD, prior)
    assert start is not None and eye_error(start()) < 0.2

    def no_second_placement(*args, **kwargs):
        raise AssertionError("placed again")

    monkeypatch.setattr(steps, "place_head", no_second_placement)
    start = steps.outline_start(model, placed, image, mask, None, prior)
    assert start is not None and eye_error(start()) < 0.2


def test_no_outline_placement_is_searched_for_where_the_photo_shows_hair_over_the_head(
    head, astronaut, grace_hopper_path, monkeypatch
) -> None:
    """A real photo's head outline is its hair's (or a cap's): no placement of a bald mesh fits it,
    and the search cost 0.9 s on each unsure reading of Grace Hopper. A bald render searches."""
    from types import SimpleNamespace

    from avatartex.face import analyse_portrait, default_segmenter
    from avatartex.image_io import load_portrait
    from avatartex.outline import SURE_SCATTER_IOD
    from avatartex.pipeline import steps
    from avatartex.regions import find_hair
    from avatartex.registration import FovPrior

    positions, triangles, landmarks = head
    model = SimpleNamespace(
        mesh=SimpleNamespace(positions=positions, triangles=triangles), landmarks=landmarks
    )
    searched = []
    monkeypatch.setattr(steps, "place_head", lambda *a, **k: searched.append(1))
    grace, _ = load_portrait(grace_hopper_path)
    for photo in (astronaut, grace):
        face, _ = analyse_portrait(photo)
        person = default_segmenter().mask(photo)
        assert find_hair(photo, face, person).share >= steps.HAIR_HIDES_OUTLINE
        prior = FovPrior.for_image((photo.shape[1], photo.shape[0]))
        start = steps.outline_start(model, face, photo, person, 2.0 * SURE_SCATTER_IOD, prior)
        assert start is not None and start() is None
    assert not searched
    image, mask, _ = _painted_portrait(head, 20.0, 0.0)
    placed, _ = outline_face(
        image, positions, triangles, landmarks, 30.0, "p.png", None, None, _Segmenter(mask)
    )
    misread = Face(placed.landmarks + np.float32(placed.interocular), 0.9)
    assert find_hair(image, misread, mask).share < steps.HAIR_HIDES_OUTLINE
    prior = FovPrior.for_image((image.shape[1], image.shape[0]))
    steps.outline_start(model, misread, image, mask, 2.0 * SURE_SCATTER_IOD, prior)()
    assert searched
