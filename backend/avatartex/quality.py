"""An honest verdict on a texture's registration: ``good``, ``doubtful`` or ``failed``, with the
evidence, the reasons and what to try.

The landmark residual after the warp says little: the warp is fitted to those very landmarks and
absorbs their disagreement, so it reads 0.005 where the surface is misplaced by 0.15 eye distances.
The evidence here is what the landmarks cannot hide:

* ``dense_agreement`` — how well the mesh's shading, rendered under the photo's light from the
  registered camera, matches the photo once the dense correction is applied (``alignment.refine``),
  ``dense_weight``, how much of that correction was applied, and ``dense_offset_iod``, how far it
  had to move the face. Where it was applied, the agreement is the best evidence there is: on
  ``bench/sweep.py`` it orders the true misplacement with Spearman -0.96, and the correction's size
  says how much of the error it left (its log correlates 0.64 with what the agreement leaves
  unexplained of the log misplacement);
* ``outline_misfit_iod`` — how far the mesh's outline, seen from the camera refitted to it
  (``alignment.outline_refit``), lies from the photo's edges (median, eye distances), and
  ``outline_weight``, how much of that camera was taken (how much of the outline the photo shows on
  how many sides). Where it was taken it vouches as the shading does: on ``bench/sweep.py`` the
  misfit orders the true misplacement with Spearman 0.76, and of the results the shading did not
  confirm, those within 0.007 were misplaced by 0.010-0.058. A real photo's hair, collar or
  background hide the outline (weight 0), and the verdict is then what the other evidence says.
  ``outline_led_weight`` is the part of it an outline-led pass placed (the landmarks disagreeing
  with the outline, each counting a hundredth of an outline point): the camera then fits the head,
  not the features, which the warp bends into place. On ``bench/sweep.py`` the estimate read such
  results at a half to a seventh of their misplacement (0.016 for 0.081, 0.058 for 0.38), so the
  estimate is at least the warp's bend as far as the outline led (``led_bend``), and such a result
  is called good only within LED_GOOD_BELOW, or where the shading also confirms it
  (``confirmed_share``) within GOOD_BELOW;
* ``camera_error_iod`` — how far a rigid camera is from the portrait's landmarks (before the warp),
  and ``agreement_iod`` — how much the camera moves the face when one region of landmarks is left
  out (a jackknife over six regions: brows, eyes, nose, mouth, the two sides of the face): regions
  that disagree mean the detector saw the mesh and the photo differently and the fit is a
  compromise. ``heldout_iod`` is, per region, how far the camera fitted without it misses it: the
  region to pin when one stands out;
* ``warp_iod`` and ``warp_asymmetry_iod`` — how far the warp and the correction move the landmarks
  from the camera's projection, and how differently on the face's two sides; reported for the
  artist and the benches, not in the estimate: on the sweep, added to the landmark evidence they
  did not improve it held out (Spearman 0.60 with the warp, 0.62 without), and where the dense
  correction was applied they do not follow the truth (Spearman -0.09 and 0.09);
* ``landmark_scatter_iod`` — how much the detector's landmarks move when the photo is turned by
  ±8° or scaled by 0.8 and 1.25 (``face.landmark_scatter``): how surely the photo's face was read.
  The landmarks' disagreement with the mesh cannot tell a misread face from a face of other
  proportions than the mesh's — a real person's photo on a sculpt — which the warp takes up; on
  ``bench/proportions.py``'s real photos the disagreement put the estimate at a median 5.7 times
  the features' measured error. A face read surely (real photos: 0.0115-0.0143; the sweep's renders,
  whose faces have no painted features: 0.015-0.09, or unread in a turned view) caps the landmarks'
  estimate at ``SCATTER_GAIN`` times its scatter;
* ``portrait_pass`` (how the photo's face was found: read by the detector, or placed from the head's
  outline, whose landmarks are the mesh's own and vouch for nothing) and ``eye_distance_px``;
* ``mesh_face_held`` — whether the face found on the mesh held up (``landmarks.MeshLandmarks.held``:
  a view straight onto it read it again, and its nose stands out): where it did not, the photo may
  be laid on a cheek or the jaw however well it fits, and the verdict is ``failed``;
* ``fov_deg`` against the lenses of portraits, ``view_yaw_deg``/``view_pitch_deg`` of the camera in
  the head's frame, and the two detectors' scores: caveats, shown as reasons on a result that is
  not good, as notes on one that is.

``estimated_error_iod`` (report.json's ``registration_error``) is the dense evidence's estimate
where the correction was applied, the landmarks' where it was not (or, where they were not read
from the photo, the typical misplacement of such results), blended by ``dense_weight`` in log
space (:class:`Calibration`; fitted and judged out of sample by ``bench/verdict.py``), the
landmarks' part itself blended with the outline's estimate by ``outline_weight``. The verdict
reads it at the bar it estimates (:data:`GOOD_BELOW`), and never calls ``good`` what only the
landmarks vouch for (:data:`CONFIRMED_WEIGHT`, of the shading's or the outline's share).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .face import LEFT_EYE_CONTOUR, LEFT_EYEBROW, LIPS_OUTER, RIGHT_EYE_CONTOUR, RIGHT_EYEBROW
from .registration import Registration, refine_camera

GOOD_BELOW = 0.05
"""Estimated misplacement (eye distances) up to which a result is called good: the bar of
``bench/sweep.py`` (``MISPLACED``) itself, not a threshold fitted to its few good cases: where
anything vouches, the estimate is calibrated to the true misplacement (held out by head family,
median estimate/truth 0.89-0.93 on three sweeps), so reading it at the bar it estimates errs about
equally often either side of it."""
FAILED_ABOVE = 0.2
"""Estimated misplacement (eye distances) above which a result is called failed: a fifth of an eye
distance lays the photo's lids on the mesh's brows or doubles its lips (doubtful says look, failed
says redo). On ``bench/sweep.py`` (session 59's rows) every result estimated above 0.15 was truly
misplaced by 0.13 or more (median 0.52), while those estimated 0.05-0.15 were misplaced by 0.06 (median);
on real photos judged by eye (a QA pass of session 62: the astronaut, Grace Hopper and LFW faces on
the scanned and the demo head) results that looked right were estimated 0.059-0.083, slightly off
0.074-0.116, wrong 0.16-0.36 (a half-cropped face: glasses frames on the brows, lips doubled), all
of which were `doubtful` under the bar of 0.5 used before. Not lower than 0.2: the estimate of a
photo of another person than the mesh's also counts the proportions the warp rightly bends."""
CONFIRMED_WEIGHT = 0.5
"""Share of the dense correction applied (``alignment.trust``) from which the shading's agreement
vouches for the placement. Under it only the landmarks do, and they cannot tell a misplaced fit
from a good one: on ``bench/sweep.py`` 75 of the 78 results under it were misplaced (all 26 whose
landmarks the detector read, by 0.06 or more; the three within the bar, 0.040-0.049, were placed
from the outline), and on the 24 detected ones above it, which the shading tells apart, the
landmark estimate ranked them backwards (0.05 for a case misplaced by 0.14, 0.24 for one at
0.012): a registration only the landmarks vouch for is never called good."""
LED_GOOD_BELOW = 0.04
"""Estimated misplacement (eye distances) up to which an outline-led camera the shading does not
confirm is called good: a fifth inside GOOD_BELOW, for the outline vouches for the head, not for
where its features fall. Since the warp leaves the landmarks' placement out under such a camera
(``registration.placement_part``) the estimate follows the truth there as elsewhere (73 led cases
of bench/sweep.py: estimate / truth 1.08, Spearman 0.72); refusing them all (the rule before) flagged
47 of 112 good results and 35 of 48 misplaced ones; at this bar (``bench/verdict.py`` on the same
rows) 20 of 112 and 33 of 48 (0.058 and 0.051 pass). Estimated offline with a simpler rule (led
results judged by the bar and the outline's vouching alone): at GOOD_BELOW 16 of 112 and 31 of 48
(0.087 passes), at 0.035 and 0.03 32 and 38 of 112 for 36 of 48."""
INDEPENDENT_MIN_IOD = 0.005
"""Camera error (eye distances) under which the portrait's landmarks cannot have been read from the
photo independently of the mesh, whatever the caller says: on ``bench/sweep.py`` a detector reading
the photo and one reading the render never agreed closer than 0.011 (46 cases), while 52 of the 62
faces placed from the head's outline (``outline.py``: the mesh's own landmarks projected) fitted
within 0.0035. Landmarks that only copy the mesh's vouch for nothing."""
MIN_EYE_DISTANCE_PX = 8.0
"""Portrait eye distance (pixels) under which no feature can be placed (a pupil is a pixel or two):
the sweep's faces were 35 px or more; two placements from the outline that collapsed were 0 and 1.1
px (truly misplaced by 1.6 and 3.8 eye distances). Such a result is ``failed``."""
ESTIMATE_FLOOR = 0.01
"""No estimate goes below this: the detector's own scatter on the portrait."""
PLAUSIBLE_FOV_DEG = (8.0, 75.0)
"""Vertical fields of view a portrait is taken with (a long telephoto to a phone's wide lens)."""
MAX_YAW_DEG = 30.0
"""Beyond this the far half of the face is guessed, not seen."""
BEHIND_DEG = 100.0
"""A camera fitted more than this far round from the face (``view_yaw_deg``/``view_pitch_deg``) looks
at the back of the head, where no photo of a face was taken from: the photo is laid on the back of
the head (the sweep's views read 38 degrees at most; a low-poly head pinned with its left and right
pins swapped read -172). Such a result is ``failed``."""
BEHIND_ESTIMATE = 1.0
"""Eye distances: the least misplacement a camera behind the face (BEHIND_DEG) is estimated at. The
landmarks' estimate there is the photo's (its landmarks' scatter caps it: every chibi head QA laid
the astronaut's face on the back of read 0.069, as her photo on any mesh does), not the fit's."""
MIN_DETECTOR_SCORE = 0.5
"""Under this face-detector score (either detector) the face it found is a caveat."""
REGION_STANDS_OUT = 2.0
"""A landmark region whose held-out miss is this many times the median region's is named in the
reasons (the region to pin)."""
SCATTER_GAIN = 6.0
"""The misplacement per unit of landmark scatter, where the scatter caps the landmarks' estimate:
the median feature error over scatter of bench/proportions.py's 21 real-photo results (the
astronaut, mirrored and not, and Grace Hopper on the demo head and its six stylised variants;
0.070 / 0.0117). On the sweep's renders, whose scatter is 0.015 and up, the cap never goes below
0.09: none of them is called good on it."""
SMALL_MISPLACEMENT = 0.15
"""Estimates below this (eye distances) are worded as a small offset (an eyelid's or a lip's width),
above it as features beside their place."""
OFFSET_TYPICAL_IOD = 0.27
"""The dense correction's typical largest displacement, eye distances (the median of the 24
corrections applied on ``bench/sweep.py``, 0.11-0.59): the offset term of ``Calibration.dense`` is
zero there, and a correction whose size is not known counts as this."""
OFFSET_RESOLUTION_IOD = 1.0 / 64.0
"""The smallest correction the flow resolves: one pixel where it runs (``alignment.WORK_IOD_PX``)."""


@dataclass(frozen=True)
class Calibration:
    """The coefficients of ``estimate_error``. Where the dense correction was applied:
    misplacement = exp(dense_log_intercept + dense_slope x agreement + dense_offset_power x
    log(offset / OFFSET_TYPICAL_IOD)) — the closer the shading agrees, the less is left; the
    further the correction had to move the face, the more of that move is left undone (it removes
    most of an error, not all). Where it was not: landmark_gain x (camera error + region
    disagreement) when the portrait's landmarks were read from the photo, ``unvouched`` (what such
    results are misplaced by, typically) when they were not. Fitted by ``bench/verdict.py`` (least
    squares in log space on the sweep's true misplacement); five numbers, each monotone in its
    evidence or a constant."""

    dense_log_intercept: float
    dense_slope: float
    dense_offset_power: float
    landmark_gain: float
    unvouched: float
    outline_gain: float = 1.0
    """Misplacement per unit of the outline's misfit (``outline_misfit_iod``: the median distance,
    eye distances, between the mesh's outline from the refitted camera and the photo's edges)."""
    outline_keeps_landmarks: float = 0.0
    """The share (in log space) the landmarks' evidence keeps where the outline's camera was taken
    whole and the landmarks were read from the photo: the outline places the head, not where its
    features fall inside it, which the landmarks still see (``estimate_error``)."""

    def dense(self, agreement: float, offset_iod: float = OFFSET_TYPICAL_IOD) -> float:
        """The misplacement the shading's agreement after the dense correction, and the size of
        that correction (its largest displacement, eye distances), imply."""
        offset = max(offset_iod, OFFSET_RESOLUTION_IOD) / OFFSET_TYPICAL_IOD
        return float(
            np.exp(
                self.dense_log_intercept
                + self.dense_slope * agreement
                + self.dense_offset_power * np.log(offset)
            )
        )

    def outline(self, misfit_iod: float) -> float:
        """The misplacement the outline's misfit implies."""
        return self.outline_gain * misfit_iod

    def landmarks(self, camera_error: float, agreement: float) -> float:
        """The misplacement the landmarks' disagreement implies."""
        return self.landmark_gain * (camera_error + agreement)


CALIBRATION = Calibration(
    dense_log_intercept=-1.874,
    dense_slope=-4.209,
    dense_offset_power=0.438,
    landmark_gain=3.399,
    unvouched=0.159,
    outline_gain=5.257,
    outline_keeps_landmarks=0.19,
)
"""Fitted by ``bench/verdict.py`` on a ``bench/sweep.py`` run of 108 cases, every face found (46 by
the detector, 62 placed from the head's outline; 29 with the dense correction applied; 15 within the
bar). Refitted without each head family and judged on it, where anything vouched (the shading or
read landmarks): 42 of 44 misplaced results flagged, 1 of 12 good ones, estimate/truth 0.89,
Spearman 0.75; the dense part's offset power came out 0.29-0.69 in every refit (without that term
2-3 of 10 good results sat just over the bar). On a later run of the same design after the outline
placement improved (105 found, judged with these numbers unchanged): 74 of 76 misplaced flagged,
3 of the 14 good ones the shading confirmed (all within 0.02 of the bar), and 15 good outline
placements nothing vouched for, flagged by rule; ``unvouched`` refitted there came out 0.092: it
follows the outline placement's quality and is the number to refit when that changes.
``outline_gain`` was fitted on a 108-case run with the outline refit (104 found; 29 results the
outline vouched for and the shading did not; 5.35-5.44 held out by head), the rest kept: misplaced
flagged 51 of 55, good flagged 14 of 49 (the shipped numbers without it: 55 of 55 and 24 of 49);
held out by head family 50 of 55 and 13 of 49; the misplaced results it calls good were misplaced
by 0.051-0.058. ``outline_keeps_landmarks`` and ``outline_gain`` refitted together (session 37) on
a 210-case run (204 found; 102 the outline vouched for and the shading did not, 44 of them with the
photo's landmarks read), the rest kept: all 15 misplaced results called good had been vouched for by
the outline alone, with landmark estimates of 0.13-0.52 for some. Misplaced flagged 55 -> 60 of 70,
good flagged 22 -> 28 of 134, clearly misplaced (> 0.07) flagged 33 -> 36 of 37; the estimate ranks
the truth at Spearman 0.82 (0.79). Held out (the outline part fitted without each head, family,
light or skin) the share came out 0.17-0.22 and the ranking rose by 0.04-0.05 in each split
against the outline's gain refitted alone (0.818/0.785/0.814/0.819 for 0.781/0.747/0.777/0.766)."""


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
    notes: list[str] = field(default_factory=list)
    """Caveats that did not change the verdict (the shading confirmed the placement)."""

    def report(self) -> dict[str, Any]:
        """Plain JSON for report.json."""
        return {
            "verdict": self.verdict,
            "estimated_error_iod": round(self.estimated_error_iod, 4),
            "signals": self.signals,
            "reasons": self.reasons,
            "advice": self.advice,
            "notes": self.notes,
        }


def _regions(points_head: np.ndarray, indices: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Six landmark regions, named, as boolean masks over ``indices``: the brows, the eyes, the
    nose, the mouth, and the face's two sides (the jaw and cheeks, the character's left and right)."""
    named = {
        "brows": set(RIGHT_EYEBROW) | set(LEFT_EYEBROW),
        "eyes": set(RIGHT_EYE_CONTOUR) | set(LEFT_EYE_CONTOUR),
        "mouth": set(LIPS_OUTER),
    }
    masks = [(name, np.isin(indices, sorted(group))) for name, group in named.items()]
    taken = np.any([m for _, m in masks], axis=0)
    x, y = points_head[:, 0], points_head[:, 1]
    nose = ~taken & (np.abs(x) < 0.35) & (y < 0.0) & (y > -1.0)
    rest = ~taken & ~nose
    masks += [("nose", nose), ("right side", rest & (x < 0)), ("left side", rest & (x >= 0))]
    return [(name, m) for name, m in masks if m.sum() >= 4 and (~m).sum() >= 8]


def _jackknife(registration: Registration, frame: Any) -> list[tuple[str, float, float]]:
    """For each landmark region left out of the camera fit in turn: its name, how far the refitted
    camera moves the face (mean over the landmarks, pixels), and how far the refitted camera misses
    the left-out region's own landmarks (mean, pixels: a residual the fit never saw)."""
    X, x, w = registration.points3d, registration.points2d, registration.weights
    if X is None or x is None or len(X) < 20:
        return []
    camera = registration.camera
    # Every third landmark is plenty for six refits (each a small least-squares problem) and a
    # third of the cost.
    every = np.arange(len(X)) % 3 == 0
    X, x, indices = X[every], x[every], registration.indices[every]
    w = None if w is None else w[every]
    full = camera.project(X)[0]
    out = []
    for name, region in _regions(frame.to_head(X), indices):
        keep = ~region
        refit = refine_camera(camera, X[keep], x[keep], None if w is None else w[keep])
        moved = refit.project(X)[0]
        move = float(np.mean(np.linalg.norm(moved - full, axis=1)))
        missed = float(np.mean(np.linalg.norm(moved[region] - x[region], axis=1)))
        out.append((name, move, missed))
    return out


def region_agreement(registration: Registration, frame: Any) -> float:
    """Root-mean-square movement of the face (its landmarks' surface points, in eye distances) when
    the camera is refitted without each landmark region in turn (a jackknife estimate)."""
    return _agreement(_jackknife(registration, frame), registration.interocular)


def _agreement(jackknife: list[tuple[str, float, float]], interocular: float) -> float:
    """The jackknife's spread of the face's position (``region_agreement``) from its refits."""
    if not jackknife:
        return float("nan")
    moves = np.array([move for _, move, _ in jackknife])
    k = len(moves)
    return float(np.sqrt((k - 1) / k * np.sum(np.square(moves))) / interocular)


def warp_bend(registration: Registration, frame: Any) -> tuple[float, float]:
    """How far the non-rigid part of the registration (the warp and the dense correction) moves the
    landmarks from where the camera alone puts them: the mean length, and the length of the
    difference between the face's two sides' mean displacements (a warp that drags one cheek and
    not the other is bending a wrong camera, not a proportion), both in eye distances."""
    X = registration.points3d
    if X is None or len(X) < 8:
        return float("nan"), float("nan")
    rigid = registration.camera.project(X)[0]
    bend = registration.project(X)[0] - rigid
    iod = registration.interocular
    side = frame.to_head(X)[:, 0]
    left, right = side > 0.25, side < -0.25
    asymmetry = (
        float(np.linalg.norm(bend[left].mean(axis=0) - bend[right].mean(axis=0)) / iod)
        if left.sum() >= 4 and right.sum() >= 4
        else float("nan")
    )
    return float(np.mean(np.linalg.norm(bend, axis=1)) / iod), asymmetry


def view_angles(registration: Registration, frame: Any) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the camera as seen from the head: 0, 0 is straight into the face;
    yaw towards the character's left is positive, pitch from above positive."""
    direction = frame.directions_to_head(registration.camera.center - frame.origin)
    yaw = np.degrees(np.arctan2(direction[0], direction[2]))
    pitch = np.degrees(np.arctan2(direction[1], np.hypot(direction[0], direction[2])))
    return float(yaw), float(pitch)


def _number(signals: Mapping[str, Any], key: str, default: float = float("nan")) -> float:
    """A signal as a float: ``default`` where it is missing or None."""
    value = signals.get(key)
    return default if value is None else float(value)


def confirmed_share(signals: Mapping[str, Any]) -> float:
    """How much of the dense correction was applied (0..1): how far the shading's agreement speaks
    for the result. 0 where the correction did not run or measured nothing."""
    if signals.get("dense_agreement") is None:
        return 0.0
    return float(np.clip(_number(signals, "dense_weight", 0.0), 0.0, 1.0))


def outline_share(signals: Mapping[str, Any]) -> float:
    """How far the head's outline speaks for the result (0..1): the share of the outline's camera
    taken (``alignment.outline_refit``'s weight, which the photo's agreement with the outline sets);
    0 where the outline was not measured."""
    if signals.get("outline_misfit_iod") is None:
        return 0.0
    return float(np.clip(_number(signals, "outline_weight", 0.0), 0.0, 1.0))


def vouched(signals: Mapping[str, Any]) -> bool:
    """Whether the shading (``confirmed_share``) or the head's outline (``outline_share``) vouches
    for the placement: the landmarks alone cannot."""
    return max(confirmed_share(signals), outline_share(signals)) >= CONFIRMED_WEIGHT


def landmark_evidence(signals: Mapping[str, Any], calibration: Calibration = CALIBRATION) -> float:
    """The misplacement the landmarks alone imply: their disagreement (``Calibration.landmarks``),
    at most SCATTER_GAIN times how much they scatter (``landmark_scatter_iod``) where that is known:
    a surely read face whose landmarks disagree with the mesh's is a face of other proportions."""
    return min(_disagreement(signals, calibration), _scatter_cap(signals))


def _disagreement(signals: Mapping[str, Any], calibration: Calibration) -> float:
    """The misplacement the landmarks' disagreement with the mesh's implies (``Calibration.landmarks``)."""
    return calibration.landmarks(
        _number(signals, "camera_error_iod", 0.0), _number(signals, "agreement_iod", 0.0)
    )


def _scatter_cap(signals: Mapping[str, Any]) -> float:
    """SCATTER_GAIN times the landmarks' scatter; infinite where the scatter was not measured."""
    scatter = _number(signals, "landmark_scatter_iod")
    return SCATTER_GAIN * scatter if np.isfinite(scatter) else float("inf")


def surely_read_other_face(signals: Mapping[str, Any], calibration: Calibration = CALIBRATION) -> bool:
    """The photo's landmarks were read surely and their disagreement with the mesh's is larger than
    that certainty allows for a misplacement (the scatter capped the estimate): a face of other
    proportions than the mesh's, a real person's on a sculpt, not a misread one. Not where the
    detector itself was unsure of the photo's face (MIN_DETECTOR_SCORE): a 25-pixel face enlarged
    scatters little and was said to be "read surely" beside "the face detector was unsure"."""
    return _number(signals, "portrait_score", 1.0) >= MIN_DETECTOR_SCORE and _scatter_cap(
        signals
    ) < _disagreement(signals, calibration)


def landmarks_read(signals: Mapping[str, Any]) -> bool:
    """Whether the portrait's landmarks are evidence: read from the photo by the face detector (not
    placed from the head's outline, ``portrait_pass``), on a face large enough to place
    (MIN_EYE_DISTANCE_PX), and not so close to the mesh's own projection that they can only be a
    copy of it (INDEPENDENT_MIN_IOD)."""
    return (
        signals.get("portrait_pass") != "outline"
        and _number(signals, "eye_distance_px", MIN_EYE_DISTANCE_PX) >= MIN_EYE_DISTANCE_PX
        and _number(signals, "camera_error_iod", 0.0) >= INDEPENDENT_MIN_IOD
    )


def estimate_error(signals: Mapping[str, Any], calibration: Calibration = CALIBRATION) -> float:
    """The estimated true misplacement of the seen face, in eye distances, from ``assess``'s
    signals: the dense agreement's estimate and the landmarks' blended in log space by the share of
    the correction applied (a partly applied correction is partly vouched for); landmarks that were
    not read from the photo (``landmarks_read``) count as ``Calibration.unvouched``. Each part grows
    with its own evidence of misplacement."""
    share = confirmed_share(signals)
    read = landmarks_read(signals)
    landmarks = max(
        landmark_evidence(signals, calibration) if read else calibration.unvouched, ESTIMATE_FLOOR
    )
    taken = outline_share(signals) * (1.0 - (calibration.outline_keeps_landmarks if read else 0.0))
    if taken > 0.0:  # the outline's misfit, as far as its camera was taken
        outline = max(calibration.outline(_number(signals, "outline_misfit_iod")), ESTIMATE_FLOOR)
        landmarks = float(np.exp(taken * np.log(outline) + (1.0 - taken) * np.log(landmarks)))
    if share > 0.0:
        offset = _number(signals, "dense_offset_iod", OFFSET_TYPICAL_IOD)
        dense = max(calibration.dense(_number(signals, "dense_agreement"), offset), ESTIMATE_FLOOR)
        landmarks = float(np.exp(share * np.log(dense) + (1.0 - share) * np.log(landmarks)))
    return max(landmarks, led_bend(signals), BEHIND_ESTIMATE if behind_by(signals) else 0.0)


def behind_by(signals: Mapping[str, Any]) -> float | None:
    """How far round from the mesh's face the camera was fitted (degrees) where that is behind it
    (BEHIND_DEG), else None."""
    yaw, pitch = _number(signals, "view_yaw_deg", 0.0), _number(signals, "view_pitch_deg", 0.0)
    round_from = max(abs(yaw), abs(pitch))
    return round_from if round_from > BEHIND_DEG else None


def led_bend(signals: Mapping[str, Any]) -> float:
    """The least misplacement an outline-led camera leaves (eye distances): the warp's mean bend
    (``warp_iod``) as far as the outline led (``outline_led_weight``). Under such a camera the warp
    carries the photo's landmarks' disagreement with the mesh's shape onto the texture (their
    placement as a whole is left out since session 20: ``registration.placement_part``), and the
    outline, which fits the head's silhouette, says nothing of where its features fall: on
    bench/sweep.py's 57 fully led cases (session 18, the placement still in the warp) the outline's
    misfit ranked the true misplacement at 0.20 (Spearman; the estimate read r062's 0.38 as 0.058),
    the bend at 0.61 (0.48 there); on the 73 led cases of session 20's sweep the bend ranked it at
    0.44, the whole estimate at 0.72."""
    led = _number(signals, "outline_led_weight", 0.0)
    bend = _number(signals, "warp_iod", 0.0)
    return led * bend if led > 0.0 and np.isfinite(bend) else 0.0


def _caveats(signals: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(reason, advice) for what makes a registration riskier whatever its estimate: landmarks not
    read from the photo, a lens no portrait uses, a side view, a detector that was unsure."""
    out = []
    if not landmarks_read(signals):
        out.append(
            (
                "the face detector could not read the photo's features: the face was placed from the "
                "head's outline, so only the shading can say where its eyes and mouth fall",
                "use a photo where the face reads clearly (even light, no paint or pattern across "
                "the eyes), or add pins",
            )
        )
    fov = _number(signals, "fov_deg")
    if np.isfinite(fov) and not PLAUSIBLE_FOV_DEG[0] <= fov <= PLAUSIBLE_FOV_DEG[1]:
        out.append(
            (
                f"the fitted camera's field of view ({fov:.0f} degrees) is not a portrait lens's",
                "use a photo with its EXIF data, or one taken from further away",
            )
        )
    yaw, pitch = _number(signals, "view_yaw_deg", 0.0), _number(signals, "view_pitch_deg", 0.0)
    if MAX_YAW_DEG < max(abs(yaw), abs(pitch)) <= BEHIND_DEG:  # behind: ``judge``'s own reason
        side = "the side" if abs(yaw) >= abs(pitch) else ("above" if pitch > 0 else "below")
        angle = max(abs(yaw), abs(pitch))
        out.append(
            (
                f"the face is seen {angle:.0f} degrees from {side}: its far half is guessed",
                "use a more frontal photo",
            )
        )
    if _number(signals, "portrait_score", 1.0) < MIN_DETECTOR_SCORE:
        out.append(
            (
                f"the face detector was unsure of the photo's face (score "
                f"{_number(signals, 'portrait_score'):.2f})",
                "use a sharper, larger or more evenly lit photo of the face, or add pins",
            )
        )
    detected = str(signals.get("landmarks_source", "detected")).startswith("detected")
    if detected and _number(signals, "mesh_score", 1.0) < MIN_DETECTOR_SCORE:
        out.append(
            (
                f"the face detector was unsure of the face on the mesh (score "
                f"{_number(signals, 'mesh_score'):.2f})",
                "check the facing direction, or add pins",
            )
        )
    return out


def _region_that_stands_out(signals: Mapping[str, Any]) -> str | None:
    """The landmark region the rest of the face places worst, when one stands out
    (``REGION_STANDS_OUT``): the place to pin."""
    missed = signals.get("heldout_iod") or {}
    if len(missed) < 3:
        return None
    name, worst = max(missed.items(), key=lambda item: item[1])
    others = np.median([value for key, value in missed.items() if key != name])
    return name if worst > REGION_STANDS_OUT * max(others, 1e-6) else None


def judge(signals: Mapping[str, Any], estimate: float) -> tuple[str, list[str], list[str], list[str]]:
    """The verdict, its reasons, the advice and the notes, from the signals and the estimate.

    ``good`` needs both an estimate within GOOD_BELOW and the shading's confirmation
    (CONFIRMED_WEIGHT): the landmarks alone cannot tell. ``failed`` is an estimate beyond
    FAILED_ABOVE; everything else is ``doubtful``. The caveats (lens, view, detector) do not decide
    the verdict (on the sweep they flagged good results and added nothing on misplaced ones the
    estimate had not flagged; of the six faces placed from the outline that the shading confirmed,
    the three estimated within the bar were within it, 0.032-0.040, and the three beyond it beyond,
    0.053-0.069): they are reasons, with their advice, on a result that is not good, and notes on one
    that is. A face too small to place (MIN_EYE_DISTANCE_PX) has ``failed``, and so has a placement
    nothing vouches for: the photo's face not read by the detector (``landmarks_read``: placed from
    the head's outline) and neither the shading nor the outline confirming it (``vouched``). On
    ``bench/sweep.py`` (2026-11-28, 204 faces found) all 6 such results were misplaced by 0.13-2.19
    eye distances (4 by half an eye distance or more), while their estimate, the typical
    misplacement of placements nothing vouches for (``Calibration.unvouched``), cannot say which:
    ``doubtful`` ("look") undersold them; every result the outline or the shading vouched for, or
    whose landmarks were read, keeps the estimate's verdict."""
    reasons, advice = [], []
    round_from = behind_by(signals)
    behind = round_from is not None
    if estimate > GOOD_BELOW and not behind:  # behind, no misplacement of features is the matter
        what = (
            "features may land a little beside their place (an eyelid's or a lip's width)"
            if estimate < SMALL_MISPLACEMENT
            else "features may land beside their place (eyes on brows, lips doubled)"
        )
        reasons.append(f"the photo may sit off the mesh by about {estimate:.0%} of the eye distance: {what}")
        if surely_read_other_face(signals):
            reasons.append(
                "the photo's face was read surely but its proportions differ from the mesh's; the warp "
                "bent them into place, so look at the features rather than trust the number"
            )
        region = _region_that_stands_out(signals)
        pins = "eye corners, nose tip, mouth corners"
        if region == "mouth" and signals.get("photo_mouth_open"):
            reasons.append(
                "the photo's mouth does not sit where the rest of the face puts it: it is open (a smile or "
                "speech), which moves its corners, and the warp laid its lips on the mesh's"
            )
        elif region is not None:
            reasons.append(f"the photo's {region} does not sit where the rest of the face puts it")
            if region not in ("eyes", "nose", "mouth"):
                pins += f", and the {region}"
        if "pins" in str(signals.get("landmarks_source", "")):
            advice.append(
                f"check that the landmark pins sit on the mesh's features ({pins}), and set any missing"
            )
        else:
            advice.append(f"add landmark pins on the mesh ({pins})")
    too_small = _number(signals, "eye_distance_px", MIN_EYE_DISTANCE_PX) < MIN_EYE_DISTANCE_PX
    if too_small:
        reasons.append(
            f"the face found in the photo is too small to place (its eyes "
            f"{_number(signals, 'eye_distance_px'):.0f} pixels apart)"
        )
        advice.append("use a photo where the face is larger and clearly visible")
    led_confirmed = estimate <= LED_GOOD_BELOW or (
        confirmed_share(signals) >= CONFIRMED_WEIGHT and estimate <= GOOD_BELOW
    )
    if _number(signals, "outline_led_weight", 0.0) > 0.0 and not led_confirmed:
        reasons.append(
            "the photo's eyes, nose and mouth do not fit the mesh's where the head's outline puts the "
            "camera: the camera follows the outline and the warp bends the features onto the mesh's, "
            "so look at them rather than trust the number"
        )
        advice.append("add landmark pins on the mesh (eye corners, nose tip, mouth corners)")
    unvouched = not vouched(signals)
    nothing_vouches = unvouched and not landmarks_read(signals)
    if unvouched:
        vouching = "nothing vouches" if nothing_vouches else "only the landmarks vouch"
        # A real person's face on another mesh (a sculpt, a scan of someone else) shades otherwise
        # whatever the light: said first, as the likely cause, where the landmarks say so.
        why = (
            "another face's shape than the mesh's shades otherwise, as a strong skin pattern, make-up "
            "or harsh light would"
            if surely_read_other_face(signals)
            else "a strong skin pattern, make-up or harsh light hides it"
        )
        reasons.append(
            f"the mesh's shading could not be matched to the photo ({why}) nor its outline (hair, "
            f"clothing or the background hide it), so {vouching} for the placement"
        )
        advice.append(
            "look at the eyes and mouth in the viewport; a photo in soft, even light matches surely"
        )
    if nothing_vouches and not too_small:
        reasons.append(
            "the face detector could not read the photo's face: it was placed from the head's outline, "
            "which the photo's edges do not confirm"
        )
        advice.append("use a photo where the face is clearly visible, frontal and evenly lit")
    # The face found on the mesh did not hold up (``MeshLandmarks.held``): a "face" read in a side
    # view of a turned head lands the photo on a cheek or the jaw, whatever the fit says.
    doubted_mesh_face = signals.get("mesh_face_held") is False
    if doubted_mesh_face:
        reasons.append(
            "the face found on the mesh may not be its face: no view straight onto it reads it again, "
            "or no nose stands out before its eyes"
        )
        advice.append("set the Facing to the way the face looks, or add landmark pins on the mesh")
    # A camera behind the face: mirrored pins (left and right mixed up) or a facing the wrong way.
    if behind:  # first: the rest follows from it
        reasons.insert(
            0,
            f"the photo's camera was fitted {round_from:.0f} degrees round from the "
            "mesh's face, behind it: the photo's face is laid on the back of the head",
        )
        advice.insert(
            0,
            "check the landmark pins' sides: left and right are the character's own (its left eye is on "
            "your right as you face it)"
            if "pins" in str(signals.get("landmarks_source", ""))
            else "set the Facing to the way the face looks, or add landmark pins on the mesh",
        )
    if estimate > FAILED_ABOVE or too_small or doubted_mesh_face or nothing_vouches or behind:
        verdict = "failed"
    elif reasons:
        verdict = "doubtful"
    else:
        verdict = "good"
    caveats = _caveats(signals)
    if verdict == "good":
        return verdict, [], [], [reason for reason, _ in caveats]
    reasons += [reason for reason, _ in caveats]
    advice += [hint for _, hint in caveats]
    return verdict, reasons, list(dict.fromkeys(advice)), []


COVERAGE_FAILED = 0.25
"""Share of the face the camera sees that could take the photo (``Projection.coverage``) under which
the result is ``failed`` whatever the registration's evidence: the texture then holds almost nothing
of the photo (a camera fitted behind the face, a head framed tiny beside a far-away part of its file
and placed by pins: an all-black texture was called doubtful, as a good one is). On bench/sweep.py
every found case reads 0.73 or more."""


def with_coverage(quality: Quality, coverage: float) -> Quality:
    """``quality`` once the projection is known: ``failed`` where under COVERAGE_FAILED of the face the
    camera sees could take the photo (``coverage`` joins the signals either way)."""
    signals = {**quality.signals, "coverage": _rounded(coverage)}
    if not coverage < COVERAGE_FAILED:
        return replace(quality, signals=signals)
    reason = (
        f"only {coverage:.0%} of the face the camera sees could take the photo: the texture holds almost "
        "none of it"
    )
    advice = [
        "look at the texture before using it; a clear frontal photo, or pins on the mesh's eyes, nose "
        "and mouth, place the photo where the face is"
    ]
    return replace(
        quality,
        verdict="failed",
        signals=signals,
        reasons=[reason, *quality.reasons],
        advice=list(dict.fromkeys(advice + quality.advice)),
        notes=[],
    )


def _rounded(value: float, digits: int = 4) -> float | None:
    """A number for JSON: rounded, None when not finite."""
    return round(float(value), digits) if np.isfinite(value) else None


def evidence(
    registration: Registration,
    frame: Any,
    portrait_score: float,
    mesh_score: float,
    landmarks_source: str,
    portrait_pass: str | None = None,
    landmark_scatter: float | None = None,
    mesh_face_held: bool = True,
) -> dict[str, Any]:
    """The signals the module docstring lists, as plain JSON for report.json."""
    iod = registration.interocular
    jackknife = _jackknife(registration, frame)
    agreement = _agreement(jackknife, iod)
    bend, bend_asymmetry = warp_bend(registration, frame)
    fov = float(registration.report()["fov_y_deg"])
    yaw, pitch = view_angles(registration, frame)
    alignment = registration.alignment
    signals = {
        "camera_error_iod": round(float(registration.error_iod_camera), 4),
        "agreement_iod": _rounded(agreement),
        "heldout_iod": {name: round(missed / iod, 4) for name, _, missed in jackknife},
        "dense_agreement": alignment.get("ncc_after"),
        "dense_weight": alignment.get("weight"),
        "dense_before": alignment.get("ncc_before"),
        "dense_offset_iod": alignment.get("max_offset_iod"),
        "warp_iod": _rounded(bend),
        "warp_asymmetry_iod": _rounded(bend_asymmetry),
        "holdout_error_iod": _rounded(float(registration.error_iod_holdout)),
        "fov_deg": round(fov, 2),
        "fov_source": registration.fov_source,
        "view_yaw_deg": round(yaw, 1),
        "view_pitch_deg": round(pitch, 1),
        "portrait_score": round(float(portrait_score), 3),
        "mesh_score": round(float(mesh_score), 3),
        "landmarks_source": landmarks_source,
        "mesh_face_held": bool(mesh_face_held),
        "portrait_pass": portrait_pass,
        "landmark_scatter_iod": None if landmark_scatter is None else _rounded(float(landmark_scatter)),
        "eye_distance_px": round(float(iod), 2),
        "dense_alignment": bool(alignment.get("applied", False)),
        "outline_weight": registration.outline.get("weight"),
        "outline_clear_share": registration.outline.get("clear_share"),
        "outline_misfit_iod": registration.outline.get("misfit_clear_iod"),
        "outline_led_weight": registration.outline.get("led_weight", 0.0),
    }
    signals["landmark_estimate_iod"] = round(landmark_evidence(signals), 4)
    return signals


def assess(
    registration: Registration,
    frame: Any,
    portrait_score: float,
    mesh_score: float,
    landmarks_source: str,
    portrait_pass: str | None = None,
    landmark_scatter: float | None = None,
    mesh_face_held: bool = True,
    mouth_open: bool = False,
) -> Quality:
    """The verdict on a registration, from the evidence the module docstring lists.

    ``portrait_pass`` is how the portrait's face was found (``Face.extras["pass"]``: ``direct``,
    ``upscaled``, ``crop``, ``outline``); None where the caller does not say, and then landmarks
    that merely copy the mesh's are recognised by their fit alone (INDEPENDENT_MIN_IOD).
    ``landmark_scatter`` is ``face.landmark_scatter`` of the portrait's face (None: not measured).
    ``mesh_face_held`` is ``MeshLandmarks.held``: False fails the result. ``mouth_open``: the
    photo's mouth is open (``regions.photo_mouth_open``: a smile, speech), which moves its corners
    off where a closed mouth's are; said as the cause where the mouth stands out."""
    signals = evidence(
        registration,
        frame,
        portrait_score,
        mesh_score,
        landmarks_source,
        portrait_pass,
        landmark_scatter,
        mesh_face_held,
    )
    signals["photo_mouth_open"] = bool(mouth_open)
    estimate = estimate_error(signals)
    verdict, reasons, advice, notes = judge(signals, estimate)
    return Quality(verdict, estimate, signals, reasons, advice, notes)
