"""The steps of one ``generate`` request, each a function with typed inputs and outputs:

    analyse -> register -> project -> stages (inpaint, latent, repaint) -> bake

``generator.Generator.generate`` calls them in that order; each can be run, tested or replaced alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .. import jawline, memo, separate_body, uvtiles
from ..alignment import outline_refit
from ..alignment import refine as refine_alignment
from ..atlas import AtlasGeometry, harmonise_charts
from ..atlas_filters import texel_areas
from ..bake import (
    StyleShadow,
    SurfacePaint,
    SurfacePhoto,
    UVSurface,
    atlas_map_at,
    bake,
    carried_into_hidden,
    covered_index,
    surface_in_atlas,
)
from ..bake import prefer_seen as prefer_seen_parts
from ..engines.base import AtlasTexture, Stage, StageContext
from ..eyes import EDGE_DEG as EYE_EDGE
from ..eyes import Eyes, eyeball_colours, photo_eyes_open
from ..face import (
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    LIPS_OUTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    RIGHT_EYE_CONTOUR,
    Face,
    analyse_portrait,
    default_segmenter,
    eyes_cut,
    person_mask,
    read_views,
    steady_landmarks,
    turn_matrix,
)
from ..glasses import LensTint, PortraitGlasses, find_glasses, lens_tint
from ..image_io import is_monochrome, load_portrait, tinted_if_monochrome
from ..imaging import box_around, put_rows, sample_image, smoothstep
from ..landmarks import MeshLandmarks, detect_from_camera
from ..mesh import Mesh, load_mesh, mapped_triangles, triangle_areas, unmapped_parts, with_pins
from ..outline import MAX_COST, SURE_SCATTER_IOD, UNSURE_SCATTER_IOD, outline_face, place_head
from ..photo_condition import PhotoCondition, condition_portrait
from ..projection import (
    NARROW_STRETCH,
    OCCLUDED_FACING,
    PortraitView,
    feather_occlusions,
    keep_joined_to_face,
    keep_narrow_stretch,
    polygon_mask,
    prepare_view,
    project_surface,
    read_softly,
    sampling_weight,
    stretch_weight,
)
from ..protocol import AvatarTexError, ErrorCode, GenerateParams
from ..regions import FeatureColours, find_hair, head_regions, mouth_cavity, tinted_lips
from ..registration import FovPrior, Registration, register, small_fits
from ..separate_body import SeparateBody
from ..whitebalance import Balance, balance_portrait, balanced
from .cache import HeadCache, HeadModel
from .progress import RequestClock

log = logging.getLogger("avatartex")


# -- analyse -------------------------------------------------------------------------------------
@dataclass
class Analysis:
    """The portrait and the mesh, read and understood."""

    portrait: np.ndarray
    """(H, W, 3) float32 sRGB 0..1, upright (EXIF applied), downscaled if huge."""
    face: Face
    """The portrait's 468 landmarks."""
    mesh: Mesh
    head: HeadModel
    """The mesh's landmarks, head frame and per-size caches."""
    warnings: list[str] = field(default_factory=list)
    fov_y_deg_exif: float | None = None
    """The portrait's vertical field of view from its EXIF lens data, when it has any."""
    person: np.ndarray | None = None
    """The portrait's person mask where analysing it already needed one (the outline fallback)."""
    white_balance: Balance = field(default_factory=lambda: Balance("off"))
    """What the white balance read on the eye whites and did (``portrait`` is the balanced photo)."""
    condition: PhotoCondition = field(default_factory=lambda: PhotoCondition("off"))
    """What was read of the photo's exposure and grain and done (``portrait`` is the corrected photo)."""
    registered: np.ndarray | None = None
    """The photo the registration reads: as taken, white-balanced as ``portrait`` is but neither
    brightened nor denoised (``portrait`` itself where neither was done; None: ``portrait``)."""

    @property
    def for_registration(self) -> np.ndarray:
        return self.portrait if self.registered is None else self.registered


def analyse(
    params: GenerateParams,
    landmarker: Any,
    heads: HeadCache,
    progress: Callable[[float, str], None],
    segmenter: Any = None,
) -> Analysis:
    """Read the portrait and find its face; read the mesh and find the face on it (cached per mesh).
    ``segmenter`` gives the person mask the outline fallback reads (the process's default when
    None)."""
    progress(0.0, "reading the portrait")
    portrait, info = load_portrait(params.portrait)
    warnings = list(info.get("warnings", []))
    as_read, (portrait, monochrome) = portrait, tinted_if_monochrome(portrait)
    try:
        face, face_warnings = analyse_portrait(portrait, params.portrait, landmarker)
        x0, y0, x1, y1 = box_around(face.landmarks, 0, as_read.shape) if monochrome else (0, 0, 0, 0)
        if monochrome and not is_monochrome(as_read[y0:y1, x0:x1]):
            # A small face in colour on a grey or white frame (1 % of its pixels): a colour photo.
            portrait, monochrome = as_read, False
            face, face_warnings = analyse_portrait(portrait, params.portrait, landmarker)
    except AvatarTexError as error:
        if error.code != ErrorCode.NO_FACE_IN_PORTRAIT:
            raise
        face, face_warnings, unreadable = None, [], error
    else:
        unreadable = None
    if monochrome:
        warnings.append(
            f"{params.portrait!r} is black and white: the skin was given a neutral skin tone over the "
            "photo's own light and shade, the lips a default lip colour at their own lightness and the "
            "irises a default brown; a colour photo "
            "gives the person's own, or recolour the texture in an image editor"
        )
    warnings += face_warnings
    if face is not None and face.extras.get("quarter_turns"):
        portrait, face, info = turned_upright(portrait, face, info)
        warnings.append(
            f"the face in {params.portrait!r} lies on its side or upside down: the photo was turned "
            f"{90 * face.extras['quarter_turns']}° counter-clockwise to read it upright (its orientation "
            "tag may be missing; a photo saved upright keeps this step out)"
        )
    # Exposure and grain before the eye whites are read (they read the brightened, denoised photo);
    # the registration reads the photo as taken, balanced alike: brightening and denoising are for
    # the colours, and a camera fitted to the same pixels as before is the same camera.
    taken = portrait
    portrait, condition, said = condition_portrait(
        portrait, face, params.white_balance, repr(params.portrait)
    )
    warnings += said
    balance = Balance(params.white_balance)
    if not monochrome:  # the light's colour, read on the eye whites (whitebalance.py)
        portrait, balance, said = balance_portrait(portrait, face, params.white_balance)
        warnings += said
    registered = portrait
    if condition.changed:
        registered = balanced(taken, np.asarray(balance.gains)) if balance.applied else taken
    progress(0.4, "reading the mesh")
    mesh = with_pins(load_mesh(params.mesh, params.uv_map, params.unwrap), params.pins)
    warnings += mesh.warnings
    progress(0.6, "finding the face on the mesh")
    head = heads.head(mesh, landmarker, params.facing)
    warnings += head.warnings
    warnings += uvtiles.small_islands_warning(head.uv_area, params.size)
    person = None
    if face is None or face.score <= 0.0:
        # the detector read no face, or its face detector did not confirm what the landmark model
        # saw: place it from (or check it against) the head's outline
        progress(0.8, "checking the face against the head's outline")
        person = (segmenter or default_segmenter()).mask(registered)
        face, outline_warnings = _against_outline(
            registered, head, info.get("fov_y_deg_exif"), params.portrait, face, person, unreadable
        )
        warnings += outline_warnings
    if monochrome:  # the portrait holds it tinted: regions.feature_colours has no iris or lip colour to read
        face.extras["monochrome"] = True
        if face.extras.get("pass") != "outline":  # its lips as the filled ones will be (read ones only)
            portrait = tinted_lips(portrait, face.landmarks, face.interocular)
    return Analysis(
        portrait,
        face,
        mesh,
        head,
        warnings,
        info.get("fov_y_deg_exif"),
        person,
        balance,
        condition,
        registered,
    )


def turned_upright(
    portrait: np.ndarray, face: Face, info: dict[str, Any]
) -> tuple[np.ndarray, Face, dict[str, Any]]:
    """The portrait turned by the quarter turns its face was read upright in
    (``face.detect_turned``: ``extras["quarter_turns"]``), the face's landmarks with it, and the
    EXIF field of view of the turned frame's height: every later step then sees an upright photo,
    as a photo whose orientation tag was read would be (the lens prior, the head's outline and the
    mesh's render from the photo's camera all behave as for the upright photo)."""
    turns = int(face.extras["quarter_turns"]) % 4
    h, w = portrait.shape[:2]
    face = face.mapped(turn_matrix(turns, w, h))
    info = dict(info)
    fov = info.get("fov_y_deg_exif")
    if fov is not None and turns % 2:  # the turned frame's height is the photo's width
        info["fov_y_deg_exif"] = float(np.degrees(2 * np.arctan(np.tan(np.radians(fov) / 2) * w / h)))
    return np.ascontiguousarray(np.rot90(portrait, turns)), face, info


def _against_outline(
    portrait: np.ndarray,
    head: HeadModel,
    fov_y_deg_exif: float | None,
    name: str,
    face: Face | None,
    person: np.ndarray,
    unreadable: Exception | None = None,
) -> tuple[Face, list[str]]:
    """``outline.outline_face`` for this head and photo: the face placed from the head's outline
    (none read), or checked against it (an unconfirmed or unsure one), at the lens the photo's EXIF
    or the portrait prior gives."""
    prior = FovPrior.for_image((portrait.shape[1], portrait.shape[0]), fov_y_deg_exif)
    return outline_face(
        portrait,
        head.mesh.positions,
        head.mesh.triangles,
        head.landmarks,
        prior.fov_y_deg(portrait.shape[0]),
        name,
        face,
        unreadable,
        person=person,
    )


@dataclass
class SteadyFace:
    """The portrait's face as the registration reads it (``steady_portrait``)."""

    face: Face
    """The steadied face, or the outline's placement that replaced an unsure one."""
    scatter: float | None
    """``face.landmark_scatter`` of the detector's reading; None for a face placed from the outline."""
    warnings: list[str]
    person: np.ndarray | None
    """The portrait's person mask where the check against the outline needed one (else the
    analysis's): the projection reads the same mask, not a second segmentation."""


def steady_portrait(
    landmarker: Any, analysis: Analysis, name: str = "the portrait", segmenter: Any = None
) -> SteadyFace:
    """The portrait's face with its landmarks steadied over views of the photo
    (``face.steady_landmarks``), how surely the detector read it (``face.landmark_scatter``, for
    the verdict), from the same detections, and the warnings to show. A face placed from the head's
    outline (no landmarks were read) is kept as it is, with no scatter. A face the detector could
    not read again in half of those views (``outline.UNSURE_SCATTER_IOD``) is checked against the
    head's outline as an unconfirmed one is, and gives way to the outline's placement where the two
    disagree and the outline fits closely (``outline.outline_face``)."""
    if analysis.face.extras.get("pass") == "outline":
        return SteadyFace(analysis.face, None, [], analysis.person)
    readings = read_views(landmarker, analysis.for_registration, analysis.face)
    face, scatter = steady_landmarks(analysis.face, readings), readings.scatter()
    if scatter < UNSURE_SCATTER_IOD or analysis.face.score <= 0.0:
        # read surely, or unconfirmed and so checked already (``analyse``)
        return SteadyFace(face, scatter, [], analysis.person)
    person = analysis.person
    if person is None:
        person = person_mask(segmenter or default_segmenter(), analysis.for_registration, face)
    checked, warnings = _against_outline(
        analysis.for_registration, analysis.head, analysis.fov_y_deg_exif, name, face, person
    )
    if checked is face:
        return SteadyFace(face, scatter, [], person)
    return SteadyFace(checked, None, warnings, person)


# -- register ------------------------------------------------------------------------------------
@small_fits
def register_portrait(
    head: HeadModel,
    face: Face,
    portrait: np.ndarray,
    landmarker: Any,
    fov_y_deg_exif: float | None = None,
    person: np.ndarray | None = None,
    scatter: float | None = None,
) -> Registration:
    """Camera + warp from the mesh's landmarks to the portrait's, refined from the portrait's view
    and then densely (``alignment.refine``).

    A first fit (camera only) gives the portrait's camera; the mesh is then rendered from that
    camera, under the photo's own light, and its landmarks detected again, so both sets come from
    the same viewpoint and light (``detect_from_camera`` says why); the camera is refitted to them
    from the first one, and the warp fitted. The view-matched landmarks are always taken (when a face
    is found on that render): choosing between the two sets by their camera residual, which the
    landmarks' own scatter decides, sent two copies of one mesh, moved, down different branches
    (the demo head turned 70° about a tilted axis: 8.5/255 of texture difference, bench/sweep.py).
    The focal length leans on the EXIF's when the photo has one, else on typical portrait lenses
    (``registration.FovPrior``). ``person`` (the portrait's person mask) and ``scatter`` (how surely
    the detector read the face, ``SteadyFace``) let the camera's refit to the head's outline start
    from the outline's own placement where the landmarks may be misread (``outline_start``).
    """
    mesh = head.mesh
    size = (portrait.shape[1], portrait.shape[0])
    prior = FovPrior.for_image(size, fov_y_deg_exif)
    detected = head.landmarks.source.startswith("detected")
    own, eyes, eyes_open = landmarks_for_the_eyes(head, face, portrait, landmarker)
    first = register(own, face, size, camera_only=detected, prior=prior)
    if not detected:  # pins: a stylised head the detector cannot read from any side
        return refine_alignment(first, mesh.positions, mesh.triangles, mesh.normals, portrait)
    seen = detect_from_camera(
        mesh.positions,
        mesh.triangles,
        first.camera,
        landmarker,
        near_xy=np.nanmean(face.landmarks, axis=0),
        normals=mesh.normals,
        interocular=face.interocular,
        photo=portrait,
        steady=face.extras.get("readings", 1) > 1,  # read as the portrait's were (steady_portrait)
        eyes=eyes if eyes_open >= 0.5 else None,
        pins=mesh.pins,  # the artist's, as everywhere
    )
    landmarks = own  # no face in the render from the portrait's view: the mesh's own
    fitted, share = None, 0.0
    if seen is not None:
        matched = register(seen, face, size, camera_only=True, prior=prior, start=first.camera)
        share = view_matched_share(first.error_iod_camera, matched.error_iod_camera)
        landmarks = blend_landmarks(own, seen, share)
        if landmarks is seen:  # taken whole (the usual case): its camera is already fitted
            fitted = matched.camera
    best = register(landmarks, face, size, prior=prior, start=first.camera, fitted=fitted)
    start = outline_start(head, face, portrait, person, scatter, prior)
    best = outline_refit(best, landmarks, face, mesh.positions, mesh.triangles, portrait, start)
    if seen is not None:
        best = landmarks_under_the_outline(best, own, seen, share, face, size)
    best = refine_alignment(best, mesh.positions, mesh.triangles, mesh.normals, portrait)
    best.eyes = {"eyeballs": eyes is not None, "painted_share": round(eyes_open, 3)}
    return best


HAIR_HIDES_OUTLINE = 0.25
"""Share of the band along the face's upper outline that the photo shows as hair
(``regions.find_hair``) from which the head's outline placement is not searched for: the outline
there is the hair's, which no placement of a bald mesh fits (the astronaut 0.70, Grace Hopper 0.48,
whose unsure readings each spent 0.9 s on a search that was never taken). The sweep's renders are
bald heads: the 20 of its 164 cases that came this far read 0.008-0.18, and every case's
registration is the same with the gate as without (bench/sweep.py --registration-only)."""


def outline_start(
    head: HeadModel,
    face: Face,
    portrait: np.ndarray,
    person: np.ndarray | None,
    scatter: float | None,
    prior: FovPrior,
) -> Callable[[], Any] | None:
    """Where the registration may start its refit to the head's outline from
    (``alignment.outline_refit``'s ``outline_start``): the camera that lays the mesh's own
    landmarks on the face where the face was placed from the outline; on the head's outline
    placement (``outline.place_head``, where it fits as a head's does: ``outline.MAX_COST``) where
    the detector read the face unsurely (``outline.SURE_SCATTER_IOD``) and the photo shows no hair
    over the head's outline (``HAIR_HIDES_OUTLINE``); None where it read it surely or there is no
    person mask. Lazy: it runs only where the photo shows an outline the landmarks' camera could not
    fit."""
    if person is None:
        return None
    if face.extras.get("pass") != "outline" and scatter is not None and scatter < SURE_SCATTER_IOD:
        return None
    size = (portrait.shape[1], portrait.shape[0])

    def camera():
        placed = face
        if face.extras.get("pass") != "outline":
            if find_hair(portrait, face, person).share >= HAIR_HIDES_OUTLINE:
                return None  # the photo's head outline is its hair's, not the mesh's
            mesh = head.mesh
            fov = prior.fov_y_deg(size[1])
            fit = place_head(portrait, person, mesh.positions, mesh.triangles, head.landmarks, fov)
            if fit is None or fit.cost > MAX_COST:
                return None
            placed = fit.face
        # The placement laid the mesh's own landmarks out (as detected): the same points fit its camera.
        return register(head.landmarks, placed, size, camera_only=True, prior=prior).camera

    return camera


def landmarks_for_the_eyes(
    head: HeadModel, face: Face, portrait: np.ndarray, landmarker: Any
) -> tuple[MeshLandmarks, Any, float]:
    """The mesh's landmarks to match ``face`` with, its eyeballs (``eyes.Eyes`` or None) and how far
    the photo's eyes are open (``eyes.photo_eyes_open``): where the mesh has separate eyeballs and the
    photo shows open, coloured eyes, the mesh's landmarks read with its eyeballs painted, blended in
    as far as the photo's eyes are open; otherwise its own. The photo's eyes are read from their
    colours and an untextured eyeball shades like skin, so the plain render's eyes read as closed
    and too close together (``bench/mesh_reading.py``)."""
    eyes = head.eyeballs()
    if eyes is None:
        return head.landmarks, None, 0.0
    eyes_open = photo_eyes_open(portrait, face)
    painted = head.painted_landmarks(landmarker) if eyes_open > 0.0 else None
    if painted is None:
        return head.landmarks, eyes, eyes_open
    return blend_landmarks(head.landmarks, painted, eyes_open), eyes, eyes_open


def landmarks_under_the_outline(
    registration: Registration,
    own: MeshLandmarks,
    seen: MeshLandmarks,
    share: float,
    face: Face,
    size: tuple[int, int],
) -> Registration:
    """Where the head's outline led the camera (``alignment.OUTLINE_LED_LANDMARKS``), the mesh's own
    landmarks and the view-matched ones judged again by how well each fits the photo's under that
    camera, which neither set chose: the warp is fitted to them blended by that judgement, as far
    as the outline led (``led_weight``), by their first camera fits elsewhere; and, as far as it led,
    without their disagreement with the camera as a whole (``registration.placement_part``).

    The view-matched landmarks are read from a render from the portrait's view, which a face read
    from its shading is read like; a real face is read from its colours, and on bench/sweep.py's
    made-up faces the view-matched set, preferred by the first fits, was up to 0.4 eye distances off
    at an eye corner (a render at 36° in a side light) while the mesh's own were within 0.1."""
    led = float(registration.outline.get("led_weight", 0.0))
    if led <= 0.0:
        return registration
    camera = registration.camera
    own_error = register(own, face, size, camera_only=True, fitted=camera).error_iod_camera
    seen_error = register(seen, face, size, camera_only=True, fitted=camera).error_iod_camera
    judged = (1.0 - led) * share + led * view_matched_share(own_error, seen_error)
    if judged == share:
        return registration
    landmarks = blend_landmarks(own, seen, judged)
    smoothing = getattr(registration.warp, "smoothing", 0.0) or None
    refitted = register(
        landmarks, face, size, prior=registration.prior, fitted=camera, smoothing=smoothing, placed=led
    )
    return dataclasses.replace(refitted, outline=registration.outline)


VIEW_MATCH_RATIO = (1.15, 1.5)
"""Camera error of the view-matched landmarks over the mesh's own, over which the view-matched ones
give way to the mesh's (all of them below the first value, none above the second). Where the render
from the portrait's view misleads the detector (a stylised head under a light from below) its
landmarks fit the photo much worse than the mesh's own: 0.087 against 0.035 eye distances, and the
true misplacement doubled (bench/sweep.py, issue 8)."""


def view_matched_share(first_error: float, matched_error: float) -> float:
    """How much of the view-matched landmarks to take, 0..1, from the two sets' camera errors: a
    smooth step, where taking one set or the other by which error is lower sent copies of one mesh
    down different branches."""
    ratio = matched_error / max(first_error, 1e-9)
    t = min(max((ratio - VIEW_MATCH_RATIO[0]) / (VIEW_MATCH_RATIO[1] - VIEW_MATCH_RATIO[0]), 0.0), 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def blend_landmarks(own: MeshLandmarks, matched: MeshLandmarks, share: float) -> MeshLandmarks:
    """The landmarks ``share`` of the way from the mesh's ``own`` to the view-matched ones (surface
    points blended per landmark; only those both sets hold, unless one set is taken whole)."""
    if share >= 1.0:
        return matched
    if share <= 0.0:
        return own
    valid = np.asarray(own.valid, bool) & np.asarray(matched.valid, bool)
    points = (1.0 - share) * np.asarray(own.points3d, np.float64) + share * np.asarray(matched.points3d)
    reshaped = [x for x in (getattr(own, "reshaped", None), matched.reshaped) if x is not None]
    return dataclasses.replace(
        matched,
        points3d=np.where(valid[:, None], points, np.nan),
        valid=valid,
        reshaped=np.logical_or.reduce(reshaped) if reshaped else None,
    )


# -- project -------------------------------------------------------------------------------------
@dataclass
class Projection:
    """The portrait projected into the head atlas: the partial texture the stages complete."""

    partial: AtlasTexture
    """Colour from the portrait where seen, confidence 0..1 per texel."""
    portrait_coords: np.ndarray
    """(S, S, 2) portrait pixel of each atlas texel's surface point; NaN where unseen."""
    coverage: float
    """Of the face texels the camera sees (depth test, cos > 0.3), the share the photo shows unhidden
    (usable confidence >= 0.5: not behind hair, hands, glasses, not off the face), however stretched."""
    coverage_including_grazing: float
    """The same share over every face texel that passes the depth test, however grazing."""
    view: PortraitView | None = None
    """The portrait's depth, silhouette and skin tables, for surface points outside the atlas
    (``photo_outside_atlas``)."""
    glasses: PortraitGlasses | None = None
    """The portrait's glasses frames (``glasses.find_glasses``), for ``complete_regions``."""
    portrait: np.ndarray | None = None
    """The portrait the colour was read from: the photo with its lenses' tint taken out
    (``glasses.lens_tint``), the photo itself without glasses. The later steps read this one."""
    lens_tint: LensTint | None = None


def lenses_in_atlas(projection: Projection, portrait_coords: np.ndarray) -> np.ndarray | None:
    """(S, S) float32: the atlas texels the photo shows through a lens of its glasses
    (``StageContext.lenses``); None without glasses, or with dark ones (taken off whole)."""
    glasses = projection.glasses
    if glasses is None or not glasses.found or glasses.dark:
        return None
    coords = np.asarray(portrait_coords, np.float32)
    return glasses.lens_at(coords.reshape(-1, 2)).reshape(coords.shape[:2])


def project(
    geometry: AtlasGeometry,
    head: HeadModel,
    portrait: np.ndarray,
    face: Face,
    registration: Registration,
    person: np.ndarray,
) -> Projection:
    """Every atlas texel's surface point into the portrait, with a confidence: depth test; the
    photo's stretch over the surface (``projection.footprint_stretch``) and the atlas's sampling of
    the photo (``sampling_weight``), narrow steep walls excepted (``keep_narrow_stretch``);
    silhouette; the face outline and the skin regions of the ``person`` mask (segmentation) joined
    to it (``skin_regions``); islands of photo not touching the face dropped (``keep_joined_to_face``).
    The colour is read from the photo with its glasses' lens tint taken out (``Projection.portrait``)."""
    mesh = head.mesh
    # Tinted lenses colour the skin behind them (amber: redder and yellower): taken out before the
    # photo is read, so that the eye region is the face's skin tone, not the lens's.
    glasses = find_glasses(portrait, face)
    tint = lens_tint(portrait, face, glasses)
    portrait = tint.remove(portrait, face, glasses)
    features = np.zeros(portrait.shape[:2], bool)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, LIPS_OUTER):
        features |= polygon_mask(features.shape, face.landmarks[list(contour)], grow=0.3)
    view = prepare_view(
        portrait,
        mesh.positions,
        mesh.triangles,
        registration,
        face.landmarks[list(FACE_OVAL)],
        features,
        head.frame.scale,
        person=person,
    )
    hit = geometry.mask
    points, normals_mesh = head.atlas_texels(geometry.size)  # normals in the mesh's axes
    projected = project_surface(view, registration, points, normals_mesh)
    s = geometry.size
    color = np.zeros((s, s, 3), np.float32)
    usable = np.zeros((s, s), np.float32)
    stretched = np.zeros((s, s), np.float32)
    portrait_coords = np.full((s, s, 2), np.nan, np.float32)
    # A photo finer than the atlas is read through its blur at one atlas texel: what is finer the
    # bake adds from the photo itself (``portrait_detail``); read raw, it was aliased into the atlas
    # (a checker two pixels wide: texel noise 3.4 times the photo's own) and then added again.
    sharp = read_atlas_band(portrait, projected.coords, photo_footprint(face, geometry))
    put_rows(
        color,
        hit,
        read_softly(portrait, projected.coords, projected.stretch, sharp, face.interocular, view.skin),
    )
    usable[hit] = projected.usable * jaw_front_factor(head, portrait, face, registration, projected)
    if view.burnt is not None and view.burnt.any():  # skin the camera burnt out: filled as unseen
        usable[hit] *= 1.0 - read_where_seen(view.burnt, projected.coords)
    halved = eyes_cut_by_frame(face, portrait.shape[:2])
    if halved is not None:  # an eye the photo's edge halves: filled whole, not half a fill
        usable[hit] *= 1.0 - read_where_seen(halved, projected.coords)
    if face.extras.get("frame_cut", 0.0) > 0.0:  # the photo fades out towards the edge that cuts the face
        usable[hit] *= border_fade(projected.coords, portrait.shape[:2], FRAME_FADE_IOD * face.interocular)
    stretched[hit] = stretch_weight(projected.stretch)
    put_rows(portrait_coords, hit, projected.coords)
    stretched *= sampling_weight(portrait_coords, geometry.chart, geometry.band_rows)
    radius = int(round(NARROW_STRETCH * geometry.layout.face_texels_per_iod))
    stretched = keep_narrow_stretch(stretched, geometry.band_rows, radius)
    cos = np.zeros((s, s), np.float32)
    cos[hit] = projected.facing
    occluded = hit & (cos > OCCLUDED_FACING) & ~np.isfinite(portrait_coords[..., 0])
    conf = keep_joined_to_face(feather_occlusions(usable * stretched, occluded, geometry), geometry)

    # Coverage counts what bench/accuracy.py counts as seen: the depth test and a view less grazing
    # than 72 degrees (cos > 0.3). It asks whether something hides the face, so it reads the
    # confidence before the stretch (a grazing texel is filled on purpose, not lost).
    face_region = geometry.face if geometry.face.any() else hit
    in_view = face_region & np.isfinite(portrait_coords[..., 0])
    seen_face = in_view & (cos > 0.3)
    coverage = float((usable[seen_face] >= 0.5).mean()) if seen_face.any() else 0.0
    grazing = float((usable[in_view] >= 0.5).mean()) if in_view.any() else 0.0
    return Projection(
        AtlasTexture(color, conf), portrait_coords, coverage, grazing, view, glasses, portrait, tint
    )


def read_where_seen(photo_map: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(N,) a single-channel map over the photo read at ``coords`` (N, 2), 0 where NaN (the
    sampler reads NaN as the border: masked)."""
    values = sample_image(photo_map, coords)[..., 0]
    return np.where(np.isfinite(coords[:, 0]), values, 0.0)


FRAME_FADE_IOD = 0.08
"""Eye distances from the photo's edge over which its confidence rises from 0 where the edge cuts
the face (``border_fade``): the fill beyond the edge (the other side's mirror, the skin around) and
the photo blend there instead of meeting in a step across a brow or the lips."""


def border_fade(coords: np.ndarray, shape: tuple[int, int], width: float) -> np.ndarray:
    """(N,) 0..1: a smoothstep of each point's distance (pixels, ``coords`` (N, 2)) to the nearest
    edge of an ``shape`` photo over ``width`` pixels; 1 where NaN (nothing read there)."""
    h, w = shape
    x, y = coords[:, 0], coords[:, 1]
    distance = np.minimum(np.minimum(x, w - x), np.minimum(y, h - y))
    fade = smoothstep(distance / max(float(width), 1e-6)).astype(np.float32)
    return np.where(np.isfinite(distance), fade, np.float32(1.0))


CUT_EYE_GROW = 0.6
"""Scale by which an eye the photo's edge cuts is grown about its centre where it is taken off
(``eyes_cut_by_frame``): its lids and lashes with it."""


def eyes_cut_by_frame(face: Face, shape: tuple[int, int]) -> np.ndarray | None:
    """(H, W) float32 1 over each eye (grown by CUT_EYE_GROW) whose landmarks the photo's edge cuts
    (``face.frame_cut``), 0 elsewhere; None where the frame cuts neither. The texels read there are
    filled as unseen ones are (the other eye's mirror: ``regions.complete_regions`` paints no eye at
    rest there), not half the photo's eye beside half a fill."""
    h, w = shape
    out = None
    for contour, cut in zip((RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR), eyes_cut(face, w, h), strict=True):
        if cut:
            out = np.zeros((h, w), np.float32) if out is None else out
            out[polygon_mask((h, w), face.landmarks[list(contour)], grow=CUT_EYE_GROW)] = 1.0
    return out


def jaw_front_factor(
    head: HeadModel, portrait: np.ndarray, face: Face, registration: Registration, projected
) -> np.ndarray:
    """(N,) factor on the atlas texels' photo: 0 on the mesh's jaw front where the photo shows what
    lies below its own jaw, as far as its jaw outline is an edge of the photo (``jawline``: a
    sculpted jaw wider or longer than the photo's took the photo's neck)."""
    ones = np.ones(len(projected.coords), np.float32)
    beyond = jawline.below_the_jaw(face.landmarks, portrait.shape[:2], face.interocular)
    edge = jawline.jaw_edge(portrait, face.landmarks, beyond, face.interocular)
    if edge <= 0.0:
        return ones
    mesh, lm = head.mesh, head.landmarks.points3d
    front, scale = jawline.mesh_jaw_front(
        mesh.positions,
        mesh.triangles,
        mesh.normals,
        head.frame.axes[1],
        lm[[MOUTH_RIGHT, MOUTH_LEFT]],
        registration.camera,
        float(head.frame.scale),
    )
    return jawline.jaw_factor(front, scale, projected.camera_xy, beyond, projected.coords, edge)


JOINED_CONFIDENCE = 0.5
"""Confidence from which a UV texel the photo backs joins others into one region of photo
(``photo_outside_atlas``): the atlas's confidence on the texels it holds, the photo's own reading on
those it does not."""


def photo_outside_atlas(
    surface: UVSurface,
    geometry: AtlasGeometry,
    portrait: np.ndarray,
    face: Face,
    registration: Registration,
    projection: Projection,
    photo_confidence: np.ndarray,
    delight_at: Callable[..., np.ndarray] | None,
    kept: memo.Memo | None = None,
) -> SurfacePhoto | None:
    """The de-lit photo on the UV texels whose surface the atlas does not hold (``bake``'s hidden
    ones); None where there are none the photo sees, or no de-lighting to take its light out.

    The atlas keeps one surface per direction from the head's centre, so a bust's neck under the
    chin and its chest, which a portrait shows, were filled from the neighbours in UV space: a third
    of the seen texels of the scanned bust, flat skin where the photo had its pattern. They are read
    from the photo as the atlas's texels are (``project_surface``: depth test, silhouette, skin
    regions joined to the face, the stretch's confidence; ``read_softly``), through the same
    registration, and de-lit with the latent stage's light at their own normals (``delight_at``).

    The photo continues there as far as it backs the atlas's texels around them
    (``photo_confidence``, the atlas's, carried into them as the bake fills them), and wholly where
    its own reading joins, in the UV map and through texels it backs (``JOINED_CONFIDENCE``), texels
    of the atlas it backs: a chest continuous with a photo-backed neck takes the photo's pattern,
    where the carried confidence alone faded to a few hundredths a few texels in (the bench's
    renders of the scanned bust: 0.03 on average over the chest). A neck the atlas path faded out
    under the chin (a collar, a shadow, skin the projection dropped as an island) joins nothing and
    is not brought back as a patch of its own (Grace Hopper on the scanned bust: a wrinkled,
    collar-edged patch on the throat, cut off from the face).
    """
    if delight_at is None or projection.view is None:
        return None
    # What is read before the de-lighting depends on the fit and the regions' confidence alone: a
    # variant of the same photo reads it again from ``memo``.
    key = memo.digest(
        id(surface), surface.mask, id(geometry), photo_confidence, portrait, projection.portrait_coords,
        projection.partial.confidence, float(face.interocular),
    )  # fmt: skip
    read = None if kept is None else kept.get("photo_outside_atlas", key)
    if read is None:
        read = _hidden_texels_read(
            projection, registration, surface, geometry, photo_confidence, portrait, face.interocular
        )
        if kept is not None:
            kept.put("photo_outside_atlas", key, read)
    if read is None:
        return None
    texels, color, confidence, coords, normals, occlusion = read
    delit = np.clip(color * delight_at(normals, coords, occlusion), 0.0, 1.0)  # as the latent stage's
    return SurfacePhoto(texels, delit.astype(np.float32), confidence, coords)


def _hidden_texels_read(
    projection: Projection,
    registration: Registration,
    surface: UVSurface,
    geometry: AtlasGeometry,
    photo_confidence: np.ndarray,
    portrait: np.ndarray,
    interocular: float,
):
    """``photo_outside_atlas`` before the de-lighting: (texels, colour, confidence, coords, normals,
    occlusion) of the hidden texels read, or None (``interocular``: the photo's eye distance)."""
    xy, hidden = surface_in_atlas(geometry, surface)
    if not hidden.any():
        return None
    index = np.flatnonzero(hidden)
    covered = covered_index(surface)
    cells = covered[index]
    on_held = atlas_map_at(geometry, photo_confidence, xy[~hidden])
    cap = carried_into_hidden(geometry, surface, on_held)
    backed = np.zeros(surface.mask.size, bool)  # the texels the atlas holds and the photo backs there
    backed[covered[~hidden]] = on_held >= JOINED_CONFIDENCE
    # Read where the carried confidence lets the photo in, and where the texels the atlas does not
    # hold reach a backed one at all (only there can the reading join it): not a whole bust's chest
    # cut off from the face by a strip the photo does not back (0.02 s of a 1024² request).
    read = np.flatnonzero((cap > 0.01) | _joined(surface, backed, cells, np.ones(len(cells), bool)))
    if read.size == 0:
        return None
    points, normals = surface.positions[index[read]], surface.normals[index[read]]
    projected = project_surface(projection.view, registration, points, normals)
    own = projected.confidence
    joined = _joined(surface, backed, cells[read], own >= JOINED_CONFIDENCE)
    # Joined, the reading is taken whole, fading in from the joined patch's edge (never below the cap).
    inside = _inside(surface, cells[read[joined]], cells[read])
    confidence = np.minimum(own, np.where(joined, np.maximum(inside, cap[read]), cap[read]))
    keep = np.flatnonzero(confidence > 0.01)
    if keep.size == 0:
        return None
    coords, stretch = projected.coords[keep], projected.stretch[keep]
    sharp = sample_image(portrait, coords)
    color = read_softly(portrait, coords, stretch, sharp, interocular, projection.view.skin)
    texels = index[read[keep]]
    occlusion = None if surface.occlusion is None else surface.occlusion[texels]
    return texels, color, confidence[keep], coords, normals[keep], occlusion


JOINED_FADE = 12.0 / 512.0
"""The width, as a share of the texture's edge, over which a joined reading fades in from its patch's
edge in the UV map: the chest turns away from the camera there and the photo is darker than the
de-lighting takes out (in the atlas the ring gain lifts that falloff at the face's border): cut off
at the edge, sweep case r019 showed a dark ragged rim across the lower chest."""


def _inside(surface: UVSurface, patch: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(K,) 0..1 how far inside the UV patch ``patch`` (flat indices) each of ``cells`` lies: a
    smoothstep over JOINED_FADE of the texture's edge; 0 outside it."""
    inside = np.zeros(surface.mask.size, np.uint8)
    inside[patch] = 1
    distance = cv2.distanceTransform(inside.reshape(surface.mask.shape), cv2.DIST_L2, 5).reshape(-1)
    return smoothstep(distance[cells] / max(JOINED_FADE * surface.mask.shape[0], 1.0)).astype(np.float32)


def _joined(surface: UVSurface, backed: np.ndarray, cells: np.ndarray, through: np.ndarray) -> np.ndarray:
    """(K,) which of the UV texels ``cells`` (flat indices) that may carry a join (``through``) are
    joined, 8-connected in the UV map through such texels, to a ``backed`` one."""
    region = backed.copy()
    region[cells[through]] = True
    count, labels = cv2.connectedComponents(region.reshape(surface.mask.shape).astype(np.uint8))
    labels = labels.reshape(-1)
    seeded = np.bincount(labels[backed], minlength=count) > 0
    seeded[0] = False
    return seeded[labels[cells]] & through


# -- prepare -------------------------------------------------------------------------------------
def prepare_head_tables(head: HeadModel, atlas_size: int, texture_size: int) -> None:
    """Build the tables the steps derive from the head alone and keep on its atlas and UV surface
    (computed lazily by the first request otherwise): the projection's texel points, the atlas's
    mirror, the classic stages' texel footprints, grain positions and energies, stretched-texel
    blend, texel areas and head forms, the scalp regions, and the bake's atlas coordinates and
    padding (one bake of a blank atlas). The scanned head at 1024: the first request after a
    ``prepare`` took 2.5 s without them, 1.6 s with them, the next ones 1.4 s."""
    from ..engines.classic import inpaint, repaint
    from ..regions import head_regions

    geometry = head.atlas(atlas_size)
    head.atlas_texels(atlas_size)
    geometry.mirror_index()
    inpaint.texel_footprint(geometry)
    inpaint.grain_octaves(geometry, GenerateParams.seed)
    inpaint.octave_energies(geometry)
    inpaint.smooth_where_stretched(np.zeros((atlas_size, atlas_size, 3), np.float32), geometry)
    texel_areas(geometry)  # the fill's overall colour weighs the texels by it
    repaint.head_forms(geometry)
    head_regions(geometry, head.landmarks.points3d)
    for tile in head.uv_tiles:
        bake(
            geometry,
            np.zeros((atlas_size, atlas_size, 3), np.float32),
            head.surface(texture_size, tile),
            grain=True,
        )


# -- stages --------------------------------------------------------------------------------------
def run_stages(
    stages: list[Stage], texture: AtlasTexture, ctx: StageContext, clock: RequestClock
) -> AtlasTexture:
    """Inpaint, latent and repaint in turn, each reporting progress and timed by ``clock``."""
    for stage in stages:

        def stage_progress(fraction: float, message: str = "", _name: str = stage.name) -> None:
            clock.step(_name, min(max(fraction, 0.0), 1.0), message)

        ctx.progress = stage_progress
        clock.step(stage.name, 0.0, f"{stage.engine} {stage.name}")
        texture = stage.run(texture, ctx)
        clock.done(stage.name)
    return texture


# -- bake ----------------------------------------------------------------------------------------
def textured_material(head: HeadModel, warnings: list[str]) -> dict[str, Any] | None:
    """``report.json``'s ``material`` for a mesh of several materials (``HeadModel.material``): which
    one the texture is for, and the others, which keep their own textures (the artist is told)."""
    material = head.material
    if material is None:
        return None
    # A full-body character's: its whole mesh's (its head part holds the face's material alone).
    mesh = head.body.whole if head.body is not None else head.mesh
    others = [mesh.part_name(i) for i in sorted(set(np.unique(mesh.parts).tolist()) - {material})]
    # Parts without a UV map were said to be left untextured when the file was read.
    unmapped = set(unmapped_parts(~mapped_triangles(mesh.uvs), mesh.parts).tolist())
    keeping = ~np.isin(mesh.parts, list(unmapped | {material}))
    left = int(keeping.sum())
    names = ", ".join(f"'{mesh.part_name(i)}'" for i in np.unique(mesh.parts[keeping]))
    if left:
        warnings.append(
            f"only the material '{mesh.part_name(material)}', the face's, was textured: {names} "
            f"({left} triangles) keep their own textures (eyes, teeth or a body have their own UVs)"
        )
    by_index = [mesh.part_name(i) for i in range(int(mesh.parts.max()) + 1)]
    return {"index": material, "name": mesh.part_name(material), "others": others, "names": by_index}


def body_in_material(
    head: HeadModel, params: GenerateParams, warnings: list[str], matched: bool = True
) -> tuple[SeparateBody, dict[str, Any], GenerateParams] | None:
    """The body in another material of the head's own mesh (``params.material_textures``;
    ``separate_body.in_material``), in the coordinates of ``head.mesh``, the report's word on it and
    the request as the tone is matched: where the body's skin runs on into other materials of their
    own (Daz's Torso into its Arms and Legs), toning the neck's alone would move the seam to the
    shoulders, so ``body_to_face`` becomes ``face_to_body`` (said). None without such textures, a
    material of the face's, or a material that meets it below the mouth. Not to be ``matched`` (a
    face over several UV tiles): the body found, the tone not decided nor said."""
    if not params.material_textures or head.material is None:
        return None
    whole, faces = head.mesh, head.textured
    if head.body is not None:  # -- body -- a full-body character: its head part is a piece of it
        part = head.body
        whole = dataclasses.replace(part.whole, positions=(part.whole.positions - part.centre) / part.scale)
        faces = part.part_triangles[faces]
    up = head.frame.axes[1]
    mouth = head.landmarks.points3d[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0)
    found = separate_body.in_material(
        whole, faces, params.material_textures, head.frame.scale, up, float(mouth @ up)
    )
    if found is None:
        return None
    material, body = found
    source = {
        "kind": "material",
        "material": whole.part_name(material),
        "material_index": material,
        "body_texture": params.material_textures[material],
    }
    if matched and params.tone_match == "body_to_face":
        beyond = separate_body.skin_beyond(
            whole, body, material, params.material_textures, head.material, head.frame.scale
        )
        if beyond:
            names = ", ".join(f"'{whole.part_name(i)}'" for i in beyond)
            warnings.append(
                f"the body's skin runs on from '{whole.part_name(material)}' into {names}, materials of "
                "their own: the face's skin was matched to the body's (tone_match face_to_body) rather "
                "than the neck's material alone to the face's, which would leave a seam where it meets them"
            )
            source["skin_runs_into"] = [whole.part_name(i) for i in beyond]
            params = dataclasses.replace(params, tone_match="face_to_body")
    return body, source, params


SATURATED_SKIN = 52.0
"""CIELAB chroma of the de-lit face's skin above which it is said to be more saturated than skin:
Grace Hopper's warm photo gives 44, the astronaut's 20; under a tungsten light whose eye whites her
glasses hide (no white balance) 59."""
YELLOW_SKIN = (70.0, 30.0)
"""CIELAB hue (degrees) and chroma beyond both of which a face's skin is no real skin's: skins as
yellow as that are pale (the astronaut's 65 degrees at chroma 20, a blue-cast photo balanced 73 at
19), warm ones are redder (Grace Hopper's 51 at 44). A green-cast photo of her came out olive, 77 at
41, and nothing was said."""


def _face_lab(geometry: AtlasGeometry, colour: np.ndarray) -> np.ndarray | None:
    """CIELAB median of the atlas's face region of ``colour`` (sRGB 0..1); None where no face region
    (of 64 texels or more) is marked."""
    from ..imaging import to_lab

    face = getattr(geometry, "face", None)
    if face is None or face.sum() < 64:
        return None
    return np.median(to_lab(colour[face]), axis=0)


def implausible_skin(geometry: AtlasGeometry, colour: np.ndarray) -> str:
    """A warning where the de-lit face's skin (the median of the atlas's face region, ``colour``
    sRGB 0..1) lies outside the warm hues of any real skin (``body.plausible_skin``): a cool shade or
    a fluorescent tube's tint the eye whites could not read (a grey-green head from a blue-shaded
    photo, a* -1, b* +5), left unsaid before. "" where it is skin-like, or no face region is marked."""
    from ..body import plausible_skin

    lab = _face_lab(geometry, colour)
    if lab is None:
        return ""
    hue = float(np.degrees(np.arctan2(lab[2], lab[1])))
    chroma = float(np.hypot(lab[1], lab[2]))
    if chroma > SATURATED_SKIN:
        return (
            f"the face's skin came out CIELAB a*, b* {lab[1]:+.0f}, {lab[2]:+.0f}, more saturated than "
            "real skin: the photo's light may have been warm (a tungsten bulb, a sunset) in a way its eye "
            "whites could not tell (behind glasses or too small they are not read); white-balance the "
            "photo on a white garment or a grey card, or keep it if the character's skin is meant so"
        )
    if plausible_skin(lab) and not (hue > YELLOW_SKIN[0] and chroma > YELLOW_SKIN[1]):
        return ""
    return (
        f"the face's skin came out CIELAB a*, b* {lab[1]:+.0f}, {lab[2]:+.0f}, outside the warm hues "
        "of any real skin: the photo's light may have been coloured (a cool shade, a fluorescent "
        "tube) in a way its eye whites could not tell; white-balance the photo on a white garment or "
        "a grey card, or keep it if the character's skin is meant so"
    )


WARM_UNCHECKED = 35.0
"""CIELAB chroma of the de-lit face's skin above which, where the photo's eye whites could not be read
(the light's colour unchecked), the skin is said to be warm perhaps from the light: a tungsten-lit
photo of a dark-skinned face whose eye whites read too dark came out at 41 unsaid (the same face in
white light 25); Grace Hopper's warm photo, her eyes behind glasses, 44; the astronaut's 20."""


def unchecked_warmth(geometry: AtlasGeometry, colour: np.ndarray, balance: Balance) -> str:
    """A note where ``white_balance=auto`` could not read the photo's eye whites and the de-lit face's
    skin (the median of the atlas's face region, ``colour`` sRGB 0..1) is warm (WARM_UNCHECKED) but
    not beyond any real skin's (``implausible_skin`` says that): the light's colour could not be told
    from the skin's. "" otherwise (``eyes`` says its own, ``off`` was chosen)."""
    if balance.mode != "auto" or balance.eye_whites_ab is not None:
        return ""
    lab = _face_lab(geometry, colour)
    if lab is None:
        return ""
    chroma = float(np.hypot(lab[1], lab[2]))
    if not WARM_UNCHECKED < chroma <= SATURATED_SKIN:
        return ""
    return (
        f"the face's skin came out warm (CIELAB a*, b* {lab[1]:+.0f}, {lab[2]:+.0f}) and the photo's eye "
        "whites could not be read to tell its light's colour from the skin's (too small, shadowed or "
        "behind glasses): if the photo was taken under warm light (a bulb, a sunset), white-balance it on "
        "a white garment or a grey card; if the skin is that warm, keep it"
    )


ENLARGED_WARN = 3.0
"""Texels between the eyes in the texture per pixel between them in the photo from which a texture of
2048² or more is said to hold no more of the photo than a smaller one. The photos the project reads
give 44 px (the astronaut) and 89 px (Grace Hopper) between the eyes; a 1024² map lays 88 texels there
on the scanned head, 109 on the demo head, twice that at 2048², and the render QA's 2048² photoreal
textures downscaled to 1024² and back lost 0.15-0.76 /255: the photo's detail ends near its pixels."""
ENLARGED_KEEP = 2.0
"""The enlargement the smaller size suggested then stays within (not below 1024²)."""


def texels_per_iod(head: HeadModel, size: int) -> float | None:
    """Texels of a ``size``² texture per eye distance on the face's skin (the textured triangles
    around the eyes, nose and mouth: head-frame |x| < 1, -1.6 < y < 0.6, in front), from their UV
    and surface areas; None without such triangles."""
    mesh = head.mesh
    tris = head.textured
    corners = mesh.positions[mesh.triangles[tris]].astype(np.float64)
    local = head.frame.to_head(corners.mean(axis=1))
    front = (np.abs(local[:, 0]) < 1.0) & (local[:, 1] > -1.6) & (local[:, 1] < 0.6) & (local[:, 2] > 0.5)
    if front.sum() < 8:
        return None
    c = corners[front]
    area = triangle_areas(c).sum()
    uv_area = uvtiles.uv_area(mesh.uvs, tris[front])
    if area <= 0 or uv_area <= 0:
        return None
    return float(np.sqrt(uv_area / area) * size * head.frame.scale)


def enlargement_note(head: HeadModel, size: int, photo_iod_px: float) -> tuple[float | None, str]:
    """How many times the texture enlarges the photo between the eyes (``texels_per_iod`` over the
    photo's pixels there), and a warning where a texture of 2048² or more holds no more of the photo
    than half its size (``ENLARGED_WARN``), naming the size that does ('' otherwise)."""
    texels = texels_per_iod(head, size)
    if texels is None or photo_iod_px <= 0:
        return None, ""
    ratio = texels / photo_iod_px
    if size < 2048 or ratio < ENLARGED_WARN:
        return ratio, ""
    smaller = size
    while smaller > 1024 and texels * smaller / size / photo_iod_px > ENLARGED_KEEP:
        smaller //= 2
    return ratio, (
        f"the photo has {photo_iod_px:.0f} px between the eyes and this {size}² texture lays "
        f"{texels:.0f} texels there ({ratio:.1f}× enlarged): a {smaller}² texture holds the same of the "
        f"photo ({texels * smaller / size:.0f} texels) in {(smaller / size) ** 2:.0%} of the memory; a "
        "bigger texture needs a photo with the face larger in it"
    )


EMPTY_UV_AREA = 1e-6
"""UV area (in squares of UV space) below which a UV map shows no texel of any texture size."""


def texture_files(head: HeadModel, params: GenerateParams) -> list[tuple[tuple[int, int], str]]:
    """(UV tile, file name) of each image the request writes (``uvtiles``): ``params.texture_name``
    when the head's triangles lie in one tile, whichever it is; ``texture.<UDIM>.png`` per tile when
    they lie in several, or when the base texture is a set of UDIM tiles (``name.<UDIM>.png``: each
    head tile composed over its own). A typed error where the tiles cannot be named, a character's
    one base texture would have to serve several of them, or a tiled base lacks a head tile."""
    if not head.uv_area > EMPTY_UV_AREA:
        raise AvatarTexError(
            ErrorCode.NO_UV_MAP,
            f"The UV map of mesh '{head.mesh.name}' has no area: every triangle's UVs are collapsed "
            "to a point or a line, so no texel of a texture would show on it.",
            "Unwrap the head (Blender: UV > Unwrap or Smart UV Project) and choose that UV map.",
        )
    squares = head.uv_tiles
    tiled_base = uvtiles.UDIM_TOKEN in params.base_texture
    if len(squares) == 1 and not tiled_base:
        return [(squares[0], params.texture_name)]
    outside = [t for t in squares if uvtiles.udim(t) is None]
    if outside:
        raise AvatarTexError(
            ErrorCode.UV_TILES,
            f"The head's UVs lie in {len(squares)} squares of UV space ({uvtiles.describe(squares)}), "
            f"{len(outside)} of them outside the UDIM grid (negative, or u of 10 or more), so its "
            "texture cannot be written as UDIM tiles.",
            "Move the UV islands into UDIM tiles (u from 0 to 10, v from 0 up), or all into 0..1.",
        )
    if tiled_base:
        missing = [t for t in squares if t not in uvtiles.tile_files(params.base_texture)]
        if missing:
            raise AvatarTexError(
                ErrorCode.BASE_TEXTURE_UNREADABLE,
                f"The character's head lies in UDIM tile(s) {uvtiles.describe(missing)}, which the base "
                f"texture {params.base_texture} has no file for.",
                "Give the base texture's tiles as they are named (name.1001.png...), or leave it out "
                "(the body gets a skin fill).",
            )
    elif params.base_texture:
        raise AvatarTexError(
            ErrorCode.UV_TILES,
            f"The character's head spans the UDIM tiles {uvtiles.describe(squares)}, but the base "
            "texture is one image.",
            "Leave the base texture out (the body gets a skin fill in each tile), or move the head's "
            "UV islands into one tile.",
        )
    return [(tile, uvtiles.tile_file(params.texture_name, tile)) for tile in squares]


SHARED_WARNING = 0.01
"""Share of a UV map's texels that two parts of the mesh share above which the report says so."""


def seen_by_photo(projected: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """(S, S) how far the photo shows each atlas texel, for choosing which of two parts sharing
    texels a texture shows (``prefer_seen``): the projection's confidence (``projected``), whatever
    the regions filled there since (the eyes, a mouth's teeth taken off), or the regions' (``kept``)
    where higher. With the regions' alone, a face on stacked UV islands (a planar projection: the
    front and the back of the head on the same texels) showed the back's skin in its eyes and over
    its mouth and chin, a flat patch with the photo's face round it."""
    return np.maximum(np.asarray(projected, np.float32), np.asarray(kept, np.float32))


SHARED_MIN = 0.002
"""...and below which the part drawn is kept (no choice by the photo)."""


def prefer_seen(
    head: HeadModel,
    size: int,
    tile: tuple[int, int],
    geometry: AtlasGeometry,
    seen: np.ndarray,
    warnings: list[str],
) -> UVSurface:
    """The UV surface to bake one tile into: where two parts of the mesh share texels (mirrored or
    stacked UV islands), each shows the part the photo sees more (``bake.prefer_seen``; ``seen``:
    (S, S) how far the photo shows each atlas texel, ``seen_by_photo``); the artist is told, since
    the other part then repeats it."""
    surface = head.surface(size, tile)
    share = 0.0 if surface.shared is None else surface.shared.share(surface)
    if share < SHARED_MIN:
        # A few stray texels (the scanned head has 200 of about 920k at 1024): choosing would cost
        # every request the bake's tables of a new surface (kept per mesh) for nothing one could see.
        return surface
    mesh = head.mesh
    uvs = uvtiles.in_tile(mesh.uvs, tile, head.textured)
    chosen = prefer_seen_parts(surface, geometry, seen, mesh.positions, mesh.triangles, mesh.normals, uvs)
    message = (
        f"{share:.0%} of the UV map's texels are shared by two parts of the mesh (mirrored or "
        "stacked UV islands): each shows the part the photo sees better, and the other repeats "
        "it. Unwrap those parts apart for a texture with both sides of the face as photographed"
    )
    if share >= SHARED_WARNING and message not in warnings:  # once, not once per UV tile
        warnings.append(message)
    return chosen


def bake_texture(
    geometry: AtlasGeometry,
    atlas_color: np.ndarray,
    surfaces: list[UVSurface],
    details: list[np.ndarray | None],
    photos: list[SurfacePhoto | None] | None = None,
    shadow: StyleShadow | None = None,
    painted: list[SurfacePaint | None] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """(the texture in the mesh's UVs of each UV tile's surface, the atlas after the caps were made to
    agree with the band: once for every tile). ``photos``: each surface's own photo where the atlas
    does not hold it (``photo_outside_atlas``), or None; ``shadow``: a style's cel shadow, for the
    texels the atlas does not hold (``bake``, which gives them the skin's grain too); ``painted``: each
    surface's texels painted last (``painted_last``: eyeballs as eyes, a mouth's inside), or None.
    ``progress(fraction, message)`` is told before each tile (and may raise ``Cancelled``)."""
    final_atlas = harmonise_charts(geometry, atlas_color)
    photos = photos or [None] * len(surfaces)
    painted = painted or [None] * len(surfaces)
    textures = []
    for index, (s, d, p, e) in enumerate(zip(surfaces, details, photos, painted, strict=True)):
        if progress is not None:
            progress(index / len(surfaces), f"baking UV tile {index + 1} of {len(surfaces)}")
        textures.append(bake(geometry, final_atlas, s, d, photo=p, grain=True, shadow=shadow, painted=e))
    return textures, final_atlas


def eyes_on_surface(
    surface: UVSurface, eyes: Eyes | None, colours: FeatureColours | None
) -> SurfacePaint | None:
    """The covered texels of ``surface`` on the mesh's separate eyeballs (``HeadModel.eyeballs``),
    coloured as eyes at rest: sclera and an iris in ``colours`` (``Regions.eye_colours``: the
    photo's, in the de-lit texture's terms) round the face's forward direction, and a pupil. None
    without eyeballs or where none of the surface's texels is on them (another UV tile's)."""
    if eyes is None or colours is None:
        return None
    on = np.flatnonzero(eyes.texels(surface.tri_id).reshape(-1)[covered_index(surface)])
    if not len(on):
        return None
    colour = eyeball_colours(surface.positions[on], eyes, colours.iris, colours.sclera, EYE_EDGE)
    return SurfacePaint(on, colour.astype(np.float32))


def mouth_on_surface(geometry: AtlasGeometry, surface: UVSurface, head: HeadModel) -> SurfacePaint | None:
    """The covered texels of ``surface`` inside the mouth (``regions.mouth_cavity``: a mouth bag, teeth
    and tongue in the face's material, behind the lips where the atlas sees the lips), coloured as its
    dark interior; None where there are none."""

    def find() -> SurfacePaint | None:
        _, hidden = surface_in_atlas(geometry, surface)
        points_head = head_regions(geometry, head.landmarks.points3d).points_head
        index, colour = mouth_cavity(geometry, points_head, surface.positions, hidden)
        if surface.shared is not None and len(index):
            # A texel the mouth's inside shares with another part (stacked or planar UVs) serves that
            # part too, and is left to it: painted dark, a planar-unwrapped head's lips went dark.
            own = ~np.isin(covered_index(surface)[index], surface.shared.index)
            index, colour = index[own], colour[own]
        return SurfacePaint(index, colour) if len(index) else None

    # Kept for the head's own surfaces (which it keeps alive, so their ids stay theirs); a surface
    # chosen per request among parts sharing texels (``prefer_seen``) is read anew: keyed by its id,
    # a later request's surface could take a freed one's id and its texels.
    if not any(surface is own for own in head.surfaces.values()):
        return find()
    found = head.derived.setdefault("mouth cavity", {})
    key = (geometry.size, id(surface))
    if key not in found:
        found[key] = find()
    return found[key]


def painted_last(eyes: SurfacePaint | None, mouth: SurfacePaint | None) -> SurfacePaint | None:
    """The texels the bake colours last (``bake``'s ``painted``): the mouth's inside, and the separate
    eyeballs' eyes over it where a texel is both."""
    if mouth is None or eyes is None:
        return eyes if mouth is None else mouth
    keep = ~np.isin(mouth.index, eyes.index)
    return SurfacePaint(
        np.concatenate([mouth.index[keep], eyes.index]), np.concatenate([mouth.color[keep], eyes.color])
    )


def detail_weight(style: Any, engine: str, strength: float) -> float:
    """How much of the portrait's finest detail the bake adds: the classic engine's photoreal style
    all of it, other styles their ``bake_detail`` scaled down as the style is applied; the neural
    engine's repaint already restores detail."""
    if engine != "classic":
        return 0.0
    photoreal = style.name == "photoreal"
    weight = float(getattr(style, "classic", {}).get("bake_detail", 1.0 if photoreal else 0.0))
    return weight * (1.0 if photoreal else 1.0 - strength)


DETAIL_FOOTPRINT = 0.75
"""Portrait pixels per atlas texel (on the face) from which the atlas holds the photo blurred at its
own texel and the bake adds what is finer (``portrait_detail``): below it the atlas holds all the
photo has."""


def photo_footprint(face: Face, geometry: AtlasGeometry) -> float:
    """Portrait pixels per atlas texel on the face."""
    return face.interocular / geometry.layout.face_texels_per_iod


def detail_sigma(footprint: float) -> float:
    """Gaussian sigma (portrait pixels) splitting the photo into what an atlas texel of ``footprint``
    portrait pixels holds and what is finer."""
    return 0.5 * footprint


def atlas_band(portrait: np.ndarray, footprint: float) -> np.ndarray:
    """The portrait as the atlas holds it: blurred at one atlas texel (``detail_sigma``) where a texel
    spans DETAIL_FOOTPRINT portrait pixels or more, the portrait itself where it spans fewer."""
    if footprint < DETAIL_FOOTPRINT:
        return portrait
    return cv2.GaussianBlur(portrait, (0, 0), detail_sigma(footprint))


def read_atlas_band(portrait: np.ndarray, coords: np.ndarray, footprint: float) -> np.ndarray:
    """(N, C) ``atlas_band`` of the portrait read (bilinear) at ``coords`` (N, 2; NaN reads the
    border), blurred over the box the points span only: the face is a part of a large photo."""
    if footprint < DETAIL_FOOTPRINT or not np.isfinite(coords[:, 0]).any():
        return sample_image(portrait, coords)
    x0, y0, x1, y1 = box_around(coords, int(np.ceil(4 * detail_sigma(footprint))) + 2, portrait.shape)
    box = portrait[y0:y1, x0:x1]
    return sample_image(atlas_band(box, footprint), coords - np.array([x0, y0], np.float32))


def portrait_detail(
    surface: UVSurface,
    portrait: np.ndarray,
    geometry: AtlasGeometry,
    face: Face,
    portrait_coords: np.ndarray,
    confidence: np.ndarray,
) -> np.ndarray:
    """Portrait detail finer than the atlas holds, for the covered UV texels, weighted by confidence.

    The atlas samples the photo at about one texel per ``footprint`` portrait pixels; what is finer
    (pores, freckles, lashes) is the photo minus its blur at that footprint. Where each UV texel
    falls in the photo is read from the atlas's own projection (the mapping is smooth), with no
    weight where any neighbouring atlas texel was unseen or the atlas shows another surface.
    """
    footprint = photo_footprint(face, geometry)
    count = int(surface.mask.sum())
    if footprint < DETAIL_FOOTPRINT:
        return np.zeros((count, 3), np.float32)
    xy, hidden = surface_in_atlas(geometry, surface)
    seen = np.isfinite(portrait_coords[..., 0])
    packed = np.concatenate(
        [np.nan_to_num(portrait_coords), confidence[..., None], seen[..., None].astype(np.float32)], axis=2
    )
    sampled = geometry.sample(packed, xy)
    weight = np.where(sampled[:, 3] > 0.999, sampled[:, 2], np.float32(0.0))
    weight[hidden] = 0.0
    # Only texels with weight read the photo (the back of the head has none): the photo and its blur
    # sampled together, one bilinear weight per texel for both.
    use = np.flatnonzero(weight > 0)
    blurred = atlas_band(portrait, footprint)
    both = sample_image(np.concatenate([portrait, blurred], axis=2), sampled[use, :2])
    out = np.zeros((count, 3), np.float32)
    out[use] = (both[:, :3] - both[:, 3:]) * weight[use, None]
    return out
