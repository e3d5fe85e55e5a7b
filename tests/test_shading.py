"""The shading models the classic de-lighting divides out (backend/avatartex/shading.py)."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.shading import fit_lights, fit_shading, sh_eval


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
