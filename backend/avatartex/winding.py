"""Faces wound one way: patches of a mesh turned inside out (flipped normals on part of it).

Every step reads a face's outside from its winding: the renders the landmarks are read from shade
it, the projection asks whether it faces the camera. A patch wound the other way (a cheek whose
normals an artist flipped by accident and never saw, since Blender draws both sides) got no photo at
all, a hard-edged hole filled with skin. ``outward`` makes the winding agree across every edge two
faces share (two faces sharing an edge walk it in opposite directions), each connected piece keeping
the winding of most of its surface.

``validate`` turns a mesh inside out as a whole every request (cheap); this runs once per mesh
(``pipeline.cache.HeadCache``): on the scanned head subdivided to 1.13M triangles it costs about
half a second, on 17.7k triangles a few milliseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse

from .mesh import triangle_areas


@njit(cache=True)
def _propagate(indptr: np.ndarray, indices: np.ndarray, opposite: np.ndarray, count: int):
    """Breadth first over the faces' edge adjacency: each face's flip (relative to the first face of
    its piece) and its piece's number. ``opposite[k]`` says whether the k-th adjacency keeps the
    orientation (its two faces already walk their edge in opposite directions)."""
    flip = np.zeros(count, np.bool_)
    piece = np.full(count, -1, np.int64)
    queue = np.empty(count, np.int64)
    pieces = 0
    for root in range(count):
        if piece[root] >= 0:
            continue
        piece[root] = pieces
        head, tail = 0, 1
        queue[0] = root
        while head < tail:
            face = queue[head]
            head += 1
            for k in range(indptr[face], indptr[face + 1]):
                other = indices[k]
                if piece[other] < 0:
                    piece[other] = pieces
                    flip[other] = flip[face] if opposite[k] else not flip[face]
                    queue[tail] = other
                    tail += 1
        pieces += 1
    return flip, piece


def outward(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray | None:
    """(T,) bool: the faces to turn so that the winding agrees across shared edges and every piece
    faces outwards; None when none needs turning. Edges shared by more than two faces (non-manifold)
    do not link their faces."""
    t = np.asarray(triangles, np.int64)
    count, n = len(t), int(t.max()) + 1 if len(t) else 0
    if count == 0:
        return None
    start = np.concatenate([t[:, 0], t[:, 1], t[:, 2]])
    end = np.concatenate([t[:, 1], t[:, 2], t[:, 0]])
    face = np.tile(np.arange(count), 3)
    key = np.minimum(start, end) * n + np.maximum(start, end)
    order = np.argsort(key, kind="stable")
    key, start, face = key[order], start[order], face[order]
    same = key[1:] == key[:-1]
    # Exactly two faces on the edge: the pair at i, i + 1 with no third before or after.
    pair = same.copy()
    pair[1:] &= ~same[:-1]
    pair[:-1] &= ~same[1:]
    i = np.flatnonzero(pair)
    a, b = face[i], face[i + 1]
    opposite = start[i] != start[i + 1]  # walked in opposite directions: the same orientation
    if opposite.all():
        return None  # wound one way already (the usual case: one sort, no graph)
    rows = np.concatenate([a, b])
    graph = sparse.csr_matrix(
        (np.concatenate([opposite, opposite]).astype(np.int8) + 1, (rows, np.concatenate([b, a]))),
        shape=(count, count),
    )
    graph.sum_duplicates()
    flip, piece = _propagate(graph.indptr, graph.indices, graph.data == 2, count)
    # Each piece keeps the winding of most of its surface: the faces wound against it turn. (Not
    # "outwards" per piece: a mouth's inside or an eye socket rightly faces its own middle; a mesh
    # inside out as a whole is ``mesh.validate``'s.)
    area = triangle_areas(np.asarray(positions, np.float64)[t])
    pieces = int(piece.max()) + 1
    majority = np.bincount(piece, np.where(flip, area, -area), pieces) > 0
    flip ^= majority[piece]
    return flip if flip.any() else None
