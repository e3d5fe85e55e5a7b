"""Atlases and portrait-backed textures shared by the classic-engine tests.

(Kept out of ``conftest.py`` so that it does not collide with other test modules' fixtures; the
tests import it directly, pytest puts ``tests/`` on ``sys.path``.)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from avatartex import atlas as atlas_mod
from avatartex.engines.base import AtlasTexture, StageContext
from avatartex.styles import get_style

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
HEAD_GLB = ASSETS / "heads" / "lee_perry_smith.glb"

# Landmarks of the Lee Perry-Smith scan (mesh space, Y up, face towards +Z), read off its depth
# profile: eye sockets at x = +-0.6, y = 1.6; nose tip (0, 1.1, 2.59); mouth at y = 0.25.
HEAD_LANDMARKS = {
    "right_eye": (-0.6, 1.6, 1.95),
    "left_eye": (0.6, 1.6, 1.95),
    "mouth": (0.0, 0.25, 2.2),
    "nose_tip": (0.0, 1.1, 2.59),
}

# skimage.data.astronaut(): eye centres at (202.5, 102.5) and (246, 102.5) pixels.
ASTRONAUT_EYES_MID = (224.0, 102.5)
ASTRONAUT_EYE_DISTANCE = 43.5


@lru_cache(maxsize=4)
def sphere_atlas(size: int) -> atlas_mod.AtlasGeometry:
    """Atlas of a unit icosphere in the identity head frame (normals = directions)."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=5)
    frame = atlas_mod.HeadFrame(np.zeros(3), np.eye(3), 1.0)
    return atlas_mod.build_atlas(
        np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.vertex_normals), frame, size
    )


@lru_cache(maxsize=4)
def _head_atlas(size: int) -> atlas_mod.AtlasGeometry:
    import trimesh

    mesh = trimesh.load(HEAD_GLB, force="mesh")
    frame = atlas_mod.HeadFrame.from_landmarks(**{k: np.array(v) for k, v in HEAD_LANDMARKS.items()})
    return atlas_mod.build_atlas(
        np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.vertex_normals), frame, size
    )


def head_atlas(size: int) -> atlas_mod.AtlasGeometry:
    """Atlas of the scanned head; skips loudly when ``../shared`` is absent."""
    if not HEAD_GLB.exists():
        pytest.skip(f"../shared absent: {HEAD_GLB} not found (scanned head for realistic tests)")
    return _head_atlas(size)


def astronaut() -> np.ndarray:
    """skimage's astronaut portrait, float32 sRGB 0..1."""
    import skimage.data

    return skimage.data.astronaut().astype(np.float32) / 255


def frontal_texture(
    geometry: atlas_mod.AtlasGeometry, portrait: np.ndarray
) -> tuple[AtlasTexture, np.ndarray]:
    """A portrait-backed atlas texture from an orthographic frontal projection of ``portrait``.

    Confidence falls off with the angle between the normal and the view direction (+z) and is 0
    on the back; returns the texture and the portrait coordinates (NaN where unseen).
    """
    head = geometry.frame.to_head(geometry.positions).astype(np.float32)
    cx, cy = ASTRONAUT_EYES_MID
    px = cx + ASTRONAUT_EYE_DISTANCE * head[..., 0]
    py = cy - ASTRONAUT_EYE_DISTANCE * (head[..., 1] + 0.1)
    facing = geometry.normals[..., 2]
    seen = geometry.mask & (facing > 0.15)
    t = np.clip((facing - 0.15) / 0.55, 0, 1)
    conf = np.where(seen, t * t * (3 - 2 * t), 0).astype(np.float32)
    coords = np.where(seen[..., None], np.stack([px, py], -1), np.nan).astype(np.float32)
    color = cv2.remap(portrait, px - 0.5, py - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    color = np.where(seen[..., None], color, 0).astype(np.float32)
    return AtlasTexture(color, conf), coords


def make_ctx(
    geometry: atlas_mod.AtlasGeometry,
    style: str = "photoreal",
    portrait: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    seed: int = 0,
    strength: float = 1.0,
) -> StageContext:
    """A stage context; without a portrait, a grey one and all-NaN coordinates."""
    s = geometry.size
    if portrait is None:
        portrait = np.full((64, 64, 3), 0.5, np.float32)
    if coords is None:
        coords = np.full((s, s, 2), np.nan, np.float32)
    return StageContext(
        atlas=geometry,
        portrait=portrait,
        portrait_coords=coords,
        style=get_style(style),
        seed=seed,
        strength=strength,
    )
