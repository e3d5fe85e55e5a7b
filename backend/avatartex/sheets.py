"""Thin open sheets in a head's mesh: cards for hair, brows or lashes, a hat's brim.

Game and film heads often carry them in the head's own material: planes (two triangles, or a strip)
with an alpha-masked hair texture. The photo gives a head's skin, not hair cards, so they are painted
with the skin the atlas holds where they lie: pale bars above the brows, a patchwork of skin tones
over the scalp, a skin-coloured brim. What can be done is to say so, and how to keep them apart: their
own material (the texture goes to the face's), or hidden while generating.
"""

from __future__ import annotations

import numpy as np

from .mesh import triangle_areas, welded_parts

FLAT = 0.1
"""A part whose thinnest principal extent is under this share of its widest is flat (a card, a
strip, a brim; a mouth bag, an eyeball or a tooth is not)."""
SHEETS_AREA = 0.0005
"""Share of the mesh's area the thin open parts must cover together to be said (a few floating
triangles of a scan are not worth a word): a game head's two brow cards and a lash strip cover
0.09 % of it, 150 hair cards 27 %."""


def thin_open_parts(positions: np.ndarray, triangles: np.ndarray) -> tuple[int, float]:
    """How many of the mesh's connected parts (vertices at one position welded), the largest
    excepted, are open (an edge used by one triangle) and flat (``FLAT``), and their share of the
    mesh's area; (0, 0.0) where that share is under ``SHEETS_AREA``."""
    positions = np.asarray(positions, np.float64)
    triangles = np.asarray(triangles, np.int64)
    if len(triangles) < 4:
        return 0, 0.0
    tri, part, count = welded_parts(positions, triangles)
    if count < 2:
        return 0, 0.0
    n = int(tri.max()) + 1
    # A double-sided card (each face and its reversed copy, as game cards are made) is open all the
    # same: each face counted once, its edges are the card's border. Counted twice, every edge was
    # used by two faces and no double-sided card was found.
    once = np.zeros(len(tri), bool)
    once[np.unique(np.sort(tri, axis=1), axis=0, return_index=True)[1]] = True
    single = tri[once]
    edges = np.sort(np.concatenate([single[:, [0, 1]], single[:, [1, 2]], single[:, [2, 0]]]), axis=1)
    area = triangle_areas(positions[triangles]) * once
    part_area = np.bincount(part, area, count)
    keys, uses = np.unique(edges[:, 0] * n + edges[:, 1], return_counts=True)
    open_part = np.zeros(count, bool)
    vertex_part = np.zeros(n, np.int64)
    vertex_part[tri.reshape(-1)] = np.repeat(part, 3)
    open_part[vertex_part[keys[uses == 1] // n]] = True
    largest = int(np.argmax(part_area))
    found, covered = 0, 0.0
    for k in np.flatnonzero(open_part):
        if k == largest:
            continue
        points = positions[np.unique(triangles[part == k])]
        extents = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
        if len(points) >= 3 and extents[-1] < FLAT * max(float(extents[0]), 1e-12):
            found += 1
            covered += float(part_area[k])
    share = covered / max(float(area.sum()), 1e-12)
    return (found, share) if share >= SHEETS_AREA else (0, 0.0)


def sheets_warning(name: str, found: int, share: float) -> list[str]:
    """The artist's word on ``thin_open_parts``' finding; [] for none."""
    if not found:
        return []
    return [
        f"{found} thin open part{'s' if found > 1 else ''} of mesh '{name}' ({100 * share:.2g}% of its area: "
        "cards for hair, brows or lashes, a brim) were painted with what the texture holds where they "
        "lie (the skin, or with scalp=hair the hair); give them a material of their own (the texture "
        "goes to the face's) or hide them while generating"
    ]
