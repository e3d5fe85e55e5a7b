"""An honest verdict on a texture's registration: ``good``, ``doubtful`` or ``failed``, with the
evidence and what to try.

The landmark residual after the warp says little: the warp is fitted to those very landmarks and
absorbs their disagreement, so it reads 0.005 where the surface is misplaced by 0.15 eye distances.
The evidence here is what the landmarks cannot hide:

* ``camera_error_iod`` — how far a rigid camera is from the portrait's landmarks (before the warp);
* ``agreement_iod`` — how much the camera moves the face when one region of landmarks is left out
  (a jackknife over six regions: brows, eyes, nose, mouth, jaw sides): regions that disagree mean
  the detector saw the mesh and the photo differently, and the fit is a compromise;
* ``dense_agreement`` — how well the mesh's shading, rendered under the photo's light from the
  registered camera, matches the photo once the dense correction is applied (``alignment.refine``):
  images that agree this closely cannot be misplaced by much, whatever the landmarks say;
* ``fov_deg`` against the prior of portrait lenses, ``view_yaw_deg``/``view_pitch_deg`` of the
  camera in the head's frame, and the two detectors' scores.

``estimated_error_iod`` combines the first two as calibrated on ``bench/sweep.py`` (true
misplacement of the seen surface, in eye distances); the verdict thresholds sit where the sweep
separates misplaced (> 0.05) results from good ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .face import LEFT_EYE_CONTOUR, LEFT_EYEBROW, LIPS_OUTER, RIGHT_EYE_CONTOUR, RIGHT_EYEBROW
from .registration import Registration, refine_camera

GOOD_BELOW = 0.05
"""Estimated misplacement (eye distances) under which a result is called good."""
FAILED_ABOVE = 0.5
"""Estimated misplacement above which it is called failed. Between the two: doubtful. For a photo of
someone whose face differs from the mesh's, the estimate also counts the proportions the warp then
bends into place (the camera alone cannot tell the two apart), so doubtful is common there: look."""
CAMERA_WEIGHT = 3.0
AGREEMENT_WEIGHT = 3.0
"""The estimate is CAMERA_WEIGHT x camera error + AGREEMENT_WEIGHT x region disagreement: fitted on
``bench/sweep.py`` (108 cases, 46 with a face found), where the true misplacement is a median 3.0 x
their sum (interquartile range of truth/estimate 0.72-1.36, Spearman 0.69)."""
DENSE_FIT = (0.14, 0.3)
"""Where the dense correction was applied (weight >= DENSE_MIN_WEIGHT), the true misplacement
followed ``DENSE_FIT[0] - DENSE_FIT[1] x`` its normalised cross-correlation: on ``bench/sweep.py``
(issue 8, 46 cases found) 0.56-0.58 -> 0.013-0.017, 0.32 -> 0.030-0.033, 0.17-0.25 -> 0.06-0.09
eye distances, where the landmark estimate said 0.13-0.27 for all of them. The estimate is the lower
of the two: agreement of the images is evidence, its absence is not (texture or light may hide it)."""
DENSE_MIN_WEIGHT = 0.5
DENSE_FLOOR = 0.01
"""No estimate goes below this: the detector's own scatter on the portrait."""
PLAUSIBLE_FOV_DEG = (8.0, 75.0)
MAX_YAW_DEG = 30.0
"""Beyond this the far half of the face is guessed, not seen; the sweep's misplacement doubles."""
MIN_DETECTOR_SCORE = 0.5


@dataclass
class Quality:
    """The verdict on one result, for report.json (``quality``)."""

    verdict: str
    """``good``, ``doubtful`` or ``failed``."""
    estimated_error_iod: float
    """An estimate of the true misplacement of the seen face, in eye distances."""
    signals: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    """Why it is not ``good``, in an artist's words."""
    advice: list[str] = field(default_factory=list)
    """What to try."""

    def report(self) -> dict[str, Any]:
        """Plain JSON for report.json."""
        return {
            "verdict": self.verdict,
            "estimated_error_iod": round(self.estimated_error_iod, 4),
            "signals": self.signals,
            "reasons": self.reasons,
            "advice": self.advice,
        }


def _regions(points_head: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
    """Six landmark regions as boolean masks over ``indices``: the brows, the eyes, the nose, the
    mouth, and the face's two sides (the jaw and cheeks left and right)."""
    named = {
        "brows": set(RIGHT_EYEBROW) | set(LEFT_EYEBROW),
        "eyes": set(RIGHT_EYE_CONTOUR) | set(LEFT_EYE_CONTOUR),
        "mouth": set(LIPS_OUTER),
    }
    masks = [np.isin(indices, sorted(group)) for group in named.values()]
    taken = np.any(masks, axis=0)
    x, y = points_head[:, 0], points_head[:, 1]
    nose = ~taken & (np.abs(x) < 0.35) & (y < 0.0) & (y > -1.0)
    masks.append(nose)
    rest = ~taken & ~nose
    masks += [rest & (x < 0), rest & (x >= 0)]
    return [m for m in masks if m.sum() >= 4 and (~m).sum() >= 8]


def region_agreement(registration: Registration, frame: Any) -> float:
    """Root-mean-square movement of the face (its landmarks' surface points, in eye distances) when
    the camera is refitted without each landmark region in turn (a jackknife estimate)."""
    X, x, w = registration.points3d, registration.points2d, registration.weights
    if X is None or x is None or len(X) < 20:
        return float("nan")
    camera = registration.camera
    # Every third landmark is plenty for six refits (each a small least-squares problem) and a
    # third of the cost.
    every = np.arange(len(X)) % 3 == 0
    X, x, indices = X[every], x[every], registration.indices[every]
    w = None if w is None else w[every]
    full = camera.project(X)[0]
    moves = []
    for region in _regions(frame.to_head(X), indices):
        keep = ~region
        refit = refine_camera(camera, X[keep], x[keep], None if w is None else w[keep])
        moves.append(np.mean(np.linalg.norm(refit.project(X)[0] - full, axis=1)))
    if not moves:
        return float("nan")
    k = len(moves)
    return float(np.sqrt((k - 1) / k * np.sum(np.square(moves))) / registration.interocular)


def view_angles(registration: Registration, frame: Any) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the camera as seen from the head: 0, 0 is straight into the face;
    yaw towards the character's left is positive, pitch from above positive."""
    direction = frame.directions_to_head(registration.camera.center - frame.origin)
    yaw = np.degrees(np.arctan2(direction[0], direction[2]))
    pitch = np.degrees(np.arctan2(direction[1], np.hypot(direction[0], direction[2])))
    return float(yaw), float(pitch)


def dense_estimate(alignment: dict) -> float:
    """The misplacement the dense correction's agreement implies (``DENSE_FIT``), eye distances;
    inf where it was not applied (weight under DENSE_MIN_WEIGHT) or measured nothing."""
    agreement = alignment.get("ncc_after")
    if (
        agreement is None
        or alignment.get("weight", 1.0 if alignment.get("applied") else 0.0) < DENSE_MIN_WEIGHT
    ):
        return float("inf")
    return max(DENSE_FLOOR, DENSE_FIT[0] - DENSE_FIT[1] * float(agreement))


def assess(
    registration: Registration,
    frame: Any,
    portrait_score: float,
    mesh_score: float,
    landmarks_source: str,
) -> Quality:
    """The verdict on a registration, from the evidence the module docstring lists."""
    camera_error = float(registration.error_iod_camera)
    agreement = region_agreement(registration, frame)
    fov = float(registration.report()["fov_y_deg"])
    yaw, pitch = view_angles(registration, frame)
    landmark_estimate = CAMERA_WEIGHT * camera_error + AGREEMENT_WEIGHT * (
        0.0 if np.isnan(agreement) else agreement
    )
    estimate = min(landmark_estimate, dense_estimate(registration.alignment))
    signals = {
        "camera_error_iod": round(camera_error, 4),
        "agreement_iod": None if np.isnan(agreement) else round(agreement, 4),
        "landmark_estimate_iod": round(float(landmark_estimate), 4),
        "dense_agreement": registration.alignment.get("ncc_after"),
        "dense_weight": registration.alignment.get("weight"),
        "fov_deg": round(fov, 2),
        "fov_source": registration.fov_source,
        "view_yaw_deg": round(yaw, 1),
        "view_pitch_deg": round(pitch, 1),
        "portrait_score": round(float(portrait_score), 3),
        "mesh_score": round(float(mesh_score), 3),
        "landmarks_source": landmarks_source,
        "dense_alignment": bool(registration.alignment.get("applied", False)),
        "ncc": registration.alignment.get(
            "ncc_after" if registration.alignment.get("applied") else "ncc_before"
        ),
    }
    reasons, advice = [], []
    if estimate > GOOD_BELOW:
        reasons.append(
            f"the photo may sit off the mesh by about {estimate:.0%} of the eye distance: "
            "features may land beside their place (eyes on brows, lips doubled)"
        )
        advice.append("add landmark pins on the mesh (eye corners, nose tip, mouth corners)")
    if not PLAUSIBLE_FOV_DEG[0] <= fov <= PLAUSIBLE_FOV_DEG[1]:
        reasons.append(f"the fitted camera's field of view ({fov:.0f} degrees) is not a portrait lens's")
        advice.append("use a photo with its EXIF data, or one taken from further away")
    if abs(yaw) > MAX_YAW_DEG or abs(pitch) > MAX_YAW_DEG:
        reasons.append(f"the face is seen {abs(yaw):.0f} degrees from the side: its far half is guessed")
        advice.append("use a more frontal photo")
    if (
        min(portrait_score, mesh_score if landmarks_source.startswith("detected") else 1.0)
        < MIN_DETECTOR_SCORE
    ):
        reasons.append("the face detector was unsure of the face (low score)")
        advice.append("check the facing direction, or add pins")
    if estimate > FAILED_ABOVE:
        verdict = "failed"
    elif reasons:
        verdict = "doubtful"
    else:
        verdict = "good"
    return Quality(verdict, float(estimate), signals, reasons, list(dict.fromkeys(advice)))
