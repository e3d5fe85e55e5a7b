"""Stage 3, neural: a low-strength img2img pass under the tile ControlNet, then the portrait's own
high-frequency detail (wavelet bands) is put back where the portrait sees the head.

Diffusion at low strength sharpens and unifies the texture but invents its own pores and loses moles
and freckles; the portrait's detail bands carry exactly those, so they are re-injected by confidence
(the seed papers' detail guidance, done as a post-step that cannot drift).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import atlas_filters
from ...imaging import resize, sample_image
from ..base import AtlasTexture, Stage, StageContext
from .config import NeuralConfig
from .pipelines import generator, join_prompt, load_repaint, step_callback, to_tensor, working_shape

WAVELET = "haar"
"""Haar keeps the detail compact (2x2 support), so it does not smear across the confidence border."""


def effective_steps(steps: int, strength: float) -> int:
    """Denoising steps diffusers' img2img actually runs for ``strength`` (0: none, i.e. identity)."""
    return min(int(steps * max(0.0, strength)), steps)


def inject_detail(image: np.ndarray, reference: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """Replace the ``levels`` finest wavelet detail bands of ``image`` by ``reference``'s, blended per
    texel by ``weight`` (0..1); the coarse approximation (colour, shading) of ``image`` is kept."""
    import pywt

    if levels <= 0 or not np.any(weight > 0):
        return image.astype(np.float32, copy=True)
    out = np.empty_like(image, dtype=np.float32)
    h, w = image.shape[:2]
    for ch in range(image.shape[2]):
        img_c = pywt.wavedec2(image[..., ch], WAVELET, mode="periodization", level=levels)
        ref_c = pywt.wavedec2(reference[..., ch], WAVELET, mode="periodization", level=levels)
        for i in range(1, levels + 1):
            bands_img, bands_ref = img_c[i], ref_c[i]
            bh, bw = bands_img[0].shape
            wl = resize(weight.astype(np.float32), bh, bw) if (bh, bw) != (h, w) else weight
            img_c[i] = tuple((1 - wl) * a + wl * b for a, b in zip(bands_img, bands_ref, strict=True))
        out[..., ch] = pywt.waverec2(img_c, WAVELET, mode="periodization")[:h, :w]
    return out


def repaint_atlas(
    color: np.ndarray,
    confidence: np.ndarray,
    band_rows: int,
    config: NeuralConfig,
    *,
    portrait: np.ndarray | None,
    portrait_coords: np.ndarray | None,
    prompt: str,
    negative_prompt: str = "",
    guidance_scale: float = 7.5,
    strength: float = 0.3,
    seed: int = 0,
    ctx: Any = None,
) -> np.ndarray:
    """Repaint an (S, S, 3) atlas at ``strength`` (0 returns it unchanged) and re-inject portrait detail."""
    steps = max(1, int(config.repaint_steps))
    if effective_steps(steps, strength) < 1:
        return color.astype(np.float32, copy=True)
    size = color.shape[0]
    pad = atlas_filters.seam_pad_width(size, config.seam_pad)
    pipe, native = load_repaint(config.repaint_model, config.controlnet_model, config)
    height, width = working_shape(size, pad, config.work_size or native)
    padded = atlas_filters.wrap_pad(color, band_rows, pad)
    image = resize(padded, height, width)
    if ctx is not None:
        ctx.check_cancel()
    total = effective_steps(steps, strength)
    result = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt or None,
        image=to_tensor(image),
        control_image=to_tensor(image),
        height=height,
        width=width,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        controlnet_conditioning_scale=config.controlnet_scale,
        generator=generator(seed),
        output_type="np",
        callback_on_step_end=step_callback(ctx, total, "repaint") if ctx is not None else None,
    ).images[0]
    # Keep only what the model changed, at the resolution it worked at: the input's own full-resolution
    # detail survives instead of being replaced by an upsampled copy.
    change = resize(result, size, size + 2 * pad) - resize(image, size, size + 2 * pad)
    out = color + atlas_filters.wrap_crop(change, size, band_rows, pad)
    if portrait is not None and portrait_coords is not None and config.detail_weight > 0:
        seen = np.isfinite(portrait_coords).all(axis=-1)
        reference = np.where(seen[..., None], sample_image(portrait, portrait_coords), 0.0)
        weight = np.clip(confidence * seen * config.detail_weight, 0.0, 1.0).astype(np.float32)
        out = inject_detail(out, reference, weight, int(config.detail_levels))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class NeuralRepaint(Stage):
    """Restore fine detail at low strength; strength 0 (style or request) returns the input unchanged."""

    name = "repaint"
    engine = "neural"

    def __init__(self, config: NeuralConfig | None = None) -> None:
        self.config = config or NeuralConfig()

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the repainted texture; the confidence map is passed on unchanged."""
        style = ctx.style
        strength = float(getattr(style, "repaint_strength", 0.3)) * float(ctx.strength)
        steps = max(1, int(self.config.repaint_steps))
        if effective_steps(steps, strength) < 1:
            ctx.passed[self.name] = (
                f"not run: strength {strength:.3g} of {steps} steps rounds to no denoising step, the "
                "texture went on unchanged (a higher --strength or more steps runs it)"
            )
            return AtlasTexture(texture.color.copy(), texture.confidence.copy())
        ctx.progress(0.0, "repaint: loading model")
        color = repaint_atlas(
            texture.color,
            ctx.photo_part(texture.confidence),
            int(getattr(ctx.atlas, "band_rows", 0)),
            self.config,
            portrait=ctx.portrait,
            portrait_coords=ctx.portrait_coords,
            prompt=join_prompt(getattr(style, "prompt", ""), ctx.prompt),
            negative_prompt=getattr(style, "negative_prompt", "") or "",
            guidance_scale=float(getattr(style, "guidance_scale", 7.5)),
            strength=strength,
            seed=ctx.seed,
            ctx=ctx,
        )
        ctx.progress(1.0, "repaint: done")
        return AtlasTexture(color, texture.confidence.copy())
