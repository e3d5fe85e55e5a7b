"""Helpers shared by the neural-engine tests (stand-in style, context, texture)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np


def make_style(**kw) -> SimpleNamespace:
    """A stand-in style preset with the attributes the neural stages read."""
    base = dict(
        name="test",
        prompt="skin",
        negative_prompt="",
        inpaint_strength=1.0,
        repaint_strength=0.5,
        guidance_scale=2.0,
        prior=None,
        classic={},
    )
    base.update(kw)
    return SimpleNamespace(**base)


def make_context(
    size: int = 48,
    band_rows: int = 36,
    seed: int = 0,
    strength: float = 1.0,
    style=None,
    cancel_after: int | None = None,
):
    """A StageContext over a stand-in atlas (size, band_rows, mask) with a synthetic portrait."""
    from avatartex.engines.base import StageContext
    from avatartex.protocol import Cancelled

    atlas = SimpleNamespace(size=size, band_rows=band_rows, mask=np.ones((size, size), bool))
    rng = np.random.default_rng(1)
    portrait = rng.random((64, 64, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    coords = np.stack([xx + 8.5, yy + 8.5], axis=-1)
    calls = {"cancel": 0, "progress": []}

    def check_cancel() -> None:
        calls["cancel"] += 1
        if cancel_after is not None and calls["cancel"] > cancel_after:
            raise Cancelled()

    ctx = StageContext(
        atlas=atlas,
        portrait=portrait,
        portrait_coords=coords,
        style=style or make_style(),
        seed=seed,
        strength=strength,
        progress=lambda f, m="": calls["progress"].append((f, m)),
        check_cancel=check_cancel,
    )
    ctx.calls = calls
    return ctx


def make_texture(size: int = 48, seed: int = 0):
    """A smooth random texture with a confidence map: 1 in a face-like block, 0 around, 0.5 on a ring."""
    from avatartex.engines.base import AtlasTexture

    rng = np.random.default_rng(seed)
    color = np.clip(0.5 + 0.2 * rng.standard_normal((size, size, 3)), 0, 1).astype(np.float32)
    confidence = np.zeros((size, size), np.float32)
    confidence[10:30, 14:34] = 0.5
    confidence[12:28, 16:32] = 1.0
    return AtlasTexture(color, confidence)


@contextlib.contextmanager
def count_calls(module):
    """Count forward calls of a torch module (e.g. the UNet) while the block runs."""
    counter = {"n": 0}

    def hook(*_args):
        counter["n"] += 1

    handle = module.register_forward_pre_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()
