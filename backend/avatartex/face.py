"""Face analysis of a portrait: 468 mediapipe face-mesh landmarks, the named points the rest of the
pipeline uses, and the checks that turn "no usable face" into an error the artist can act on.

Left and right are always the *character's* own: on a frontal photo the character's left eye is on
the image's right. Pixel coordinates are x right, y down, pixel centres at integer + 0.5 (as in
camera.py).
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .protocol import PIN_NAMES, AvatarTexError, ErrorCode

NUM_LANDMARKS = 468

# --- Named index sets of mediapipe's 468-point canonical face mesh -----------------------------------
# From mediapipe.python.solutions.face_mesh_connections, ordered along each contour. "RIGHT" is the
# character's right eye (image left on a frontal photo): checked on skimage's astronaut, where
# RIGHT_EYE_OUTER (33) has the smallest x of the eye points.
RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_INNER = 362
LEFT_EYE_OUTER = 263
NOSE_TIP = 1
MOUTH_RIGHT = 61
MOUTH_LEFT = 291
CHIN = 152
FOREHEAD = 10
"""Top of the face oval, middle of the hairline."""

RIGHT_EYE_CONTOUR = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
"""Upper lid outer->inner, then lower lid inner->outer."""
LEFT_EYE_CONTOUR = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_EYEBROW = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
"""Lower edge outer->inner, then upper edge outer->inner."""
LEFT_EYEBROW = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
"""Closed loop from the right mouth corner along the lower lip, back along the upper lip."""
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
"""The silhouette of the face, closed loop from the forehead over the character's left side."""
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4, 1)
"""Between the eyes down to the tip."""
CHIN_POINTS = (152, 148, 176, 377, 400)
NOSE_LOWER = (48, 64, 98, 97, 2, 326, 327, 294, 278)
"""The underside of the nose, the character's right nostril wing over the columella to the left one."""
RIGHT_EYEBROW_OUTLINE = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
"""The brow as a closed loop: lower edge outer->inner, then upper edge inner->outer."""
LEFT_EYEBROW_OUTLINE = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
JAW = FACE_OVAL[8:29]
"""The lower face outline, from below the character's left ear over the chin to below the right one."""

PIN_LANDMARKS: dict[str, int] = {
    "right_eye_outer": RIGHT_EYE_OUTER,
    "right_eye_inner": RIGHT_EYE_INNER,
    "left_eye_inner": LEFT_EYE_INNER,
    "left_eye_outer": LEFT_EYE_OUTER,
    "nose_tip": NOSE_TIP,
    "mouth_right": MOUTH_RIGHT,
    "mouth_left": MOUTH_LEFT,
    "chin": CHIN,
}
"""protocol.PIN_NAMES -> mediapipe landmark index."""
assert set(PIN_LANDMARKS) == set(PIN_NAMES)

# Measured on skimage's astronaut downscaled into a 1600x1200 frame (tests/test_face.py): mean landmark
# error vs the full-size detection is 2% of the eye distance at 13 px, 4% at 8 px, 6-10% at 6 px, and
# below ~6 px nothing is found at all. Registration aims at 3%, so below 8 px the face is refused; below
# 40 px it still registers but the projected texture is a blur (the face spans ~100x120 texels).
MIN_IOD_PX = 8.0
"""Inter-ocular distance (pixels, between eye centres) below which a face is refused."""
WARN_IOD_PX = 40.0
"""Inter-ocular distance below which the face is used with a low-resolution warning."""
SMALL_EYE_OPENING_PX = 3.0
"""An eye's opening (lid to lid, pixels of the detail the photo holds) below which the photo cannot
show the eye (``eyes_too_small``): the iris and the whites then span a pixel or two each. LFW's
faces enlarged 16 times hold 1.7-2.8 (a QA saw their eyes come out shut), the astronaut's photo
6.6, shrunk four times 2.8."""
EYE_OPEN_SHARE = 0.06
"""Eye distances of opening (lid to lid, the landmarks') under which the photo's eyes are shut, not
small: open eyes read 0.09-0.18 (LFW's small faces, the astronaut's smile 0.15, Grace Hopper 0.12)."""
ENLARGED_FACTORS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"""Scales at which ``detail_interocular`` asks whether the face's crop holds detail finer than the
scale: shrunk by the factor and enlarged back, the crop is itself (to ``ENLARGED_RESIDUAL``) where
it has none."""
ENLARGED_RESIDUAL = 0.03
"""RMS difference, as a share of the face crop's standard deviation, under which the crop shrunk and
enlarged back is taken for itself. Photos as taken read 0.06-0.13 at 1.5 (the astronaut, Grace
Hopper, darker, noisier, side-lit, JPEG quality 8 to 40, two stops under); the astronaut's face made
40 pixels wide and enlarged 9.5 times 0.006-0.018 up to 4, an LFW face enlarged 16 times 0.009-0.024
up to 6, the astronaut enlarged 3 times 0.021 at 1.5; enlarged 2 times 0.04 (not told: its detail is
that of eyes 21 pixels apart, under WARN_IOD_PX only by half)."""
FRAME_CUT_SHARE = 0.02
"""Share of the face (the area of its landmarks' outline) outside the photo from which the artist is
told that the photo's edge cuts the face (``frame_cut``); a cut eye, nose or mouth is said whatever
the share. mediapipe places the landmarks of a face the frame cuts where the face would be: what lies
beyond the frame is filled (the other side of the face, the skin around), and an eye the frame halves
is half the photo's, half a fill."""
FRAME_CUT_PARTS = (
    ("the character's right eye", RIGHT_EYE_CONTOUR),
    ("the character's left eye", LEFT_EYE_CONTOUR),
    ("the nose", (NOSE_TIP,)),
    ("the mouth", LIPS_OUTER),
    ("the chin", CHIN_POINTS),
    ("the forehead", (FOREHEAD,)),
)
"""The features ``frame_cut`` names where a landmark of theirs lies outside the photo."""


@dataclass
class Face:
    """One face found in an image."""

    landmarks: np.ndarray
    """(468, 2) float32 pixel coordinates (x right, y down) of mediapipe's face-mesh points."""
    score: float = 1.0
    """Confidence 0..1: mediapipe's face-detector score of the box holding this face, 0 when only the
    mesh model found it (an unconfirmed face)."""
    depth: np.ndarray | None = None
    """(468,) optional relative depth of each landmark from the mesh model (pixels, smaller = closer)."""
    extras: dict = field(default_factory=dict)
    """How the face was found (e.g. ``{"pass": "upscaled", "scale": 10.2}``), for reports."""

    @property
    def bbox(self) -> np.ndarray:
        """(4,) x0, y0, x1, y1 of the landmarks."""
        return np.concatenate([self.landmarks.min(axis=0), self.landmarks.max(axis=0)])

    @property
    def size(self) -> float:
        """Square root of the bounding box area, pixels."""
        x0, y0, x1, y1 = self.bbox
        return float(np.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)))

    @property
    def left_eye_center(self) -> np.ndarray:
        """(2,) centre of the character's left eye contour (image right on a frontal photo)."""
        return self.landmarks[list(LEFT_EYE_CONTOUR)].mean(axis=0)

    @property
    def right_eye_center(self) -> np.ndarray:
        """(2,) centre of the character's right eye contour."""
        return self.landmarks[list(RIGHT_EYE_CONTOUR)].mean(axis=0)

    @property
    def interocular(self) -> float:
        """Distance between the two eye centres, pixels: the unit of registration error."""
        return float(np.linalg.norm(self.left_eye_center - self.right_eye_center))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The face's own frame in the photo, pixels: the eyes' midpoint, the unit x axis (towards
        the character's left eye) and the unit up axis (from the mouth's corners towards the eyes,
        square to x). Crops aligned with it are the same whatever the photo's roll."""
        right, left = self.right_eye_center.astype(np.float64), self.left_eye_center.astype(np.float64)
        eyes = (right + left) / 2
        x = (left - right) / max(np.linalg.norm(left - right), 1e-6)
        mouth = self.landmarks[[MOUTH_LEFT, MOUTH_RIGHT]].astype(np.float64).mean(axis=0)
        up = eyes - mouth
        up = up - x * (up @ x)
        up /= max(np.linalg.norm(up), 1e-6)
        return eyes, x, up

    def mapped(self, matrix: np.ndarray, **extras) -> Face:
        """This face with its landmarks moved by a (2, 3) affine ``matrix`` of pixel coordinates
        (into a turned copy of the image, or back), ``extras`` added to its own."""
        m = np.asarray(matrix, np.float64)
        landmarks = self.landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2]
        return dataclasses.replace(
            self, landmarks=landmarks.astype(np.float32), extras={**self.extras, **extras}
        )

    def named(self, name: str) -> np.ndarray:
        """(2,) the landmark of a protocol PIN_NAMES name."""
        return self.landmarks[PIN_LANDMARKS[name]]


class Detection(NamedTuple):
    """One face the face detector (not the face-mesh model) found."""

    box: np.ndarray
    """(4,) x0, y0, x1, y1, pixels."""
    score: float
    eyes: np.ndarray | None
    """(2, 2) its keypoints for the character's right and left eye, pixels."""


def detector_eyes_apart(face: Face, eyes: np.ndarray) -> float:
    """How far the face detector's two eye keypoints lie from the face-mesh model's eye centres
    (mean, eye distances). Both models read an upright face within a tenth of an eye distance of
    each other (0.02-0.11 on the astronaut, Grace Hopper and the LFW faces); where the mesh model
    reads a face upside down as upright (its features swapped) the two can still agree on the box
    but not on the eyes (0.23)."""
    mesh = np.stack([face.right_eye_center, face.left_eye_center]).astype(np.float64)
    apart = np.linalg.norm(np.asarray(eyes, np.float64) - mesh, axis=1).mean()
    return float(apart / max(face.interocular, 1e-6))


class FaceLandmarker(abc.ABC):
    """Finds faces and their 468 face-mesh landmarks in an RGB image."""

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (float32 (H, W, 3) sRGB 0..1), any order."""

    def close_range_score(self, image: np.ndarray, face: Face) -> float:
        """A face detector's score for ``face`` in ``image`` when the face fills the frame, which the
        detector behind ``detect``'s score may miss (``MediapipeLandmarker``'s); 0: not confirmed."""
        return 0.0

    def reread(self, image: np.ndarray) -> list[Face]:
        """The faces of ``image`` for reading again a face already found (``read_views``): their
        landmarks as ``detect`` gives them; their ``score`` need not be computed."""
        return self.detect(image)

    def reread_views(self, reference: np.ndarray, views: list[np.ndarray]) -> list[list[Face] | None]:
        """``reread`` of ``reference`` and of each of ``views`` (the same face turned or scaled), in
        that order; the views are not read (None) where nothing is found in the reference. A
        landmarker may read them concurrently."""
        first = self.reread(reference)
        return [first] + [self.reread(view) if first else None for view in views]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    from .imaging import unit_range

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (unit_range(image) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _holds(box: np.ndarray, point: np.ndarray) -> bool:
    """Whether a detection's box (x0, y0, x1, y1) holds a point (x, y)."""
    return bool(box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3])


def _mesh_faces(mesh, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The faces a face-mesh graph reads in ``rgb``: (468, 2) pixel positions and (468,) depths."""
    result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        return []
    h, w = rgb.shape[:2]
    faces = []
    for face in result.multi_face_landmarks:
        xyz = np.array([(p.x, p.y, p.z) for p in face.landmark[:NUM_LANDMARKS]], np.float64)
        # mediapipe's normalised coordinates put pixel centres at (i + 0.5) / size already.
        points = xyz[:, :2] * (w, h)
        faces.append((points.astype(np.float32), (xyz[:, 2] * w).astype(np.float32)))
    return faces


class MediapipeLandmarker(FaceLandmarker):
    """mediapipe 0.10.14's FaceMesh (468 points, the models inside the wheel, runs offline).

    Three passes, each only when the previous found nothing:

    1. the image as is;
    2. small images (longest side < ``upscale_to``) upscaled to ``upscale_to``: mediapipe's face
       detector looks for faces at 128 px and misses tiny ones (the 25x25 lfw crops: see
       tests/test_face.py for the measured rates of each pass);
    3. mediapipe's full-range face detector on the whole image, then face mesh on each detection's
       crop upscaled to ``upscale_to`` (a small face inside a large photo);
    4. the same detector on overlapping tiles of 1/2 then 1/4 of the image (a face only a few % of a
       large frame).

    The models are created once and reused (about 5-10 ms a call once warm); a lock makes one
    instance safe to share between threads.
    """

    def __init__(
        self, max_num_faces: int = 4, min_detection_confidence: float = 0.5, upscale_to: int = 256
    ) -> None:
        self.max_num_faces = max_num_faces
        self.min_detection_confidence = min_detection_confidence
        self.upscale_to = upscale_to
        self._mesh = None
        self._detector = None
        self._close_detector = None
        self._lock = threading.Lock()
        self._pool = None  # reread_views' worker and its graph
        self._second = None
        self._second_lock = threading.Lock()

    def warm_up(self) -> None:
        """Import mediapipe (half a second) and build the graphs before the first photo needs them."""
        with self._lock:
            self._models()
        self._second_graph()

    def _face_mesh(self):
        import mediapipe as mp

        return mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=self.max_num_faces,
            refine_landmarks=False,
            min_detection_confidence=self.min_detection_confidence,
        )

    def _models(self):
        if self._mesh is None:
            import mediapipe as mp

            self._mesh = self._face_mesh()
            # The full-range model (model_selection=1) finds faces down to a few % of the frame;
            # the short-range one (0) those that fill it, which the full-range one misses.
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_detection_confidence
            )
            self._close_detector = mp.solutions.face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=self.min_detection_confidence
            )
        return self._mesh, self._detector

    def _run_mesh(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        mesh, _ = self._models()
        return _mesh_faces(mesh, rgb)

    def _detections(self, rgb: np.ndarray, close: bool = False) -> list[Detection]:
        """The face detector's boxes: the full-range model's, or with ``close`` the short-range
        model's (faces filling the frame, which the full-range one misses: ``detect``)."""
        _, detector = self._models()
        result = (self._close_detector if close else detector).process(rgb)
        h, w = rgb.shape[:2]
        boxes = []
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            x0, y0 = box.xmin * w, box.ymin * h
            keypoints = det.location_data.relative_keypoints
            eyes = np.array([[k.x * w, k.y * h] for k in keypoints[:2]]) if len(keypoints) >= 2 else None
            boxes.append(
                Detection(
                    np.array([x0, y0, x0 + box.width * w, y0 + box.height * h]), float(det.score[0]), eyes
                )
            )
        return boxes

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (float32 (H, W, 3) sRGB 0..1 or uint8), any order."""
        import cv2

        rgb = _to_uint8(image)
        h, w = rgb.shape[:2]
        with self._lock:
            found = [(p, z, {"pass": "direct", "scale": 1.0}) for p, z in self._run_mesh(rgb)]
            if not found and max(h, w) < self.upscale_to:
                scale = self.upscale_to / max(h, w)
                big = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
                sx, sy = big.shape[1] / w, big.shape[0] / h
                found = [
                    (p / (sx, sy), z / sx, {"pass": "upscaled", "scale": float(sx)})
                    for p, z in self._run_mesh(big)
                ]
            detections = self._detections(rgb)
            if not found:
                found = self._crops(rgb, detections)
            else:
                # A face the face-mesh graph's own short-range detector passed over, which the
                # full-range one finds (a group photo: of the astronaut beside Grace Hopper it kept
                # one): read in its box, so that the largest face is the one used and the others
                # are said (``analyse_portrait``), not one of them chosen silently.
                missed = [d for d in detections if not any(_holds(d.box, p[NOSE_TIP]) for p, _, _ in found)]
                found += self._crops(rgb, missed)
            if not found and max(h, w) > 2 * self.upscale_to:
                # A face a few % of a large frame escapes even the full-range detector: look again in
                # overlapping tiles of a half, then a quarter of the image.
                for tile in (max(h, w) // 2, max(h, w) // 4):
                    if tile < self.upscale_to:
                        break
                    tile_detections = self._tiled_detections(rgb, tile)
                    found = self._crops(rgb, tile_detections)
                    if found:
                        detections = detections + tile_detections
                        break
        faces = []
        for points, depth, extras in found:
            # The face detector's score of the box this face's nose sits in; 0 when the detector does
            # not confirm the face (the mesh model alone also "finds" faces in upside-down renders).
            inside = [d for d in detections if _holds(d.box, points[NOSE_TIP])]
            confirming = max(inside, key=lambda d: d.score, default=None)
            score = 0.0 if confirming is None else confirming.score
            face = Face(points.astype(np.float32), score, depth.astype(np.float32), extras)
            if confirming is not None and confirming.eyes is not None:
                face.extras["detector_eyes_iod"] = detector_eyes_apart(face, confirming.eyes)
            faces.append(face)
        return faces

    def close_range_score(self, image: np.ndarray, face: Face) -> float:
        """mediapipe's short-range face detector's score of the box holding ``face``'s nose in
        ``image`` (0 where none does). The full-range detector, whose score ``detect`` gives, misses
        a face filling the frame: the astronaut and Grace Hopper cropped to their landmarks read 0
        there, this 0.86 and 0.80. For views made to frame a face already found (the mesh's
        straight-on views, ``landmarks._refine``); ``detect`` keeps the full-range score, whose 0
        the portrait's reading relies on (confirmed here, the sweep's portraits lost their way:
        bench/sweep.py --registration-only, r086 0.035 -> 2.25 eye distances)."""
        rgb = _to_uint8(image)
        with self._lock:
            boxes = self._detections(rgb, close=True)
        return max((d.score for d in boxes if _holds(d.box, face.landmarks[NOSE_TIP])), default=0.0)

    def reread(self, image: np.ndarray) -> list[Face]:
        """``detect``'s landmarks with no confirming face detection (score NaN) where the face-mesh
        model reads a face in the image as it is: a face already found, read again in a view of
        its crop (``read_views``, ten per request), costs the mesh model alone (about 6 of its
        13 ms). Anything else goes through ``detect``."""
        rgb = _to_uint8(image)
        with self._lock:
            found = self._run_mesh(rgb)
        return self._reread_found(rgb, found)

    def _reread_found(self, rgb: np.ndarray, found: list) -> list[Face]:
        if not found:
            return self.detect(rgb)
        extras = {"pass": "direct", "scale": 1.0}
        return [Face(p, float("nan"), z, dict(extras)) for p, z in found]

    def reread_views(self, reference: np.ndarray, views: list[np.ndarray]) -> list[list[Face] | None]:
        """``reread`` of the reference and the views on two face-mesh graphs at once (a second graph
        of the same model, a worker thread: the model's inference leaves the other core idle; five
        readings 20 -> 11 ms), the same readings as one after the other (static images: a graph
        keeps nothing between them)."""
        images = [_to_uint8(image) for image in [reference, *views]]
        meshes = self._run_meshes(images)
        first = self._reread_found(images[0], meshes[0])
        return [first] + [
            self._reread_found(rgb, found) if first else None
            for rgb, found in zip(images[1:], meshes[1:], strict=True)
        ]

    def _second_graph(self):
        """The worker thread and the second face-mesh graph ``reread_views`` reads on."""
        with self._second_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._second = self._face_mesh()
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="avatartex-facemesh")
        return self._pool, self._second

    def _run_meshes(self, images: list[np.ndarray]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """``_run_mesh`` of each image, the odd ones on the second graph in the worker thread."""
        pool, second = self._second_graph()

        def on_second() -> list:
            with self._second_lock:
                return [_mesh_faces(second, rgb) for rgb in images[1::2]]

        odd = pool.submit(on_second)
        with self._lock:
            even = [self._run_mesh(rgb) for rgb in images[0::2]]
        out = [None] * len(images)
        out[0::2], out[1::2] = even, odd.result()
        return out

    def _tiled_detections(self, rgb: np.ndarray, tile: int) -> list[Detection]:
        h, w = rgb.shape[:2]
        step = tile // 2
        boxes: list[Detection] = []
        for y0 in range(0, max(1, h - step), step):
            for x0 in range(0, max(1, w - step), step):
                part = np.ascontiguousarray(rgb[y0 : y0 + tile, x0 : x0 + tile])
                for box, score, eyes in self._detections(part):
                    box = box + (x0, y0, x0, y0)
                    centre = (box[:2] + box[2:]) / 2
                    # Overlapping tiles see the same face twice: keep the first box around a centre.
                    if all(
                        np.abs(centre - (b.box[:2] + b.box[2:]) / 2).max() > 0.5 * (b.box[2] - b.box[0])
                        for b in boxes
                    ):
                        boxes.append(Detection(box, score, None if eyes is None else eyes + (x0, y0)))
        return boxes

    def _crops(
        self, rgb: np.ndarray, detections: list[Detection]
    ) -> list[tuple[np.ndarray, np.ndarray, dict]]:
        import cv2

        h, w = rgb.shape[:2]
        found = []
        for box, _, _ in detections:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            half = 1.0 * max(box[2] - box[0], box[3] - box[1])  # the face with its surroundings
            x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
            x1, y1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            crop = rgb[y0:y1, x0:x1]
            scale = max(1.0, self.upscale_to / max(crop.shape[:2]))
            big = (
                cv2.resize(
                    crop,
                    (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                    interpolation=cv2.INTER_CUBIC,
                )
                if scale > 1
                else crop
            )
            sx, sy = big.shape[1] / crop.shape[1], big.shape[0] / crop.shape[0]
            for points, depth in self._run_mesh(np.ascontiguousarray(big)):
                found.append((points / (sx, sy) + (x0, y0), depth / sx, {"pass": "crop", "scale": float(sx)}))
        return found


class PersonSegmenter:
    """Person-versus-background mask of a photo (mediapipe's selfie segmentation, shipped in its wheel).

    The projection uses it so that the wall or sky next to a jaw never becomes skin, whatever its
    colour; the skin-colour test then separates skin from hair and clothing inside the person.
    """

    def __init__(self) -> None:
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Build the model before the first photo needs it."""
        with self._lock:
            self._segmentation()

    def _segmentation(self):
        if self._model is None:
            import mediapipe as mp

            self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        return self._model

    def mask(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 0..1, 1 on the person (head, hair, body)."""
        with self._lock:
            result = self._segmentation().process(_to_uint8(image))
        mask = result.segmentation_mask
        if mask is None:
            return np.ones(image.shape[:2], np.float32)
        return np.clip(np.asarray(mask, np.float32), 0.0, 1.0)


PERSON_CROP_IOD = 14.0
"""Side, in eye distances, of the square round a face that ``person_mask`` segments again when the
photo is much larger than that: the segmenter reads a photo at 256 pixels, and a face with its eyes 22
pixels apart in a 2400x1800 frame (the astronaut shot from afar) came out as a blob of body without
its head: no hair was found, and with ``scalp=skin`` her fringe stayed on the forehead."""


def person_mask(segmenter: Any, image: np.ndarray, face: Face | None = None) -> np.ndarray:
    """(H, W) the person in ``image`` (``segmenter.mask``); where ``face`` is small in a large photo,
    the square of ``PERSON_CROP_IOD`` eye distances round it (from above the hair to the chest)
    segmented on its own and put in its place."""
    whole = segmenter.mask(image)
    if face is None or not np.isfinite(face.interocular) or face.interocular <= 0:
        return whole
    h, w = image.shape[:2]
    side = PERSON_CROP_IOD * float(face.interocular)
    if max(h, w) <= 1.5 * side:
        return whole
    eyes, _, up = face.axes()
    centre = eyes - up * 1.5 * float(face.interocular)  # the face and the hair above it in the middle
    x0, y0 = np.maximum(np.round(centre - side / 2).astype(int), 0)
    x1, y1 = np.minimum(np.round(centre + side / 2).astype(int), [w, h])
    if x1 - x0 < 32 or y1 - y0 < 32:
        return whole
    out = np.array(whole, np.float32)
    out[y0:y1, x0:x1] = segmenter.mask(np.ascontiguousarray(image[y0:y1, x0:x1]))
    return out


_DEFAULT_LANDMARKER: MediapipeLandmarker | None = None
_DEFAULT_SEGMENTER: PersonSegmenter | None = None


def default_landmarker() -> MediapipeLandmarker:
    """A process-wide MediapipeLandmarker, created on first use."""
    global _DEFAULT_LANDMARKER
    if _DEFAULT_LANDMARKER is None:
        _DEFAULT_LANDMARKER = MediapipeLandmarker()
    return _DEFAULT_LANDMARKER


def default_segmenter() -> PersonSegmenter:
    """A process-wide PersonSegmenter, created on first use."""
    global _DEFAULT_SEGMENTER
    if _DEFAULT_SEGMENTER is None:
        _DEFAULT_SEGMENTER = PersonSegmenter()
    return _DEFAULT_SEGMENTER


def relit_views(image: np.ndarray) -> list[np.ndarray]:
    """The photo with its light evened out, for a second look when the detector finds no face:
    local contrast equalised on lightness (CLAHE) and the shadows lifted (gamma 0.5). A face lit
    from one side at a grazing angle, or from below, is missed by the detector as it is, not once
    its half in shadow is brought up. Landmarks found on these views are the photo's own: only the
    tones change, never the geometry."""
    import cv2

    rgb8 = (np.clip(np.asarray(image, np.float32)[..., :3], 0.0, 1.0) * 255).astype(np.uint8)
    lab = cv2.cvtColor(rgb8, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    equalised = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0
    lifted = np.sqrt(np.clip(np.asarray(image, np.float32)[..., :3], 0.0, 1.0))
    return [equalised, lifted]


EYES_DISAGREE_IOD = 0.15
"""Distance (eye distances, ``detector_eyes_apart``) between the face detector's eyes and the
face-mesh model's over which an upright reading is checked against the photo turned upside down:
upright photos read 0.02-0.11 (the astronaut, Grace Hopper), small LFW faces up to 0.24, which
the check then reads twice (one detection more) and keeps as they are."""


def detect_under_any_light(landmarker: FaceLandmarker, image: np.ndarray) -> list[Face]:
    """Faces in ``image``; where none is found as it is, in its relit views (``relit_views``); where
    the largest is not read upright and confirmed, in the photo turned by quarter turns
    (``detect_turned``: a phone photo whose orientation tag was lost); where it is read upright but
    the face detector's eyes disagree with it (``EYES_DISAGREE_IOD``), also in the photo turned
    upside down, whose reading is taken where it is surer on both counts (a photo upside down that
    the face-mesh model reads as an upright face with its features swapped)."""
    faces = landmarker.detect(image)
    for view in relit_views(image) if not faces else []:
        faces = landmarker.detect(view)
        if faces:
            break
    largest = max(faces, key=lambda f: f.size) if faces else None
    if largest is not None and reads_upright(largest):
        if largest.extras.get("detector_eyes_iod", 0.0) <= EYES_DISAGREE_IOD:
            return faces
        turned = detect_turned(landmarker, image, turns=(2,))
        other = max(turned, key=lambda f: f.size) if turned else None
        surer = (
            other is not None
            and other.score > largest.score
            and other.extras.get("detector_eyes_iod", np.inf) < largest.extras["detector_eyes_iod"]
        )
        if surer and max(largest.size, other.size) < CLOSE_UP_PX / 2:
            # A small face: both readings looked at again close up, where the detectors read surer.
            surer = close_up_score(landmarker, image, other, turned=True) > close_up_score(
                landmarker, image, largest
            )
        return turned if surer else faces
    hint = quarter_turns(largest) if largest is not None else 0
    return detect_turned(landmarker, image, hint) or faces


CLOSE_UP_PX = 256
"""Side, pixels, of the close-up of a face ``close_up_score`` reads (the face about half of it)."""


def close_up_score(landmarker: FaceLandmarker, image: np.ndarray, face: Face, turned: bool = False) -> float:
    """The face detector's score of ``face`` (read in ``image``, or in it turned upside down) read
    again in a close-up of it: a square twice its landmarks' extent, enlarged to CLOSE_UP_PX and
    turned upside down where ``turned``; 0 where it is not read upright and confirmed there."""
    import cv2

    lo, hi = np.nanmin(face.landmarks, axis=0), np.nanmax(face.landmarks, axis=0)
    centre, half = (lo + hi) / 2.0, float((hi - lo).max())
    h, w = image.shape[:2]
    x0, y0 = int(max(centre[0] - half, 0)), int(max(centre[1] - half, 0))
    x1, y1 = int(min(centre[0] + half, w)), int(min(centre[1] + half, h))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    crop = np.asarray(image)[y0:y1, x0:x1]
    scale = CLOSE_UP_PX / max(crop.shape[:2])
    close = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    found = landmarker.detect(np.ascontiguousarray(close[::-1, ::-1] if turned else close))
    largest = max(found, key=lambda f: f.size) if found else None
    return float(largest.score) if largest is not None and reads_upright(largest) else 0.0


def quarter_turns(face: Face) -> int:
    """How many quarter turns ``np.rot90`` (counter-clockwise, 0-3) gives the image to bring
    ``face`` nearest upright: its eye axis along +x, the eyes above the mouth."""
    _, x, _ = face.axes()
    along = []
    for _ in range(4):
        along.append(float(x[0]))
        x = np.array([x[1], -x[0]])  # a direction under one np.rot90
    return int(np.argmax(along))


def turn_matrix(turns: int, width: int, height: int) -> np.ndarray:
    """(2, 3) affine from an image's pixel coordinates (``width`` x ``height``, pixel centres at
    +0.5) to those of ``np.rot90(image, turns)``."""
    w, h = float(width), float(height)
    return {
        0: np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        1: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w]]),
        2: np.array([[-1.0, 0.0, w], [0.0, -1.0, h]]),
        3: np.array([[0.0, -1.0, h], [1.0, 0.0, 0.0]]),
    }[turns % 4]


def reads_upright(face: Face) -> bool:
    """Whether the face detector confirmed ``face`` and the face-mesh model read it within 45° of
    upright. mediapipe's face mesh reads a face turned further much worse (Grace Hopper turned 90°:
    0.076 eye distances off where its upright reading lands, 0.02 up to 45°, and scattered by 0.06
    instead of 0.012) and an upside-down face not at all, or as an upright one with its features
    swapped (1.3 eye distances off); the face detector does not confirm either."""
    return face.score > 0 and quarter_turns(face) == 0


def detect_turned(
    landmarker: FaceLandmarker, image: np.ndarray, hint: int = 0, turns: tuple[int, ...] = (1, 2, 3)
) -> list[Face]:
    """The faces of ``image`` read in the quarter turn of it (of ``turns``: 90°, 180° or 270°) where
    the largest is read upright and confirmed (``reads_upright``) with the best detector score, in ``image``'s
    pixels (``extras["quarter_turns"]`` says which turn); where no turn's is confirmed (a harsh
    light hides the face from the face detector), the reading upright in the turn ``hint`` (the
    quarter turns the face read as it is lies in); [] where neither is found."""
    import cv2

    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    best: list[Face] = []
    best_score = 0.0
    hinted: list[Face] = []
    for turn in turns:
        found = landmarker.detect(np.ascontiguousarray(np.rot90(pixels, turn)))
        largest = max(found, key=lambda f: f.size) if found else None
        if largest is None or quarter_turns(largest) != 0:
            continue  # none, or not read upright in that turn
        back = cv2.invertAffineTransform(turn_matrix(turn, w, h))
        mapped = [f.mapped(back, quarter_turns=turn) for f in found]
        if largest.score > best_score:  # confirmed (score > 0), and better than another turn's
            best, best_score = mapped, largest.score
        if turn == hint % 4:
            hinted = mapped
    return best or hinted


SCATTER_VIEWS = ((8.0, 1.0), (-8.0, 1.0), (0.0, 0.8), (0.0, 1.25))
"""(turn in degrees, scale) of the photo's views ``landmark_scatter`` detects again in."""
SCATTER_IOD_PX = 64.0
"""Eye distance, pixels, of the face crop those views are made from (mediapipe's face mesh reads a
192-pixel crop of the face: more pixels add nothing, and four detections cost about 40 ms)."""
SCATTER_UNREAD_IOD = 1.0
"""The scatter a view counts for when the detector finds no face in it."""


STEADY_NEAR_IOD = 0.3
"""A view's reading joins the steadied landmarks only when its centre lies within this many eye
distances of the face's own reading's (a reading of another face, or a wild one, does not)."""


@dataclass
class ViewReadings:
    """The detector's readings of one face in a crop of the photo and in turned and scaled views of
    that crop (``SCATTER_VIEWS``), all mapped back into the photo's pixels."""

    reference: np.ndarray | None
    """(468, 2) the unturned crop's reading; None when the detector found no face in the crop."""
    views: list[np.ndarray | None]
    """One (468, 2) reading per view of ``SCATTER_VIEWS``; None where it found no face."""
    interocular: float
    """The face's eye distance in the photo, pixels (the unit of the scatter)."""

    def scatter(self) -> float:
        """``landmark_scatter``: the median over the views of the landmarks' mean movement from the
        unturned reading, eye distances; an unread view counts SCATTER_UNREAD_IOD."""
        if self.reference is None:
            return SCATTER_UNREAD_IOD
        moves = [
            SCATTER_UNREAD_IOD
            if view is None
            else float(np.mean(np.linalg.norm(view - self.reference, axis=1))) / self.interocular
            for view in self.views
        ]
        return float(np.median(moves))


def read_views(
    landmarker: FaceLandmarker, image: np.ndarray, face: Face, iod_px: float = SCATTER_IOD_PX
) -> ViewReadings:
    """The face read again in a crop of ``image`` (eye distance ``iod_px``, the face centred, the
    border replicated) and in that crop turned by ±8° and scaled by 0.8 and 1.25 about its centre."""
    import cv2

    iod = max(face.interocular, 1e-6)
    scale = iod_px / iod
    centre = np.nanmean(face.landmarks, axis=0).astype(np.float64)
    side = int(round(4.0 * iod_px))
    shift = side / 2 - scale * centre
    to_crop = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    crop = cv2.warpAffine(
        _to_uint8(image), to_crop, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )

    def read(found: list[Face] | None, matrix: np.ndarray) -> np.ndarray | None:
        """The face the crop (seen through ``matrix``) is centred on, in the photo's pixels; None
        where none is found."""
        if not found:
            return None
        # The view turns and scales about the crop's centre: the face nearest it is the one read.
        central = min(found, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - side / 2)))
        back = cv2.invertAffineTransform(matrix)
        in_crop = central.landmarks.astype(np.float64) @ back[:, :2].T + back[:, 2]
        return (in_crop - shift) / scale

    matrices = [cv2.getRotationMatrix2D((side / 2, side / 2), turn, zoom) for turn, zoom in SCATTER_VIEWS]
    views = [cv2.warpAffine(crop, m, (side, side), borderMode=cv2.BORDER_REPLICATE) for m in matrices]
    found = landmarker.reread_views(crop, views)
    reference = read(found[0], np.eye(3)[:2])
    if reference is None:
        return ViewReadings(None, [None] * len(SCATTER_VIEWS), iod)
    return ViewReadings(reference, [read(f, m) for f, m in zip(found[1:], matrices, strict=True)], iod)


def landmark_scatter(landmarker: FaceLandmarker, image: np.ndarray, face: Face) -> float:
    """How surely the detector reads this face: the median, over the photo turned by ±8° and scaled
    by 0.8 and 1.25 about the face (``SCATTER_VIEWS``), of the landmarks' mean movement (mapped back)
    from the unturned view's, in eye distances (``ViewReadings.scatter``).

    A real photo's eyes, brows and lips pin the landmarks down: the astronaut and Grace Hopper scatter
    by 0.009-0.016. A face the detector half guesses — no painted features, a harsh or low light —
    scatters by 0.02-0.2 (bench/sweep.py's renders): its landmarks say less about where the face is,
    whatever they agree with."""
    return read_views(landmarker, image, face).scatter()


def steady_landmarks(face: Face, readings: ViewReadings) -> Face:
    """``face`` with each landmark the median of the face's own reading and of the views' readings
    (``read_views``) that agree with it (``STEADY_NEAR_IOD``).

    The detector's landmarks jitter by a few hundredths of the eye distance with the face's position,
    size and turn in its input; on the portrait and on the mesh's render from the portrait's view that
    jitter is independent, and the registration took it for the two faces' difference. Steadied over
    six readings, the true misplacement of bench/sweep.py's detector-read cases fell from a median
    0.086 to 0.068 of the eye distance, and moved copies of one mesh got textures nearer each other
    (issue 8's note). The median, not the mean: where one view reads the jaw elsewhere, the mean moved
    the chin of a render turned 28° by a third of the eye distance (bench/proportions.py)."""
    centre = np.nanmean(face.landmarks, axis=0)
    near = STEADY_NEAR_IOD * readings.interocular
    reads = [np.asarray(face.landmarks, np.float64)] + [
        r
        for r in [readings.reference, *readings.views]
        if r is not None and np.linalg.norm(r.mean(axis=0) - centre) <= near
    ]
    steady = np.median(reads, axis=0).astype(np.float32)
    return dataclasses.replace(face, landmarks=steady, extras={**face.extras, "readings": len(reads)})


def frame_cut(face: Face, width: int, height: int) -> tuple[float, list[str]]:
    """The share of the face's outline (its area) outside a ``width`` x ``height`` photo, and the
    features (FRAME_CUT_PARTS) with a landmark outside it."""
    import cv2

    oval = face.landmarks[list(FACE_OVAL)].astype(np.float64)
    lo, hi = oval.min(axis=0), oval.max(axis=0)
    scale = 256.0 / max(float((hi - lo).max()), 1e-6)  # rasterised about 256 pixels across
    size = np.ceil((hi - lo) * scale).astype(int) + 2
    canvas = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(canvas, [np.round((oval - lo) * scale * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    yy, xx = np.nonzero(canvas)
    pixels = np.stack([(xx + 0.5) / scale + lo[0], (yy + 0.5) / scale + lo[1]], axis=1)
    share = float(_outside(pixels, width, height).mean()) if len(xx) else 0.0
    out = _outside(face.landmarks, width, height)
    return share, [name for name, indices in FRAME_CUT_PARTS if out[list(indices)].any()]


def eyes_cut(face: Face, width: int, height: int) -> tuple[bool, bool]:
    """Whether the photo's edge cuts the character's right eye, and the left (a landmark of its
    contour outside the ``width`` x ``height`` photo)."""
    out = _outside(face.landmarks, width, height)
    return bool(out[list(RIGHT_EYE_CONTOUR)].any()), bool(out[list(LEFT_EYE_CONTOUR)].any())


def _outside(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: which pixel positions (N, 2) lie outside a ``width`` x ``height`` photo."""
    x, y = points[:, 0], points[:, 1]
    return (x < 0) | (y < 0) | (x > width) | (y > height)


def detail_interocular(image: np.ndarray, face: Face) -> float:
    """The eye distance (pixels) of the detail ``face`` holds in ``image``: its own, or less by the
    largest of ``ENLARGED_FACTORS`` at which the face's crop, shrunk and enlarged back, is itself
    (``ENLARGED_RESIDUAL``). A face enlarged from a smaller photo passes the pixel test of its eye
    distance (an LFW face, 25 pixels wide, enlarged 16 times: eyes 127 pixels apart) and gives a
    texture as blurred as the small one."""
    import cv2

    from .imaging import box_around

    x0, y0, x1, y1 = box_around(face.landmarks, 0, image.shape)
    crop = np.asarray(image, np.float32)[y0:y1, x0:x1, :3]
    if crop.shape[0] < 16 or crop.shape[1] < 16:
        return face.interocular
    grey = crop @ np.array([0.299, 0.587, 0.114], np.float32)
    spread = float(grey.std())
    if spread <= 0:
        return face.interocular
    found = 1.0
    for factor in ENLARGED_FACTORS:
        small = (max(int(grey.shape[1] / factor), 4), max(int(grey.shape[0] / factor), 4))
        back = cv2.resize(
            cv2.resize(grey, small, interpolation=cv2.INTER_AREA),
            grey.shape[::-1],
            interpolation=cv2.INTER_CUBIC,
        )
        residual = float(np.sqrt(np.mean((grey - back)[2:-2, 2:-2] ** 2)))
        if residual >= ENLARGED_RESIDUAL * spread:
            break
        found = factor
    return face.interocular / found


def analyse_portrait(
    image: np.ndarray, path_for_messages: str = "the portrait", landmarker: FaceLandmarker | None = None
) -> tuple[Face, list[str]]:
    """The face to texture from a portrait, and warnings about it.

    Several faces -> the largest, with a warning. Raises AvatarTexError NO_FACE_IN_PORTRAIT when no
    face is found and FACE_TOO_SMALL when the eyes are less than MIN_IOD_PX apart; between MIN_IOD_PX
    and WARN_IOD_PX the face is used with a warning.
    """
    landmarker = landmarker or default_landmarker()
    faces = detect_under_any_light(landmarker, image)
    name = str(path_for_messages)
    if not faces:
        raise AvatarTexError(
            ErrorCode.NO_FACE_IN_PORTRAIT,
            f"No face was found in {name!r}.",
            "Use a frontal, well-lit photo where the whole face is visible (both eyes, nose and mouth), "
            "not covered by hair, hands or sunglasses.",
        )
    warnings: list[str] = []
    faces = sorted(faces, key=lambda f: f.size, reverse=True)
    face = faces[0]
    if len(faces) > 1:
        warnings.append(
            f"{len(faces)} faces were found in {name!r}; the largest one was used. Crop "
            "the photo to one face to choose another."
        )
    iod = face.interocular
    if iod < MIN_IOD_PX:
        raise AvatarTexError(
            ErrorCode.FACE_TOO_SMALL,
            f"The face in {name!r} is too small: its eyes are {iod:.1f} pixels apart (at least "
            f"{MIN_IOD_PX:.0f} are needed, {WARN_IOD_PX:.0f}+ for a sharp texture).",
            "Use a higher-resolution photo or crop closer to the face.",
        )
    if iod < WARN_IOD_PX:
        warnings.append(
            f"The face in {name!r} is small (eyes {iod:.0f} pixels apart): the texture will be blurry. "
            "A photo where the face is at least 300 pixels wide works best."
        )
    elif (detail := detail_interocular(image, face)) < WARN_IOD_PX:
        face.extras["detail_iod_px"] = round(detail, 1)
        warnings.append(
            f"The face in {name!r} was enlarged from a smaller picture: its eyes are {iod:.0f} pixels "
            f"apart but it holds the detail of eyes {detail:.0f} pixels apart, so the texture will be "
            "blurry. Use the original photo, at least 300 pixels across the face."
        )
    share, parts = frame_cut(face, image.shape[1], image.shape[0])
    face.extras["frame_cut"] = round(share, 3)
    if share >= FRAME_CUT_SHARE or set(parts) - {"the chin", "the forehead"}:
        what = f" ({', '.join(parts)})" if parts else ""
        warnings.append(
            f"the edge of {name!r} cuts off {100 * share:.0f}% of the face{what}: what the photo does "
            "not show was filled from the other side of the face or the skin around, and the face had "
            "fewer points to be placed by; a photo that shows the whole face gives more of it"
        )
    return face, warnings


def eye_opening_px(face: Face, detail: float | None = None) -> float:
    """Each eye's opening (lid to lid at its middle, the two eyes' mean) in the pixels of detail the
    photo holds: ``detail`` is their share of its pixels, by default what ``analyse_portrait`` read
    of an enlarged photo (``detail_iod_px``), else 1. NaN where the lids were not found."""
    if detail is None:
        held = face.extras.get("detail_iod_px")
        detail = 1.0 if held is None else min(float(held) / max(face.interocular, 1e-6), 1.0)
    heights = []
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        upper, lower = contour[4], contour[12]  # the upper and the lower lid's middles
        heights.append(float(np.linalg.norm(face.landmarks[upper, :2] - face.landmarks[lower, :2])))
    return float(np.nanmean(heights)) * detail


def eyes_too_small(face: Face, detail: float | None = None) -> bool:
    """Whether the photo's eyes are open but too small to show (``SMALL_EYE_OPENING_PX``, in the
    pixels of detail ``eye_opening_px`` reads): the texture's eyes are then painted, not the photo's
    blur (``regions.complete_regions``). Eyes the landmarks read shut (``EYE_OPEN_SHARE``) stay the
    photo's: a closed lid's skin."""
    opening = eye_opening_px(face, detail)
    shut = eye_opening_px(face, 1.0) < EYE_OPEN_SHARE * face.interocular
    return bool(np.isfinite(opening) and opening < SMALL_EYE_OPENING_PX and not shut)


def small_eyes_note(face: Face) -> str:
    """The warning for eyes too small to show (``eyes_too_small``), which the regions step paints:
    said there, where it is decided on the landmarks the texture was made from (the first reading's
    and the steadied one's openings differ by half a pixel, and a warning read off the first said
    "painted" over eyes left as blur)."""
    held = eye_opening_px(face)
    return (
        f"the photo's eyes are too small to show (each eye's opening holds {held:.1f} pixels of "
        "detail): the mesh's eyes were painted in (whites, and irises of the colour the photo shows, "
        "or brown), not the photo's blur; a photo where the face is larger keeps the person's own"
    )


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    color: tuple[float, float, float] = (0.0, 1.0, 0.0),
    radius: int | None = None,
    highlight: dict[str, int] | None = None,
    contours: bool = True,
) -> np.ndarray:
    """A copy of ``image`` (float (H, W, 3) 0..1) with landmarks drawn, for the ``--debug`` overlay.

    ``points`` is (N, 2) pixel coordinates (NaN rows skipped). With 468 points and ``contours``,
    the eye, brow, lip and face-oval contours are joined by lines; ``highlight`` (name -> index,
    default PIN_LANDMARKS) marks the named points in red with their names.
    """
    import cv2

    canvas = (np.clip(np.asarray(image, np.float32)[..., :3], 0, 1) * 255).astype(np.uint8)
    canvas = np.ascontiguousarray(canvas)
    points = np.asarray(points, np.float64)
    h, w = canvas.shape[:2]
    radius = radius or max(1, round(max(h, w) / 400))
    rgb = tuple(int(c * 255) for c in color)
    finite = np.isfinite(points).all(axis=1)
    # cv2 draws at integer coordinates; shift=4 keeps 1/16-pixel precision (pixel centres at +0.5).
    to_fixed = lambda p: (int(round((p[0] - 0.5) * 16)), int(round((p[1] - 0.5) * 16)))  # noqa: E731
    if contours and len(points) == NUM_LANDMARKS:
        for loop in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, LIPS_OUTER, LIPS_INNER, FACE_OVAL):
            for a, b in zip(loop, loop[1:] + loop[:1], strict=True):
                if finite[a] and finite[b]:
                    cv2.line(canvas, to_fixed(points[a]), to_fixed(points[b]), rgb, 1, cv2.LINE_AA, 4)
        for brow in (RIGHT_EYEBROW, LEFT_EYEBROW):
            for part in (brow[:5], brow[5:]):
                for a, b in zip(part[:-1], part[1:], strict=True):
                    if finite[a] and finite[b]:
                        cv2.line(canvas, to_fixed(points[a]), to_fixed(points[b]), rgb, 1, cv2.LINE_AA, 4)
    for p in points[finite]:
        cv2.circle(canvas, to_fixed(p), radius * 16, rgb, -1, cv2.LINE_AA, 4)
    if highlight is None and len(points) == NUM_LANDMARKS:
        highlight = PIN_LANDMARKS
    for label, index in (highlight or {}).items():
        if index < len(points) and finite[index]:
            cv2.circle(canvas, to_fixed(points[index]), (radius + 1) * 16, (255, 0, 0), -1, cv2.LINE_AA, 4)
            org = (int(points[index][0]) + 3, int(points[index][1]) - 3)
            cv2.putText(
                canvas,
                label,
                org,
                cv2.FONT_HERSHEY_SIMPLEX,
                max(0.3, max(h, w) / 1600),
                (255, 0, 0),
                1,
                cv2.LINE_AA,
            )
    return canvas.astype(np.float32) / 255.0
