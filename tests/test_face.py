"""Portrait face analysis (avatartex.face) on real photos that ship inside skimage/matplotlib."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from avatartex import face as face_mod
from avatartex.face import (
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    LIPS_OUTER,
    PIN_LANDMARKS,
    RIGHT_EYE_CONTOUR,
    Face,
    FaceLandmarker,
    MediapipeLandmarker,
    analyse_portrait,
    draw_landmarks,
)
from avatartex.protocol import PIN_NAMES, AvatarTexError, ErrorCode

data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def landmarker() -> MediapipeLandmarker:
    return MediapipeLandmarker()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut().astype(np.float32) / 255


@pytest.fixture(scope="module")
def astronaut_face(landmarker, astronaut) -> Face:
    faces = landmarker.detect(astronaut)
    assert len(faces) == 1
    return faces[0]


def test_named_indices_on_astronaut(astronaut_face: Face) -> None:
    p = astronaut_face.landmarks
    assert p.shape == (468, 2)
    # Character's left eye on the image right for a frontal face; outer corners outside inner ones.
    assert (
        p[PIN_LANDMARKS["right_eye_outer"], 0]
        < p[PIN_LANDMARKS["right_eye_inner"], 0]
        < p[PIN_LANDMARKS["left_eye_inner"], 0]
        < p[PIN_LANDMARKS["left_eye_outer"], 0]
    )
    assert astronaut_face.left_eye_center[0] > astronaut_face.right_eye_center[0]
    assert p[PIN_LANDMARKS["mouth_right"], 0] < p[PIN_LANDMARKS["mouth_left"], 0]
    eyes_y = (astronaut_face.left_eye_center[1] + astronaut_face.right_eye_center[1]) / 2
    mouth_y = p[list(LIPS_OUTER), 1].mean()
    assert eyes_y < p[PIN_LANDMARKS["nose_tip"], 1] < mouth_y < p[PIN_LANDMARKS["chin"], 1]
    # The chin is the lowest face-oval point; the eye contours enclose their corners.
    assert p[list(FACE_OVAL), 1].argmax() == list(FACE_OVAL).index(PIN_LANDMARKS["chin"])
    for contour in (LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR):
        xs = p[list(contour), 0]
        assert xs.max() - xs.min() < 0.6 * astronaut_face.interocular
    # Known geometry of this photo: the face is around (225, 130) with eyes ~43 px apart.
    assert 200 < p[1, 0] < 250 and 110 < p[1, 1] < 150
    assert 35 < astronaut_face.interocular < 55
    assert astronaut_face.score > 0.7
    assert set(PIN_LANDMARKS) == set(PIN_NAMES)


def test_grace_hopper(landmarker) -> None:
    from avatartex.image_io import load_portrait
    from matplotlib import cbook

    image, _ = load_portrait(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    face, warnings = analyse_portrait(image, "grace_hopper.jpg", landmarker)
    assert warnings == [] and face.interocular > 60
    assert face.left_eye_center[0] > face.right_eye_center[0]


def test_lfw_tiny_faces_detection_rate(landmarker) -> None:
    # 25x25 crops: mediapipe finds ~99% of them at native size (the upscaling pass is a fallback).
    faces = data.lfw_subset()[:40]
    found = [landmarker.detect(np.repeat(f[..., None].astype(np.float32), 3, 2)) for f in faces]
    rate = np.mean([bool(f) for f in found])
    assert rate >= 0.9, rate
    iods = [f[0].interocular for f in found if f]
    assert 5 < np.median(iods) < 14


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_a_face_filling_the_frame_is_confirmed_by_the_short_range_detector(
    landmarker, astronaut, photo
) -> None:
    """mediapipe's full-range face detector, whose score ``detect`` gives (``Face.score``), misses a
    face filling the frame: the astronaut and Grace Hopper cropped to their landmarks read score 0
    (unconfirmed), and so did the tight straight-on render a chibi head's face is confirmed in (an ear
    was taken for its face). The short-range detector confirms them (``close_range_score``), for the
    views made to frame a face; ``detect`` keeps the full-range score the portrait's reading uses."""
    from avatartex.image_io import load_portrait
    from matplotlib import cbook

    if photo == "astronaut":
        image = astronaut
    else:
        image = load_portrait(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[0]
    face = landmarker.detect(image)[0]
    centre, extent = face.landmarks.mean(axis=0), float(np.ptp(face.landmarks, axis=0).max())
    for share in (1.0, 0.8):  # the crop's side over the landmarks' extent
        x0, y0 = np.round(centre - share * extent / 2).astype(int)
        side = int(round(share * extent))
        crop = cv2.resize(np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side]), (512, 512))
        found = max(landmarker.detect(crop), key=lambda f: f.size)
        assert found.score == 0.0  # the full-range detector's word
        assert landmarker.close_range_score(crop, found) > 0.5, share
    assert landmarker.close_range_score(np.full((512, 512, 3), 0.5, np.float32), face) == 0.0


def test_small_face_in_large_frame_found_by_crop_pass(landmarker, astronaut, astronaut_face) -> None:
    small = cv2.resize(astronaut, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1600, 3), 0.5, np.float32)
    canvas[300 : 300 + small.shape[0], 700 : 700 + small.shape[1]] = small
    faces = landmarker.detect(canvas)
    assert len(faces) == 1 and faces[0].extras["pass"] in ("crop", "direct")
    back = (faces[0].landmarks - (700, 300)) / 0.3
    err = np.linalg.norm(back - astronaut_face.landmarks, axis=1).mean() / astronaut_face.interocular
    assert err < 0.05, err


def test_no_face_is_typed_error(landmarker) -> None:
    noise = np.random.default_rng(0).random((300, 300, 3)).astype(np.float32)
    with pytest.raises(AvatarTexError) as err:
        analyse_portrait(noise, "noise.png", landmarker)
    assert err.value.code == ErrorCode.NO_FACE_IN_PORTRAIT and "noise.png" in err.value.message
    assert "frontal" in err.value.hint


def test_several_faces_largest_with_warning(landmarker, astronaut) -> None:
    small = cv2.resize(astronaut, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    pad = ((0, 512 - small.shape[0]), (0, 512 - small.shape[1]), (0, 0))
    canvas = np.concatenate([astronaut, np.pad(small, pad)], axis=1)
    face, warnings = analyse_portrait(canvas, "two.png", landmarker)
    assert face.landmarks[:, 0].mean() < 512  # the full-size astronaut on the left
    assert any("2 faces" in w for w in warnings)


def test_a_face_the_mesh_graph_missed_is_found_and_said(landmarker, astronaut, grace_hopper_path) -> None:
    """The astronaut beside Grace Hopper: the face-mesh graph's own detector reads only Grace Hopper;
    the full-range detector's box of the astronaut is read too, so the photo's two faces are known,
    the larger used, and the other said."""
    from avatartex.image_io import load_portrait

    hopper, _ = load_portrait(grace_hopper_path)
    canvas = np.full((hopper.shape[0], 512 + hopper.shape[1], 3), 0.8, np.float32)
    canvas[:512, :512] = astronaut
    canvas[:, 512:] = hopper
    faces = landmarker.detect(canvas)
    assert len(faces) == 2
    by_x = sorted(faces, key=lambda f: f.landmarks[:, 0].mean())
    assert by_x[0].extras["pass"] == "crop" and by_x[1].extras["pass"] == "direct"
    assert all(f.score > 0.5 for f in faces)  # each confirmed by its own detection
    alone = landmarker.detect(np.ascontiguousarray(canvas[:512, :512]))
    err = np.linalg.norm(by_x[0].landmarks - alone[0].landmarks, axis=1).mean() / alone[0].interocular
    assert err < 0.05, err  # read in its box as well as in a photo of its own
    face, warnings = analyse_portrait(canvas, "pair.png", landmarker)
    assert face.landmarks[:, 0].mean() > 512  # Grace Hopper, the larger
    assert any("2 faces" in w for w in warnings)


def test_a_face_the_photos_edge_cuts_is_said_with_what_it_cuts(landmarker, astronaut, astronaut_face) -> None:
    """The astronaut cut at the middle of her right eye (the photo's left): a quarter of her face and
    that eye beyond the frame, said in a warning and in ``frame_cut``; the whole photo: nothing."""
    right_eye = astronaut_face.landmarks[list(face_mod.RIGHT_EYE_CONTOUR)]
    x0 = int(right_eye[:, 0].mean())
    face, warnings = analyse_portrait(np.ascontiguousarray(astronaut[:, x0:]), "cut.png", landmarker)
    cut = [w for w in warnings if "cuts off" in w]
    assert len(cut) == 1 and "the character's right eye" in cut[0] and "left eye" not in cut[0], cut
    assert 0.1 < face.extras["frame_cut"] < 0.5
    share, parts = face_mod.frame_cut(astronaut_face, astronaut.shape[1], astronaut.shape[0])
    assert share == 0.0 and parts == []
    _, whole = analyse_portrait(astronaut, "whole.png", landmarker)
    assert not any("cuts off" in w for w in whole)
    # A frame a pixel below the top of her face's outline cuts a sliver: the forehead, not said.
    top = float(astronaut_face.landmarks[list(face_mod.FACE_OVAL), 1].min())
    shifted = Face(astronaut_face.landmarks - np.float32([0.0, top + 1.0]), 0.9)
    share, parts = face_mod.frame_cut(shifted, astronaut.shape[1], astronaut.shape[0])
    assert 0.0 < share < face_mod.FRAME_CUT_SHARE and parts == ["the forehead"]


class _FixedLandmarker(FaceLandmarker):
    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.faces


def test_face_too_small_and_small_warning(astronaut_face: Face) -> None:
    def scaled(s: float) -> Face:
        return Face(astronaut_face.landmarks * s, 0.9)

    tiny = scaled(0.9 * face_mod.MIN_IOD_PX / astronaut_face.interocular)
    with pytest.raises(AvatarTexError) as err:
        analyse_portrait(np.zeros((10, 10, 3), np.float32), "tiny.jpg", _FixedLandmarker([tiny]))
    assert err.value.code == ErrorCode.FACE_TOO_SMALL and "tiny.jpg" in err.value.message
    small = scaled(1.5 * face_mod.MIN_IOD_PX / astronaut_face.interocular)
    _, warnings = analyse_portrait(np.zeros((10, 10, 3), np.float32), "small.jpg", _FixedLandmarker([small]))
    assert any("small" in w for w in warnings)


def test_draw_landmarks_marks_points(astronaut, astronaut_face) -> None:
    out = draw_landmarks(astronaut, astronaut_face.landmarks, color=(0.0, 1.0, 0.0))
    assert out.shape == astronaut.shape and out.dtype == np.float32
    x, y = astronaut_face.landmarks[FACE_OVAL[5]].astype(int)
    assert out[y, x, 1] > 0.9 and out[y, x, 0] < 0.3  # green on a face-oval point
    assert np.abs(out - astronaut).max() > 0.5 and np.abs(out[:40, :40] - astronaut[:40, :40]).max() == 0


def test_detection_is_repeatable(landmarker, astronaut) -> None:
    """The same photo gives the same landmarks: the landmarker keeps no state between calls.
    (Its speed is measured by bench/speed.py, not asserted here.)"""
    first = landmarker.detect(astronaut)[0].landmarks
    again = landmarker.detect(astronaut)[0].landmarks
    np.testing.assert_allclose(first, again, atol=1e-3)


def test_reread_gives_the_landmarks_detect_gives(landmarker, astronaut) -> None:
    """``reread`` (the steadied views: no confirming face detection) reads the same landmarks as
    ``detect`` on a face the mesh model finds, and falls back to ``detect`` on one it does not."""
    crop = np.ascontiguousarray(astronaut[20:260, 100:340])
    (read,), (found,) = landmarker.reread(crop), landmarker.detect(crop)
    np.testing.assert_allclose(read.landmarks, found.landmarks, atol=1e-3)
    assert np.isnan(read.score) and found.score > 0.5
    assert landmarker.reread(np.zeros((64, 64, 3), np.float32)) == []


def test_person_segmenter_separates_the_astronaut_from_the_wall():
    from avatartex.face import PersonSegmenter
    from skimage import data

    image = np.asarray(data.astronaut(), np.float32) / 255.0
    mask = PersonSegmenter().mask(image)
    assert mask.shape == image.shape[:2]
    assert mask[100:130, 200:240].mean() > 0.9  # her face
    assert mask[0:60, 440:512].mean() < 0.1  # the wall behind her


def test_a_face_lit_from_one_side_is_found_in_its_relit_view(landmarker, astronaut, astronaut_face) -> None:
    """Light falling off across the face (a grazing key light): the detector misses it as it is and
    finds it once the shadows are evened out; the landmarks are the photo's own (same geometry)."""
    from avatartex.face import analyse_portrait

    ramp = np.clip(np.linspace(0, 1, astronaut.shape[1]) * 1.5 - 0.4, 0.02, 1.0) ** 2
    side_lit = (astronaut * ramp[None, :, None] * 0.5).astype(np.float32)
    assert landmarker.detect(side_lit) == []  # the case this guards against
    face, _ = analyse_portrait(side_lit, "side.png", landmarker)
    offset = np.linalg.norm(face.landmarks - astronaut_face.landmarks, axis=1)
    assert np.median(offset) < 0.1 * astronaut_face.interocular


def test_landmark_scatter_tells_a_surely_read_face_from_a_guessed_one(landmarker, astronaut, astronaut_face):
    """A real photo's landmarks barely move when the photo is turned or scaled (0.0115 measured);
    the same face blurred until its eyes, brows and lips are smudges is half guessed and moves more;
    a view with no face in it counts as unread."""
    from avatartex.face import SCATTER_UNREAD_IOD, landmark_scatter

    sharp = landmark_scatter(landmarker, astronaut, astronaut_face)
    assert sharp < 0.02
    smudged = cv2.GaussianBlur(astronaut, (0, 0), 0.08 * astronaut_face.interocular)
    faces = landmarker.detect(smudged)
    assert faces, "the blurred astronaut is still found"
    assert landmark_scatter(landmarker, smudged, faces[0]) > 1.5 * sharp
    blank = np.full_like(astronaut, 0.5)
    assert landmark_scatter(landmarker, blank, astronaut_face) == SCATTER_UNREAD_IOD


def test_steady_landmarks_average_the_readings_that_agree() -> None:
    """Each steadied landmark is the median of the face's own reading and the views' readings whose
    centre lies near it; an unread view and a reading of something else (far off) are left out."""
    from avatartex.face import STEADY_NEAR_IOD, ViewReadings, steady_landmarks

    rng = np.random.default_rng(3)
    base = rng.uniform(100, 200, (468, 2))
    face = Face(base.astype(np.float32), 0.9, extras={"pass": "direct"})
    iod = face.interocular
    near = [base + 0.01 * iod, base + 0.02 * iod, base - 0.01 * iod]
    far = base + 2 * STEADY_NEAR_IOD * iod
    readings = ViewReadings(near[0], [near[1], None, far, near[2]], iod)
    steady = steady_landmarks(face, readings)
    np.testing.assert_allclose(steady.landmarks, np.median([base, *near], axis=0), atol=1e-3)
    assert steady.extras == {"pass": "direct", "readings": 4}
    assert steady.score == face.score
    # Nothing read again: the face's own landmarks.
    alone = steady_landmarks(face, ViewReadings(None, [None] * 4, iod))
    np.testing.assert_allclose(alone.landmarks, base, atol=1e-4)


def test_steady_landmarks_jitter_less_than_one_reading(landmarker, astronaut, astronaut_face):
    """The point of steadying: the same photo moved by a few pixels and scaled by a few percent is
    read with less jitter. A smudged face (the detector half guesses, as on a render of an untextured
    mesh) is moved and scaled four ways; the landmarks mapped back into the unmoved photo scatter
    around their mean less steadied than read once."""
    from avatartex.face import read_views, steady_landmarks

    smudged = cv2.GaussianBlur(astronaut, (0, 0), 0.08 * astronaut_face.interocular)
    h, w = smudged.shape[:2]
    centre = astronaut_face.landmarks.mean(axis=0)
    raw, steady = [], []
    for k in range(4):
        move = cv2.getRotationMatrix2D(tuple(map(float, centre)), 0.0, 1.0 + 0.03 * k)
        move[:, 2] += (3.3 * k, -2.1 * k)
        image = cv2.warpAffine(smudged, move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        back = cv2.invertAffineTransform(move)
        faces = landmarker.detect(image)
        assert faces
        once = faces[0]
        steadied = steady_landmarks(once, read_views(landmarker, image, once))
        assert steadied.extras["readings"] >= 4
        raw.append(once.landmarks.astype(np.float64) @ back[:, :2].T + back[:, 2])
        steady.append(steadied.landmarks.astype(np.float64) @ back[:, :2].T + back[:, 2])

    def jitter(readings: list[np.ndarray]) -> float:
        stack = np.stack(readings)
        return float(np.linalg.norm(stack - stack.mean(axis=0), axis=2).mean()) / astronaut_face.interocular

    assert jitter(steady) < 0.5 * jitter(raw)  # measured: 0.0137 read once, 0.0034 steadied


def test_turn_matrix_maps_a_pixel_to_where_np_rot90_puts_it() -> None:
    image = np.random.default_rng(0).random((7, 11))
    for turns in range(4):
        turned = np.rot90(image, turns)
        matrix = face_mod.turn_matrix(turns, 11, 7)
        for row, col in ((0, 0), (6, 10), (2, 9), (5, 1)):
            x, y = matrix @ np.array([col + 0.5, row + 0.5, 1.0])
            assert turned[int(y), int(x)] == image[row, col], (turns, row, col)


def _turned(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned counter-clockwise about its centre onto a canvas that holds all of it (the
    border replicated), and the (2, 3) map of its pixels into the turned one."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    width, height = int(h * sin + w * cos), int(h * cos + w * sin)
    matrix[:, 2] += (width / 2 - w / 2, height / 2 - h / 2)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE), matrix


@pytest.mark.parametrize("degrees", [60.0, 90.0, 135.0, 180.0, 270.0])
def test_a_photo_turned_sideways_is_read_upright(landmarker, grace_hopper_path, degrees: float) -> None:
    """A phone photo whose orientation tag was lost shows the face on its side: mediapipe's face mesh
    reads it worse (Grace Hopper turned 90°: 0.076 eye distances off her upright reading, scattered
    by 0.056 against 0.012) or, upside down, not at all. The face is read in the quarter turn of the
    photo that shows it upright, and its landmarks mapped back: within 0.035 eye distances of the
    upright reading. Turned 180° on replicated borders both of mediapipe's models read an upright
    face with its features swapped; the face detector's eyes then lie 0.26 eye distances from the
    mesh model's (``EYES_DISAGREE_IOD``), and the photo is read upside down too."""
    from avatartex.image_io import load_portrait

    image, _ = load_portrait(grace_hopper_path)
    upright = face_mod.detect_under_any_light(landmarker, image)[0]
    turned, matrix = _turned(image, degrees)
    faces = face_mod.detect_under_any_light(landmarker, turned)
    face = max(faces, key=lambda f: f.size)
    truth = upright.landmarks.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    assert np.linalg.norm(face.landmarks - truth, axis=1).mean() / upright.interocular < 0.035
    assert face.extras["quarter_turns"] == -round(degrees / 90.0) % 4 and face.score > 0.5  # turned back
    # A face read upright as it is costs no turned look.
    assert "quarter_turns" not in upright.extras


def test_a_photo_upside_down_that_reads_as_an_upright_face_is_turned(landmarker, astronaut) -> None:
    """The astronaut upside down, her frame mirrored out to twice its size: the face-mesh model reads
    an upright face there, its features swapped, and the face detector confirms the box. The
    detector's eyes disagree with the mesh model's (over ``EYES_DISAGREE_IOD``, against 0.1 upright),
    so the photo is read turned upside down too, where the face reads surer: it is taken, and its
    landmarks land within 0.035 eye distances of the upright reading's."""
    pad = astronaut.shape[0] // 3
    framed = cv2.copyMakeBorder(astronaut, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    upright = face_mod.detect_under_any_light(landmarker, framed)[0]
    assert upright.extras["detector_eyes_iod"] < face_mod.EYES_DISAGREE_IOD
    turned = np.ascontiguousarray(framed[::-1, ::-1])
    as_it_is = max(landmarker.detect(turned), key=lambda f: f.size)
    assert face_mod.reads_upright(as_it_is)  # the misreading this guards against
    assert as_it_is.extras["detector_eyes_iod"] > face_mod.EYES_DISAGREE_IOD
    face = max(face_mod.detect_under_any_light(landmarker, turned), key=lambda f: f.size)
    assert face.extras["quarter_turns"] == 2
    h, w = framed.shape[:2]
    truth = upright.landmarks.astype(np.float64) @ face_mod.turn_matrix(2, w, h)[:, :2].T
    truth += face_mod.turn_matrix(2, w, h)[:, 2]
    assert np.linalg.norm(face.landmarks - truth, axis=1).mean() / upright.interocular < 0.035


def test_a_small_upright_face_whose_detectors_disagree_is_not_turned(landmarker, grace_hopper_path) -> None:
    """Grace Hopper at 22 % on a grey 2000 x 1333 frame: the face detector's eyes lie 0.6 eye distances
    from the face mesh's, and the frame turned upside down read surer: the photo was turned 180° and
    the texture made upside down. Read again close up, the upright reading is the surer: kept as it is."""
    from PIL import Image

    photo = Image.open(grace_hopper_path).convert("RGB")
    small = photo.resize((photo.width * 22 // 100, photo.height * 22 // 100), Image.LANCZOS)
    frame = Image.new("RGB", (2000, 1333), (118, 128, 140))
    frame.paste(small, (900, 500))
    saved = io.BytesIO()
    frame.save(saved, "JPEG", quality=92)
    image = np.asarray(Image.open(saved).convert("RGB"), np.float32) / 255.0
    as_it_is = max(landmarker.detect(image), key=lambda f: f.size)
    assert as_it_is.extras["detector_eyes_iod"] > face_mod.EYES_DISAGREE_IOD  # what misled the turn
    face = max(face_mod.detect_under_any_light(landmarker, image), key=lambda f: f.size)
    assert "quarter_turns" not in face.extras
    assert (
        900 < face.left_eye_center[0] < 900 + small.width
        and face.left_eye_center[1] < face.landmarks[:, 1].mean()
    )


def test_views_read_on_two_graphs_are_the_readings_one_after_the_other(landmarker, astronaut) -> None:
    """``reread_views`` reads the reference and its views on two face-mesh graphs at once: the
    landmarks must be those ``reread`` gives one view at a time, and no view is read where the
    reference shows no face."""
    import cv2

    crop = np.ascontiguousarray(astronaut[20:260, 100:340])
    views = [
        cv2.warpAffine(crop, cv2.getRotationMatrix2D((120, 120), turn, zoom), (240, 240))
        for turn, zoom in ((8, 1.0), (-8, 1.0), (0, 0.8), (0, 1.25))
    ]
    together = landmarker.reread_views(crop, views)
    one_by_one = [landmarker.reread(image) for image in [crop, *views]]
    assert len(together) == 5 and all(len(found) == 1 for found in together)
    for (read,), (alone,) in zip(together, one_by_one, strict=True):
        np.testing.assert_array_equal(read.landmarks, alone.landmarks)
    blank = np.zeros((64, 64, 3), np.float32)
    assert landmarker.reread_views(blank, [crop]) == [[], None]


def test_an_eye_the_photos_edge_cuts_is_marked_whole_for_the_fill(astronaut, astronaut_face) -> None:
    """``steps.eyes_cut_by_frame``: the eye a frame halves is taken off whole (grown over its lids),
    so that it is filled as one eye, not half the photo's eye beside half a fill; the other eye and a
    face the frame does not cut are left to the photo."""
    from avatartex.pipeline.steps import eyes_cut_by_frame

    assert eyes_cut_by_frame(astronaut_face, astronaut.shape[:2]) is None
    right = astronaut_face.landmarks[list(RIGHT_EYE_CONTOUR)]
    left = astronaut_face.landmarks[list(LEFT_EYE_CONTOUR)]
    x0 = float(right[:, 0].mean())
    shifted = Face(astronaut_face.landmarks - np.float32([x0, 0.0]), 0.9)
    shape = (astronaut.shape[0], astronaut.shape[1] - int(x0))
    cut = eyes_cut_by_frame(shifted, shape)
    assert cut is not None
    inside = right - (x0, 0.0)
    inside = inside[inside[:, 0] > 0.5]  # the part of the right eye the photo still shows
    xy = np.floor(inside).astype(int)
    assert len(xy) >= 4 and cut[xy[:, 1], xy[:, 0]].min() == 1.0
    centre = np.floor(left.mean(axis=0) - (x0, 0.0)).astype(int)
    assert cut[centre[1], centre[0]] == 0.0
    assert cut.sum() < 0.5 * np.pi * astronaut_face.interocular**2  # an eye and its lids, no more


def test_the_photo_fades_in_from_the_edge_that_cuts_the_face() -> None:
    """``steps.border_fade``: nothing at the photo's edge, all of it a fade's width in, symmetric on
    all four sides; a point not read (NaN) is left alone."""
    from avatartex.pipeline.steps import border_fade

    coords = np.array(
        [[0.0, 50.0], [2.5, 50.0], [5.0, 50.0], [10.0, 50.0], [97.5, 50.0], [50.0, 78.0], [np.nan, np.nan]],
        np.float32,
    )
    fade = border_fade(coords, (80, 100), 5.0)
    np.testing.assert_allclose(fade, [0.0, 0.5, 1.0, 1.0, 0.5, 0.352, 1.0], atol=1e-3)


def test_a_face_enlarged_from_a_smaller_picture_is_said_to_give_a_blurry_texture(
    landmarker, astronaut
) -> None:
    """An enlarged small photo passes the eye-distance test (an LFW face, 25 pixels wide, enlarged 16
    times: eyes 127 pixels apart) and gave a texture as blurred as the small one, with no word. The
    face's crop shrunk and enlarged back tells (``face.detail_interocular``); photos as taken, two
    stops darker or JPEG-compressed do not read as enlarged."""
    import cv2

    def said(image: np.ndarray) -> list[str]:
        return [w for w in analyse_portrait(image, "p.png", landmarker)[1] if "enlarged" in w]

    jpeg = cv2.imdecode(
        cv2.imencode(".jpg", (astronaut[..., ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 30])[
            1
        ],
        1,
    )
    for image in (astronaut, astronaut * 0.25, jpeg[..., ::-1].astype(np.float32) / 255):
        assert said(np.ascontiguousarray(image, dtype=np.float32)) == []
    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    enlarged = cv2.resize(small, (512, 512), interpolation=cv2.INTER_CUBIC)
    face, warnings = analyse_portrait(enlarged, "enlarged.png", landmarker)
    assert face.interocular > face_mod.WARN_IOD_PX and len([w for w in warnings if "enlarged" in w]) == 1
    assert face_mod.detail_interocular(enlarged, face) <= face.interocular / 2  # shrunk 4 times
    lfw = np.repeat(data.lfw_subset()[0][..., None].astype(np.float32), 3, axis=2)
    lfw = cv2.resize(lfw, (400, 400), interpolation=cv2.INTER_CUBIC)
    face, warnings = analyse_portrait(np.clip(lfw, 0, 1), "p.png", landmarker)
    assert len([w for w in warnings if "enlarged" in w]) == 1
    # Its eyes hold two pixels lid to lid of detail (its eyes 127 apart): they came out looking shut;
    # they are painted (the regions step says so).
    assert face_mod.eye_opening_px(face) < face_mod.SMALL_EYE_OPENING_PX <= face_mod.eye_opening_px(face, 1.0)
    assert face_mod.eyes_too_small(face)


def test_a_small_faces_eyes_of_a_few_pixels_are_too_small_unless_shut(landmarker, astronaut) -> None:
    """A face small in its photo (eyes under WARN_IOD_PX apart) is blurry, said, and its eyes'
    openings of a pixel or two hold no whites nor irises: ``eyes_too_small``, for the regions step to
    paint them (and say so, ``small_eyes_note``)."""
    import cv2

    tiny = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)
    face, warnings = analyse_portrait(np.ascontiguousarray(tiny, dtype=np.float32), "tiny.png", landmarker)
    assert len([w for w in warnings if "is small" in w]) == 1
    assert face.interocular < face_mod.WARN_IOD_PX and face_mod.eyes_too_small(face)
    assert "painted" in face_mod.small_eyes_note(face)
    face, _ = analyse_portrait(astronaut, "astronaut.png", landmarker)  # eyes of 6-7 pixels
    assert not face_mod.eyes_too_small(face)
    # Shut eyes are not small ones: the lids' middles pressed together, the photo's lids stay.
    tiny_face = face_mod.Face(face.landmarks * 0.3, face.score)
    shut = face_mod.Face(tiny_face.landmarks.copy(), face.score)
    for contour in (face_mod.RIGHT_EYE_CONTOUR, face_mod.LEFT_EYE_CONTOUR):
        shut.landmarks[contour[4]] = shut.landmarks[contour[12]]
    assert face_mod.eyes_too_small(tiny_face) and not face_mod.eyes_too_small(shut)
