"""Stage 3 in the neural engine: low-strength ControlNet-tile img2img plus portrait detail re-injection."""

from __future__ import annotations

from ..neural.config import NeuralConfig
from .base import AtlasTexture, Stage, StageContext


class NeuralRepaint(Stage):
    """Restore fine detail at low strength; strength 0 (style or request) returns the input unchanged."""

    name = "repaint"
    engine = "neural"

    def __init__(self, config: NeuralConfig | None = None) -> None:
        self.config = config or NeuralConfig()

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the repainted texture; the confidence map is passed on unchanged."""
        from ..neural.pipelines import join_prompt
        from ..neural.repaint import repaint_atlas

        style = ctx.style
        strength = float(getattr(style, "repaint_strength", 0.3)) * float(ctx.strength)
        ctx.progress(0.0, "repaint: loading model")
        color = repaint_atlas(
            texture.color,
            texture.confidence,
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
