"""The shading models the classic de-lighting divides out (backend/avatartex/shading.py)."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.shading import (
    DirectionalLights,
    as_photographed,
    fit_detail_light,
    fit_lights,
    fit_shading,
    sh_eval,
)


def _face_normals(n: int, seed: int = 0) -> np.ndarray:
    """Unit normals of the front half of a head (the side a portrait sees), z towards the camera."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2]) + 0.2
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("direction", [(1.0, 0.25, 0.45), (0.1, -0.85, 0.55), (1.0, 0.1, -0.12)])
def test_lights_recover_a_key_light_and_beat_sh_at_the_terminator(direction) -> None:
    normals = _face_normals(6000)
    light = np.asarray(direction) / np.linalg.norm(direction)
    truth = 0.2 + 0.9 * np.clip(normals @ light, 0, None)
    rng = np.random.default_rng(1)
    albedo = np.where(rng.random(len(truth)) < 0.05, 0.3, 1.0)  # brows, lips: outliers to the fit
    observed = truth * albedo * (1 + 0.02 * rng.normal(size=len(truth)))
    sh, weights = fit_shading(observed, normals, np.ones(len(truth)))
    lights, mad = fit_lights(observed, normals, weights, sh)
    found = lights.lights[0] / np.linalg.norm(lights.lights[0])
    assert np.degrees(np.arccos(np.clip(found @ light, -1, 1))) < 4.0
    assert abs(np.linalg.norm(lights.lights[0]) - 0.9) < 0.08 and abs(lights.ambient - 0.2) < 0.05
    # Where the key light grazes or is gone, SH rings; the lights model does not.
    dark = normals @ light < 0.15
    sh_error = np.abs(sh_eval(normals, sh) - truth)[dark].mean()
    lights_error = np.abs(lights(normals) - truth)[dark].mean()
    assert lights_error < 0.5 * sh_error, (lights_error, sh_error)
    assert mad < 0.05


def _creased_face(size: int = 160, waves: tuple[int, int] = (9, 7)) -> np.ndarray:
    """(size, size, 3) unit normals of a bulging surface with creases a few texels wide (a height
    field: a dome plus narrow ridges and grooves, ``waves`` of them across in x and y), z towards
    the camera."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    height = 0.6 * np.sqrt(np.clip(0.5 - x * x - y * y, 0, None))
    height += 0.012 * np.sin(2 * np.pi * waves[0] * x) * np.cos(2 * np.pi * waves[1] * y)
    gy, gx = np.gradient(height, 1.0 / size)
    normals = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    return (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).astype(np.float32)


def test_detail_refit_recovers_the_key_light_that_a_face_sized_albedo_hides() -> None:
    normals = _creased_face()
    light = np.array([0.0, 0.96, 0.28])
    ambient, key = 0.25, 0.9
    shading = ambient + key * np.clip(normals @ light, 0, None)
    # A paler forehead and darker chin: the albedo grows where the light does, face-sized.
    rows = np.linspace(1.15, 0.85, normals.shape[0])[:, None]
    observed = shading * rows
    weight = np.ones(shading.shape, np.float32)
    flat = normals.reshape(-1, 3)
    sh, weights = fit_shading(observed.reshape(-1), flat, weight.reshape(-1))
    coarse, _ = fit_lights(observed.reshape(-1), flat, weights, sh)
    refined = fit_detail_light(coarse, observed, normals, weight, sigma=6.0).lights

    def ratio(model: DirectionalLights) -> np.ndarray:
        return model.lights[0] / model.ambient

    truth = key * light / ambient
    # The luminance fit takes part of the albedo's slope for light (it would pass no test below)...
    assert np.linalg.norm(ratio(coarse) - truth) > 0.2 * np.linalg.norm(truth), ratio(coarse)
    # ...the band of the creases gives the light back.
    assert np.linalg.norm(ratio(refined) - truth) < 0.05 * np.linalg.norm(truth), (ratio(refined), truth)


def test_detail_fit_says_whether_the_mesh_creases_are_the_photo_ones() -> None:
    # The same dome, its creases the photo's (the photographed face) or others (another face: a
    # sculpture, another person's scan).
    photographed = _creased_face()
    light = np.array([0.7, 0.3, 0.65])
    observed = 0.25 + 0.8 * np.clip(photographed @ light / np.linalg.norm(light), 0, None)
    start = DirectionalLights(0.25, (0.6 * light / np.linalg.norm(light)).reshape(1, 3).astype(np.float32))
    weight = np.ones(observed.shape, np.float32)
    same = fit_detail_light(start, observed, photographed, weight, sigma=6.0)
    other = fit_detail_light(start, observed, _creased_face(waves=(5, 12)), weight, sigma=6.0)
    assert same.explained > 0.9, same.explained
    assert other.explained < 0.15, other.explained
    # Another face's creases do not match the photo's band at any strength: the fit flattens the
    # light (the reason the de-lighting then keeps the luminance fit's light).
    assert np.linalg.norm(other.lights.lights[0]) < 0.6 * np.linalg.norm(same.lights.lights[0])


def test_detail_refit_restarts_from_a_light_that_lights_nothing() -> None:
    # A light from behind lights no texel of the face: no gradient to follow from there.
    normals = _creased_face()
    light = np.array([0.6, 0.3, 0.74])
    observed = 0.2 + 0.8 * np.clip(normals @ light, 0, None)
    dead = DirectionalLights(0.2, np.array([[0.0, 0.0, -0.8]], np.float32))
    refined = fit_detail_light(dead, observed, normals, np.ones(observed.shape), sigma=6.0).lights
    truth = 4.0 * light
    assert np.linalg.norm(refined.lights[0] / refined.ambient - truth) < 0.05 * np.linalg.norm(truth)


def test_detail_refit_leaves_a_model_alone_without_skin_to_fit() -> None:
    model = DirectionalLights(0.3, np.array([[0.0, 0.5, 0.5]], np.float32))
    normals = _creased_face(40)
    out = fit_detail_light(model, np.ones((40, 40)), normals, np.zeros((40, 40)), sigma=4.0)
    assert out.lights is model and out.explained == 0.0


def test_as_photographed_averages_texels_within_a_photo_pixel() -> None:
    # Atlas four times finer than the photo: a crease pattern alternating 1, 3 texel by texel
    # reaches the photo as its average; texels one pixel apart keep their own values.
    xs = 10.0 + np.arange(64) * 0.25
    coords = np.stack([xs, np.full_like(xs, 5.5)], axis=1)
    values = np.where(np.arange(64) % 2 == 0, 1.0, 3.0)
    seen = as_photographed(values, coords, (12, 40))
    assert np.allclose(seen[8:-8], 2.0, atol=0.05), seen[8:-8]
    sparse = np.stack([10.5 + 2.0 * np.arange(8), np.full(8, 5.5)], axis=1)
    own = np.arange(8, dtype=np.float64) + 1.0
    assert np.allclose(as_photographed(own, sparse, (12, 40)), own, atol=1e-5)
