"""Stage 1 in the neural engine: diffusion inpainting of the unseen atlas texels."""

from __future__ import annotations

from ..neural.config import NeuralConfig
from .base import AtlasTexture, Stage, StageContext


class NeuralInpaint(Stage):
    """Inpaint with the style's prompt; portrait-backed texels are kept, the back seam wraps around."""

    name = "inpaint"
    engine = "neural"

    def __init__(self, config: NeuralConfig | None = None) -> None:
        self.config = config or NeuralConfig()

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the inpainted texture; the confidence map is passed on unchanged."""
        from ..neural.inpaint import inpaint_atlas, style_prompt

        prompt, negative, guidance, strength = style_prompt(ctx.style, ctx.prompt)
        ctx.progress(0.0, "inpaint: loading model")
        color = inpaint_atlas(
            texture.color,
            texture.confidence,
            int(getattr(ctx.atlas, "band_rows", 0)),
            self.config,
            prompt=prompt,
            negative_prompt=negative,
            guidance_scale=guidance,
            strength=strength,
            seed=ctx.seed,
            ctx=ctx,
        )
        ctx.progress(1.0, "inpaint: done")
        return AtlasTexture(color, texture.confidence.copy())
