"""The dark-skin benchmark's stand-in photos are what it says: the face's and the neck's skin darkened
by the depth's factors, the eyes, the hair and the background left as they are (bench/dark_skin.py)."""

from __future__ import annotations

import sys

import numpy as np
from testing_paths import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import dark_skin  # noqa: E402


def test_the_darkened_photo_darkens_the_skin_and_keeps_the_eyes_hair_and_background(astronaut) -> None:
    from avatartex.face import FACE_OVAL, LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, default_landmarker
    from avatartex.imaging import to_lab
    from avatartex.projection import polygon_mask

    k, c = dark_skin.DEPTHS["VI"]
    dark = dark_skin.darkened(astronaut, k, c)
    face = max(default_landmarker().detect(astronaut), key=lambda f: f.size)
    shape = astronaut.shape[:2]
    before, after = to_lab(astronaut), to_lab(dark)
    cheeks = polygon_mask(shape, face.landmarks[list(FACE_OVAL)], grow=-0.3) & (before[..., 0] > 60)
    eyes = polygon_mask(shape, face.landmarks[list(RIGHT_EYE_CONTOUR)], grow=-0.2)
    eyes |= polygon_mask(shape, face.landmarks[list(LEFT_EYE_CONTOUR)], grow=-0.2)
    assert cheeks.sum() > 500 and eyes.sum() > 20
    ratio = np.median(after[cheeks, 0] / before[cheeks, 0])
    assert abs(ratio - k) < 0.03, ratio
    chroma = np.median(np.hypot(*after[cheeks, 1:].T) / np.maximum(np.hypot(*before[cheeks, 1:].T), 1e-3))
    assert abs(chroma - c) < 0.1, chroma
    assert np.abs(after[eyes] - before[eyes]).max() < 1.0  # the whites and irises as they were
    # The hair above the forehead and the background beside the head are left.
    top = int(face.landmarks[10][1])
    assert np.abs(dark[: top - 30] - astronaut[: top - 30]).max() < 1e-6
    assert dark_skin.darkened(astronaut, *dark_skin.DEPTHS["photo"]) is astronaut
