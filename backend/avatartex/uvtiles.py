"""UV tiles: which unit square of UV space each triangle lies in, and the UDIM number of that square.

Scanned and film heads often lie outside the 0..1 square: in tile 1002 beside a body in 1001, or
spread over several tiles (the face in 1001, the back of the head in 1002). Blender, Substance and
Mari number the squares as UDIM tiles: ``1001 + u + 10 v`` for the square whose lower-left corner
is ``(u, v)``, ``0 <= u < 10``, ``v >= 0``. The bake works in one square at a time
(``in_tile``: that tile's triangles moved into 0..1, every other triangle left out), so each tile
gets its own image: ``texture.png`` when the textured triangles lie in one tile (any tile: an image
shown with Blender's default *Repeat* extension reads the same texels there), and
``texture.<UDIM>.png`` per tile when they lie in several (the UDIM file names Blender's tiled
images, Substance and Mari read).

A triangle belongs to the tile of its centroid; one that crosses a tile's edge (rare: UDIM layouts
keep islands inside their tile) is drawn in that tile and clipped at its edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .mesh import mapped_triangles
from .protocol import AvatarTexError, ErrorCode

UDIM_FIRST = 1001
"""The UDIM number of the 0..1 square."""
UDIM_COLUMNS = 10
"""Tiles per UDIM row."""
UDIM_TOKEN = "<UDIM>"
"""What stands for the tile number in a file name (Blender's, Mari's): ``texture.<UDIM>.png``."""


def triangle_tiles(uvs: np.ndarray) -> np.ndarray:
    """(T, 2) int: the (u, v) square of each triangle's centroid (``uvs``: (T, 3, 2)).

    A triangle lying on a square's edge line (every corner on it: a zero-area one, which a planar
    unwrap scaled to 0..1 leaves at v = 1 for the faces along the projection) floors into the square
    beyond the line; where no other triangle holds that square and one holds the square before, it
    is that one's. A head in tile 1001 was written as tiles 1001 and 1011, no texture.png, unsaid."""
    corners = np.nan_to_num(np.asarray(uvs, np.float64))
    squares = np.floor(corners.mean(axis=1)).astype(np.int64)
    for axis in (0, 1):
        on_line = np.all(corners[:, :, axis] == squares[:, None, axis], axis=1)
        if not on_line.any() or on_line.all():
            continue
        # A square as one number (exact: tile numbers are far below 2^53), for fast set tests.
        held = np.unique(_square_keys(squares[~on_line]))
        line = squares[on_line]
        before = line.copy()
        before[:, axis] -= 1
        take = np.isin(_square_keys(before), held) & ~np.isin(_square_keys(line), held)
        squares[np.flatnonzero(on_line)[take]] = before[take]
    return squares


def _square_keys(squares: np.ndarray) -> np.ndarray:
    """(N,) complex: each (u, v) square as u + v·i, one sortable number."""
    return squares[:, 0].astype(np.float64) + 1j * squares[:, 1].astype(np.float64)


def tiles(uvs: np.ndarray, triangles: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The (u, v) squares holding ``triangles`` (all when ``None``), in UDIM order (rows of ``v``);
    triangles with a non-finite UV hold none."""
    squares = triangle_tiles(uvs)
    mapped = mapped_triangles(uvs)  # a part without UVs is in no square
    if triangles is not None:
        squares, mapped = squares[triangles], mapped[triangles]
    squares = squares[mapped]
    found = {(int(u), int(v)) for u, v in np.unique(squares, axis=0)}
    return sorted(found, key=lambda t: (t[1], t[0]))


def udim(tile: tuple[int, int]) -> int | None:
    """The UDIM number of a square, or ``None`` for one outside the UDIM grid (negative, or u >= 10)."""
    u, v = tile
    if 0 <= u < UDIM_COLUMNS and v >= 0:
        return UDIM_FIRST + u + UDIM_COLUMNS * v
    return None


def in_tile(uvs: np.ndarray, tile: tuple[int, int], triangles: np.ndarray | None = None) -> np.ndarray:
    """(T, 3, 2) float32 UVs with the triangles of ``tile`` (of ``triangles``, indices, when given)
    moved into 0..1 and every other triangle NaN (the rasteriser skips non-finite triangles). The
    0..1 square of a mesh all in it comes back unchanged."""
    uvs = np.asarray(uvs, np.float32)
    mine = (triangle_tiles(uvs) == np.asarray(tile)).all(axis=1)
    if triangles is not None and len(triangles) < len(uvs):
        chosen = np.zeros(len(uvs), bool)
        chosen[triangles] = True
        mine &= chosen
    if mine.all() and tile == (0, 0):
        return uvs
    out = np.full(uvs.shape, np.nan, np.float32)
    out[mine] = uvs[mine] - np.asarray(tile, np.float32)
    return out


def tile_file(name: str, tile: tuple[int, int]) -> str:
    """``texture.png`` -> ``texture.1002.png``: the file of one tile of a texture over several."""
    number = udim(tile)
    path = Path(name)
    return f"{path.stem}.{number}{path.suffix}"


def tile_pattern(path: str) -> str:
    """``out/texture.1001.png`` -> ``out/texture.<UDIM>.png``."""
    p = Path(path)
    stem, _, number = p.stem.rpartition(".")
    if not stem or not number.isdigit():
        return path
    return str(p.with_name(f"{stem}.{UDIM_TOKEN}{p.suffix}"))


def tile_files(pattern: str, missing: str = ErrorCode.PORTRAIT_MISSING) -> dict[tuple[int, int], Path]:
    """The files a ``texture.<UDIM>.png`` pattern names, by UV square; a typed error (code
    ``missing``) when none exist."""
    p = Path(pattern)
    head, _, tail = p.name.partition(UDIM_TOKEN)
    found = {}
    for candidate in sorted(p.parent.glob(f"{head}[0-9][0-9][0-9][0-9]{tail}")):
        number = int(candidate.name[len(head) : len(head) + 4]) - UDIM_FIRST
        if number >= 0:
            found[(number % UDIM_COLUMNS, number // UDIM_COLUMNS)] = candidate
    if not found:
        raise AvatarTexError(
            missing,
            f"No file matches {pattern}.",
            "Give the tiles' folder and name as generate wrote them, e.g. out/texture.<UDIM>.png.",
        )
    return found


def describe(squares: list[tuple[int, int]]) -> str:
    """``1001, 1002`` (or ``(u, v)`` squares outside the UDIM grid) for messages."""
    return ", ".join(str(udim(t)) if udim(t) is not None else f"({t[0]}, {t[1]})" for t in squares)


MIN_HEAD_TEXELS = 128
"""Texels on a side of a square as large as the textured UV islands' area, under which the
texture's detail is lost and the request is told so (``small_islands_warning``): an eye then gets a
few texels. A head filling half of a 1024² square has about 720; a full-body character's head
sharing a 1024² square with the body about 230; islands scaled down to a hundredth, 7."""
MIN_ISLANDS_SHARE = 0.02
"""... and the share of the UV square the islands cover under which that is the layout's doing, not
the size asked for (a 128² texture of a head that fills its square is what was asked)."""


def uv_area(uvs: np.ndarray, triangles: np.ndarray) -> float:
    """The area in UV space (squares of it) of ``triangles`` (indices) of ``uvs`` (T, 3, 2), summed
    over the tiles; a triangle with a non-finite UV counts none."""
    corners = np.asarray(uvs, np.float64)[triangles]
    edges = corners[:, 1:] - corners[:, :1]
    return 0.5 * float(np.abs(np.nan_to_num(np.cross(edges[:, 0], edges[:, 1]))).sum())


def small_islands_warning(area: float, size: int) -> list[str]:
    """A warning when UV islands of ``area`` (``uv_area``: the textured triangles') cover under
    ``MIN_HEAD_TEXELS`` squared texels of a ``size`` texture and under ``MIN_ISLANDS_SHARE`` of the
    square."""
    side = np.sqrt(area) * size
    if side >= MIN_HEAD_TEXELS or area >= MIN_ISLANDS_SHARE:
        return []
    return [
        f"the head's UV islands cover only about {side:.0f}x{side:.0f} texels of the {size}x{size} "
        f"texture ({area:.2%} of its square): its eyes and lips get a few texels each; scale the UV "
        "islands up to fill the 0-1 square (Blender: UV Editor, select all, S), or ask for a larger texture"
    ]
