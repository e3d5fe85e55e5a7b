"""Stage 2, neural: StyleGAN2 W+ latent optimisation against the stage-1 texture (``inversion.py``).

This stage only exists with a prior: ``engines.neural.build_stages`` runs the classic stage 2 instead
when none is installed, and the report says so and why.
"""

from __future__ import annotations

import numpy as np

from ...imaging import resize
from ..base import AtlasTexture, Stage, StageContext
from .config import NeuralConfig


class NeuralLatent(Stage):
    """Project the stage-1 atlas onto the prior's manifold; confident texels are blended back."""

    name = "latent"
    engine = "neural"

    def __init__(self, config: NeuralConfig) -> None:
        if not config.prior:
            raise ValueError("NeuralLatent needs config.prior (a .safetensors StyleGAN2 prior)")
        self.config = config

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the prior-consistent texture; the confidence map is passed on unchanged."""
        from .device import pick_device
        from .inversion import project
        from .prior import load_prior

        ctx.progress(0.0, "latent: loading prior")
        generator = load_prior(self.config.prior, pick_device(self.config.device))
        result = project(
            generator,
            texture.color,
            texture.confidence,
            steps=int(self.config.latent_steps),
            lr=self.config.latent_lr,
            perceptual_weight=self.config.latent_perceptual_weight,
            reg_weight=self.config.latent_reg_weight,
            seed=ctx.seed,
            progress=ctx.progress,
            check_cancel=ctx.check_cancel,
        )
        size = texture.color.shape[0]
        prior_image = resize(result.image, size, size)
        c = np.clip(texture.confidence, 0.0, 1.0)[..., None]
        color = np.clip(c * texture.color + (1.0 - c) * prior_image, 0.0, 1.0).astype(np.float32)
        ctx.progress(1.0, f"latent: masked L1 {result.losses[0]:.3f} -> {result.losses[-1]:.3f}")
        return AtlasTexture(color, texture.confidence.copy())
