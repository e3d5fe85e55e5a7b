"""A body that is a mesh of its own: the skin tone matched across the neck between two objects.

Characters often come as separate head and body objects (VRoid's Face and Body, game characters,
a sculpted head put on a stock body), each with its own texture. The head's new texture then meets
the body's old one at the neck with whatever tone each has: a seam in the render. With
``GenerateParams.body_mesh`` (the body's mesh, in the head mesh's coordinates) and ``body_texture``
(its base-colour image), ``match``:

1. finds the **seam**: the head's surface within ``SEAM_GAP_IOD`` of the body's (where the two
   objects meet; a neck that runs on under the head meets it too);
2. reads each side's skin tone (``body.ring_tone``) in a ring of ``body.RING_IOD`` beside it: the
   head texture on the head's surface, the body's image on the body's surface outside the head (a
   body's neck often runs on up inside the head's, hidden, its texture anything);
3. moves one side's skin-like texels by the tones' difference, as ``body.compose`` does within one
   mesh: ``body_to_face`` writes a copy of the body's image (``body_texture_name``: same size, bit
   depth and alpha; every texel not skin-like bit for bit) that the caller shows on the body;
   ``face_to_body`` moves the head texture's skin; ``none`` only measures.

The body's image is never written over: the toned copy is a new file in ``out_dir``.

A body in **another material of the head's own mesh** (Daz's and Character Creator's Face and Torso,
a bust's Skin and Neck, each with its own image: ``GenerateParams.material_textures``) is matched the
same way: ``in_material`` picks, of the other materials with an image, the one that meets the face's
below the mouth the most (the neck; not the eyes, lashes, teeth or mouth, which meet it higher).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .body import RING_IOD, move_skin, read_base, ring_tone, tone_mode, warn_neck_step
from .imaging import sample_uv, to_lab
from .mesh import Mesh, compute_normals, load_mesh, mapped_triangles, surface_points
from .protocol import AvatarTexError, ErrorCode, GenerateParams

SEAM_GAP_IOD = 0.05
"""Distance between the two surfaces, in eye distances, under which the head's surface lies on the
seam (a body's neck ring welded to the head's in the file: 0; modelled apart, a few hundredths)."""
NEAR_IOD = RING_IOD + SEAM_GAP_IOD
"""Reach from the head's surface within which the body's triangles are sampled at all."""
SAMPLES_PER_IOD2 = 1500.0
"""Surface samples per square eye distance, on both meshes near the seam."""
MIN_SEAM_SAMPLES = 20
"""Samples of the head's surface on the seam under which the two do not meet."""
BELOW_MOUTH_IOD = 0.5
"""How far below the mouth, in eye distances, the vertices of another material where it meets the
face's must lie for it to be a body (``in_material``): the neck is a whole eye distance or more below
it; the lips' inner edge (a mouth's or teeth's material) is at its height, lashes and eyes above."""
MIN_MEETING_VERTICES = 8
"""Vertices of another material near the face's, below the mouth, under which it is no body."""


@dataclass
class Rings:
    """The surfaces beside the seam: UVs where each side's skin tone is read."""

    head_uv: np.ndarray
    """(N, 2) UVs of the head's surface within ``RING_IOD`` of the seam."""
    body_uv: np.ndarray
    """(M, 2) UVs of the body's surface within ``RING_IOD`` of the seam."""


def _uv_at(uvs: np.ndarray, tri: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """UVs of surface points (``surface_points``), wrapped into the unit square (one UV tile)."""
    return np.mod(np.einsum("nk,nkd->nd", weights, uvs[tri]), 1.0)


def find_rings(head: Mesh, textured: np.ndarray, body: Mesh, iod: float) -> tuple[Rings | None, float]:
    """The rings beside the seam between the head's ``textured`` triangles and the body (both in the
    same coordinates, ``iod`` mesh units an eye distance). Returns them (None where the two do not
    meet) and the nearest the body comes to the head, in eye distances."""
    from scipy.spatial import cKDTree

    density = SAMPLES_PER_IOD2 / (iod * iod)
    head_tris = head.triangles[textured]
    head_tree = cKDTree(head.positions[np.unique(head_tris)])
    # Only the body near the head is sampled (a whole character is hundreds of square eye distances).
    near_vertex = head_tree.query(body.positions, distance_upper_bound=NEAR_IOD * iod)[0] < np.inf
    body_tris = np.flatnonzero(near_vertex[body.triangles].any(axis=1))
    if len(body_tris) == 0:
        gap = float(head_tree.query(body.positions)[0].min()) / iod
        return None, gap
    head_points, head_tri, head_w = surface_points(head.positions, head_tris, density)
    body_points, body_tri, body_w = surface_points(body.positions, body.triangles[body_tris], density, seed=1)
    body_tree = cKDTree(body_points)
    gap_to_body = body_tree.query(head_points)[0]
    seam = gap_to_body < SEAM_GAP_IOD * iod
    nearest = float(gap_to_body.min()) / iod if len(gap_to_body) else float("inf")
    if seam.sum() < MIN_SEAM_SAMPLES:
        return None, nearest
    seam_tree = cKDTree(head_points[seam])
    head_ring = seam_tree.query(head_points)[0] < RING_IOD * iod
    body_ring = seam_tree.query(body_points)[0] < RING_IOD * iod
    # The body's neck often runs on up inside the head's (hidden, its texture anything): only the
    # body's surface outside the head's shows, and is read.
    normals = head.normals if head.normals is not None else compute_normals(head.positions, head.triangles)
    _, nearest_head = cKDTree(head_points).query(body_points[body_ring])
    facing = np.einsum("nk,nkd->nd", head_w[nearest_head], normals[head_tris[head_tri[nearest_head]]])
    outside = np.einsum("nd,nd->n", body_points[body_ring] - head_points[nearest_head], facing)
    body_ring[np.flatnonzero(body_ring)[outside < -SEAM_GAP_IOD * iod]] = False
    head_uv = _uv_at(head.uvs[textured], head_tri[head_ring], head_w[head_ring])
    body_uv = _uv_at(body.uvs[body_tris], body_tri[body_ring], body_w[body_ring])
    return Rings(head_uv, body_uv), nearest


def _tone(texture: np.ndarray, uv: np.ndarray) -> np.ndarray | None:
    """The skin tone (CIELAB) of a float texture at the ring's UVs, None with too few of them."""
    if len(uv) < 8:
        return None
    return ring_tone(to_lab(sample_uv(texture[..., :3], uv)))


def body_texture_name(params: GenerateParams) -> str:
    """The file the toned copy of the body's image is written to, in ``out_dir``: the head texture's
    name with ``_body`` (``texture.png`` -> ``texture_body.png``)."""
    return f"{Path(params.texture_name).stem}_body.png"


@dataclass
class SeparateBody:
    """The request's body of its own, read."""

    mesh: Mesh
    """In its file's coordinates (the head mesh file's)."""
    image: np.ndarray
    """Its base-colour image as read (uint8 or uint16, its own channels)."""


def _colour(image: np.ndarray) -> np.ndarray:
    """A stored image's colour (uint8 or uint16, ``read_base``) as float32 RGB 0..1."""
    return image[..., :3].astype(np.float32) / float(np.iinfo(image.dtype).max)


def _other_materials(whole: Mesh, textures: Sequence[str], skip: tuple[int, ...]):
    """(material, its triangles' indices) of ``whole``'s materials with an image in ``textures``
    (by material), triangles and a UV map, but those in ``skip``."""
    for material, path in enumerate(textures):
        chosen = np.flatnonzero(whole.parts == material)
        # A part read without a UV map (its UVs NaN) shows no image.
        if path and material not in skip and len(chosen) > 0 and mapped_triangles(whole.uvs[chosen]).all():
            yield material, chosen


def in_material(
    whole: Mesh,
    face: np.ndarray,
    textures: Sequence[str],
    iod: float,
    up: np.ndarray,
    mouth_height: float,
) -> tuple[int, SeparateBody] | None:
    """The body in another material of the head's own mesh, and its image (``GenerateParams.
    material_textures``, by material of ``whole.parts``): of the materials with an image other than
    the face's (``face``: indices of the face's triangles), the one with the most vertices within
    ``NEAR_IOD`` of the face's and ``BELOW_MOUTH_IOD`` below the mouth (``mouth_height`` along
    ``up``, in ``whole``'s coordinates, ``iod`` units an eye distance). None where none meets it so."""
    from scipy.spatial import cKDTree

    if whole.parts is None or len(face) == 0:
        return None
    face_material = int(np.bincount(whole.parts[face]).argmax())
    face_tree = cKDTree(whole.positions[np.unique(whole.triangles[face])])
    best, best_count = None, MIN_MEETING_VERTICES - 1
    for material, chosen in _other_materials(whole, textures, (face_material,)):
        vertices = whole.positions[np.unique(whole.triangles[chosen])]
        near = face_tree.query(vertices, distance_upper_bound=NEAR_IOD * iod)[0] < np.inf
        low = vertices @ np.asarray(up, np.float64) < mouth_height - BELOW_MOUTH_IOD * iod
        count = int((near & low).sum())
        if count > best_count:
            best, best_count = (material, chosen), count
    if best is None:
        return None
    material, chosen = best
    piece = Mesh(whole.positions, whole.triangles[chosen], whole.uvs[chosen], name=whole.part_name(material))
    return material, SeparateBody(piece, read_base(textures[material]))


def skin_beyond(
    whole: Mesh, body: SeparateBody, material: int, textures: Sequence[str], face_material: int, iod: float
) -> list[int]:
    """The other materials with an image (not the face's) into which the body material's skin runs on
    across a seam (Daz's Torso into its Arms and Legs): where they meet, the other side's tone is skin
    (``body.plausible_skin``) within ``body.SKIN_DELTA_E``'s far bound of the body's own there. A
    shirt or trousers in a material of the mesh's are not."""
    from .body import SKIN_DELTA_E, plausible_skin

    body_tris = np.flatnonzero(whole.parts == material)
    base = _colour(body.image)
    found = []
    for other, chosen in _other_materials(whole, textures, (material, face_material)):
        piece = Mesh(whole.positions, whole.triangles[chosen], whole.uvs[chosen])
        rings, _gap = find_rings(whole, body_tris, piece, iod)
        if rings is None:
            continue
        theirs = _tone(_colour(read_base(textures[other])), rings.body_uv)
        ours = _tone(base, rings.head_uv)
        if theirs is None or ours is None or not plausible_skin(theirs):
            continue
        if float(np.linalg.norm(theirs - ours)) < SKIN_DELTA_E[1]:
            found.append(other)
    return found


def load(params: GenerateParams) -> SeparateBody | None:
    """The request's ``body_mesh`` and ``body_texture``, read before the work (typed errors as for the
    head's mesh and a base texture; the ``material_textures`` that are not files said too); None
    without them."""
    missing = [path for path in params.material_textures if path and not Path(path).is_file()]
    if missing:
        raise AvatarTexError(
            ErrorCode.BASE_TEXTURE_UNREADABLE,
            f"The material texture {missing[0]!r} cannot be used: no such file.",
            'Send each material\'s base-colour image file (PNG, JPEG, TIFF), or "" for a material '
            "without one.",
        )
    if not params.body_mesh:
        return None
    return SeparateBody(load_mesh(params.body_mesh), read_base(params.body_texture))


def match(
    head_mesh: Mesh,
    textured: np.ndarray,
    to_head: Any,
    iod: float,
    texture: np.ndarray,
    separate: SeparateBody,
    params: GenerateParams,
    warnings: list[str],
    source: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Match the head's and the separate body's skin across the neck.

    ``head_mesh``'s ``textured`` triangles wear ``texture`` (float 0..1, one UV tile); ``to_head``
    maps the body file's points into ``head_mesh``'s coordinates, ``iod`` mesh units an eye distance.
    ``source`` is the report's word on where the body is (the request's ``body_mesh`` and
    ``body_texture`` when None; ``in_material``'s material otherwise).
    Returns the head texture (toned with ``face_to_body``), the body's toned image (its own dtype and
    channels; None unless ``body_to_face`` changed it) and the report's ``body``.
    """
    body = separate.mesh
    body = Mesh(np.asarray(to_head(body.positions), np.float32), body.triangles, body.uvs, name=body.name)
    texture = np.asarray(texture)
    if np.issubdtype(texture.dtype, np.integer):
        texture = texture.astype(np.float32) / np.iinfo(texture.dtype).max
    base_raw = separate.image
    peak = float(np.iinfo(base_raw.dtype).max)
    base = _colour(base_raw)
    if source is None:
        source = {
            "kind": "separate",
            "body_mesh": str(params.body_mesh),
            "body_texture": str(params.body_texture),
        }
    report: dict[str, Any] = source | {"tone_match": "none", "written": None}
    rings, gap = find_rings(head_mesh, textured, body, iod)
    if rings is None:
        hint = (
            "Give the body object the head sits on, in the same place as in the scene"
            if report["kind"] == "separate"
            else "The face's and the body's materials are matched where their surfaces meet"
        )
        warnings.append(
            f"the body {'mesh' if report['kind'] == 'separate' else 'material'} does not meet the head "
            f"(its nearest point {gap:.2f} eye distances from the head's surface): no tone match across "
            f"the neck. {hint}"
        )
        report.update(gap_iod=round(gap, 3), summary=summary(report))
        return texture, None, report
    face_tone, body_tone = _tone(texture, rings.head_uv), _tone(base, rings.body_uv)
    mode = tone_mode(params.tone_match, face_tone, body_tone, warnings, "the seam")
    before = None if face_tone is None or body_tone is None else float(np.linalg.norm(face_tone - body_tone))
    toned_body, toned_texels = None, 0
    if mode == "body_to_face":
        body_float, moved = move_skin(base, body_tone, face_tone - body_tone)
        toned_texels = int(moved.sum())
        toned_body = base_raw.copy()
        toned_body[moved, :3] = (np.clip(body_float[moved], 0.0, 1.0) * peak + 0.5).astype(base_raw.dtype)
        body_tone = _tone(body_float, rings.body_uv)
    elif mode == "face_to_body":
        head, _ = move_skin(np.asarray(texture[..., :3], np.float32), face_tone, body_tone - face_tone)
        texture = np.concatenate([head, texture[..., 3:]], axis=-1) if texture.shape[-1] > 3 else head
        face_tone = _tone(texture, rings.head_uv)
    after = None if face_tone is None or body_tone is None else float(np.linalg.norm(face_tone - body_tone))
    if after is not None:
        warn_neck_step(after, params.tone_match, warnings)
    report.update(
        tone_match=mode,
        toned_body_texels=toned_texels,
        neck_delta_e_before=None if before is None else round(before, 3),
        neck_delta_e=None if after is None else round(after, 3),
    )
    report["summary"] = summary(report)
    return texture, toned_body, report


def summary(report: dict[str, Any]) -> str:
    """What was done across the neck to a separate body, in a sentence (the CLI and the panel)."""
    body = Path(report["body_texture"]).name
    who = "a separate body" if report["kind"] == "separate" else f"the body's material '{report['material']}'"
    if "gap_iod" in report:
        return f"{who}: it does not meet the head, so {body} was left as it was"
    before, after = report.get("neck_delta_e_before"), report.get("neck_delta_e")
    step = f" (neck ΔE {before:.0f} → {after:.1f})" if before is not None and after is not None else ""
    if report["tone_match"] == "body_to_face":
        return f"{who}: its skin matched to the face's in a copy of {body}{step}"
    if report["tone_match"] == "face_to_body":
        return f"{who}: the head's skin matched to the body's ({body}){step}"
    return f"{who}: {body} left as it was" + (f" (neck ΔE {after:.0f})" if after is not None else "")
