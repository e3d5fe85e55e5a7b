"""The mesh's own frame (backend/avatartex/meshframe.py) and what is measured in it: the surface grain
(noise.gradient_noise) and the ambient occlusion's sky (occlusion.vertex_occlusion). The same mesh
turned, scaled or moved in its file must give the same values at the same surface point (issue 8:
a rotated or rescaled copy of a mesh changes the texture by < 1/255)."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.demo_head import make_demo_head
from avatartex.mesh import compute_normals
from avatartex.meshframe import mesh_frame
from avatartex.noise import gradient_noise
from avatartex.occlusion import vertex_occlusion
from scipy.spatial.transform import Rotation


@pytest.fixture(scope="module")
def demo() -> tuple[np.ndarray, np.ndarray]:
    positions, triangles, _, _ = make_demo_head(48)
    return np.asarray(positions, np.float64), np.asarray(triangles, np.int64)


def _copy(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh turned 73 degrees about a slanted axis, scaled by 0.01 and moved, as a file holds it;
    and the turn (applied as ``points @ turn.T``)."""
    turn = Rotation.from_rotvec(
        np.radians(73.0) * np.array([0.3, 1.0, 0.5]) / np.linalg.norm([0.3, 1.0, 0.5])
    )
    matrix = turn.as_matrix()
    return 0.01 * positions @ matrix.T + np.array([3.0, -2.0, 1.0]), matrix


def _noisy_axes(matrix: np.ndarray, seed: int) -> np.ndarray:
    """The head frame's axes (rows) of the turned copy as the landmarks give them: turned with the
    mesh, and a few degrees off."""
    jitter = Rotation.from_rotvec(np.radians(4.0) * np.random.default_rng(seed).normal(size=3)).as_matrix()
    return (matrix @ jitter).T


def test_a_turned_scaled_and_moved_copy_has_the_same_frame_on_its_surface(demo) -> None:
    positions, triangles = demo
    moved, matrix = _copy(positions)
    original = mesh_frame(positions, triangles, np.eye(3))
    copy = mesh_frame(moved, triangles, _noisy_axes(matrix, 0))
    np.testing.assert_allclose(copy.to_frame(moved), original.to_frame(positions), atol=1e-5)
    assert copy.unit == pytest.approx(0.01 * original.unit, rel=1e-9)
    # A frame from the file's own axes (what the grain and the occlusion used) is not the same.
    assert (
        np.abs((moved - moved.mean(0)) / copy.unit - (positions - positions.mean(0)) / original.unit).max()
        > 0.1
    )


def test_a_turned_scaled_and_moved_copy_is_normalised_to_the_same_size_and_place(demo) -> None:
    """What every step works on (``normalized``): the copy is the upright mesh turned, nothing else:
    the same size and the same centre in those units. The bounding box's centre and half diagonal
    (what it was) change when the file turns the mesh: 2.8 % larger here, so the copy was another
    size for every tolerance and step of the registration (its texture 1.45/255 from the
    upright's with the same landmarks; 0.3 since)."""
    from avatartex.mesh import Mesh
    from avatartex.meshframe import normalized

    positions, triangles = demo
    moved, matrix = _copy(positions)
    upright, _, size = normalized(Mesh(positions.astype(np.float32), triangles.astype(np.int32), None))
    copy, centre, copy_size = normalized(Mesh(moved.astype(np.float32), triangles.astype(np.int32), None))
    np.testing.assert_allclose(copy.positions, upright.positions @ matrix.T, atol=5e-4)  # float32 file
    assert copy_size == pytest.approx(0.01 * size, rel=1e-4)
    np.testing.assert_allclose((moved.astype(np.float32) - centre) / copy_size, copy.positions, atol=1e-6)
    assert np.linalg.norm(copy.positions, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    half_diagonal = [np.linalg.norm(np.ptp(p, axis=0)) / 2 for p in (positions, moved / 0.01)]
    assert abs(half_diagonal[1] / half_diagonal[0] - 1) > 0.02


def test_the_frame_moves_with_the_points_it_is_read_for(demo) -> None:
    positions, triangles = demo
    frame = mesh_frame(positions, triangles, np.eye(3))
    centre, scale = np.array([0.2, -0.1, 0.4]), 2.5
    np.testing.assert_allclose(
        frame.moved(centre, scale).to_frame((positions - centre) / scale),
        frame.to_frame(positions),
        atol=1e-5,
    )


def test_noise_at_a_spacing_that_drifts_by_a_percent_keeps_its_pattern() -> None:
    """The eye distance the spacings are given in scatters by about a percent between copies of a
    mesh: the noise's rungs stay where they are and only their weights move."""
    points = np.random.default_rng(0).uniform(-3, 3, (20_000, 3)).astype(np.float32)
    spacings = np.array([0.013, 0.027, 0.061], np.float32)
    held = np.ones((len(points), 3), np.float32)
    first, drifted = np.empty_like(held), np.empty_like(held)
    gradient_noise(points, spacings, 5, held, first)
    gradient_noise(points, spacings * np.float32(1.015), 5, held, drifted)
    for k in range(3):
        assert np.corrcoef(first[:, k], drifted[:, k])[0, 1] > 0.99
    # A lattice scaled with the spacing (the noise before) is another pattern at that drift.
    plain = np.empty_like(held)
    gradient_noise(points * np.float32(1 / 1.015), spacings, 5, held, plain)
    assert abs(np.corrcoef(first[:, 0], plain[:, 0])[0, 1]) < 0.5


def test_noise_between_rungs_is_as_strong_as_on_one() -> None:
    points = np.random.default_rng(1).uniform(-3, 3, (40_000, 3)).astype(np.float32)
    held = np.ones((len(points), 2), np.float32)
    out = np.empty_like(held)
    gradient_noise(points, np.array([0.05, 0.05 * 2**0.25], np.float32), 2, held, out)  # on, between
    assert out[:, 1].std() == pytest.approx(out[:, 0].std(), rel=0.15)
    held[::2, 1] = 0.0
    gradient_noise(points, np.array([0.05, 0.05 * 2**0.25], np.float32), 2, held, out)
    assert not out[::2, 1].any() and out[1::2, 1].std() > 0


def test_noise_gradients_are_perlins_improved_noise_choice_by_the_hashs_bits() -> None:
    """The corners' gradients come from a table (``noise._GRADIENTS``) instead of branches on the
    hash: each of the sixteen choices must be Ken Perlin's (improved noise, 2002), as a sum of two
    signed offsets."""
    from avatartex import noise

    def perlin(h: int, x: float, y: float, z: float) -> float:
        u = x if h < 8 else y
        v = y if h < 4 else (x if h in (12, 14) else z)
        return (u if h & 1 == 0 else -u) + (v if h & 2 == 0 else -v)

    offsets = np.random.default_rng(3).uniform(-1, 1, (50, 3))
    for h in range(16):
        for x, y, z in offsets:
            g = noise._GRADIENTS[h]
            assert g[0] * x + g[1] * y + g[2] * z == perlin(h, x, y, z)


def test_occlusion_of_a_turned_copy_is_the_originals(demo) -> None:
    positions, triangles = demo
    moved, matrix = _copy(positions)
    normals = compute_normals(positions.astype(np.float32), triangles.astype(np.int32))
    moved_normals = compute_normals(moved.astype(np.float32), triangles.astype(np.int32))
    original = vertex_occlusion(
        positions, triangles, normals, frame=mesh_frame(positions, triangles, np.eye(3))
    )
    copy = vertex_occlusion(
        moved, triangles, moved_normals, frame=mesh_frame(moved, triangles, _noisy_axes(matrix, 1))
    )
    # Alike but for the float32 rounding of the copy's normals (a few depth tests flip at an edge).
    assert np.abs(copy - original).mean() < 1e-4 and np.abs(copy - original).max() < 0.01
    assert original.min() < 0.6  # the head has creases: the comparison means something
    # In the file's axes the 64 directions sample each vertex's sky differently on the copy.
    unframed = vertex_occlusion(moved, triangles, moved_normals)
    assert np.abs(unframed - vertex_occlusion(positions, triangles, normals)).mean() > 0.005


def test_a_turned_scaled_and_moved_copy_of_the_demo_head_gets_close_to_its_texture(
    astronaut_path, tmp_path
) -> None:
    """End to end, no hint: the demo head and a copy of it turned 73 degrees about a slanted axis,
    scaled by 0.01 and moved (as an importer may leave a file) get nearly the same texture from the
    astronaut at 1024: 0.31/255 apart on average. It was 1.65 with the grain drawn on the atlas's
    grid, the occlusion's sky in the file's axes and a fill far from the photo that followed its
    edge; 1.15 with the landmarks scattering by a hundredth of an eye distance between copies; and
    1.45 with the same landmarks on both while the steps worked on the mesh scaled by its bounding
    box, which turns with the file (session 36: ``meshframe.normalized``)."""
    from avatartex.mesh import Mesh, save_capture
    from avatartex.pipeline import Generator
    from avatartex.protocol import GenerateParams
    from PIL import Image

    positions, triangles, uvs, _ = make_demo_head(96)
    moved, _ = _copy(np.asarray(positions, np.float64))
    generator = Generator(cache_size=2)
    textures = []
    for name, points in (("upright", positions), ("copy", moved)):
        mesh = tmp_path / f"{name}.npz"
        save_capture(Mesh(np.asarray(points, np.float32), triangles, uvs), mesh)
        out = tmp_path / name
        generator.generate(
            GenerateParams(
                mesh=str(mesh), portrait=str(astronaut_path), out_dir=str(out), size=1024, engine="classic"
            )
        )
        textures.append(np.asarray(Image.open(out / "texture.png").convert("RGBA"), np.float64) / 255)
    covered = textures[0][..., 3] > 0
    apart = np.abs(textures[1][..., :3] - textures[0][..., :3]).mean(axis=-1)[covered].mean() * 255
    print(f"turned copy: {apart:.2f}/255")
    assert apart < 0.6
