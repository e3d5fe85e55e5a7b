"""Stage 2 in the neural engine: StyleGAN2 W+ latent optimisation against the stage-1 texture.

Without a configured prior (none ship: they are trained or converted by the artist) the classic
consistency step runs instead and the report says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..neural.config import NeuralConfig
from .base import AtlasTexture, Stage, StageContext

FALLBACK_NOTE = (
    "stage 2 used the classic consistency step instead. Train one with `avatartex train-prior` or "
    "convert one with `avatartex convert-prior`."
)
NO_PRIOR_WARNING = "No GAN prior is configured (neural prior setting); " + FALLBACK_NOTE


def _classic_latent() -> Stage:
    from .classic_latent import ClassicLatent  # the lead's classic stage; imported only when needed

    return ClassicLatent()


class NeuralLatent(Stage):
    """Project the stage-1 atlas onto the prior's manifold; confident texels are blended back."""

    name = "latent"
    engine = "neural"

    def __init__(
        self, config: NeuralConfig | None = None, fallback: Any = None, missing_prior: str = ""
    ) -> None:
        self.config = config or NeuralConfig()
        self._fallback = fallback
        """Stage used without a prior; None builds the classic one on first use."""
        self.missing_prior = missing_prior
        """Where the style's named prior was looked for, when it is not installed (for the warning)."""

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the prior-consistent texture (or the classic stage's, with a report warning)."""
        if not self.config.prior:
            ctx.warnings.append(
                NO_PRIOR_WARNING
                if not self.missing_prior
                else f"The style's GAN prior is not installed ({self.missing_prior}); " + FALLBACK_NOTE
            )
            fallback = self._fallback if self._fallback is not None else _classic_latent()
            return fallback.run(texture, ctx)
        from ..neural.atlas_ops import resize
        from ..neural.device import pick_device
        from ..neural.latent import project
        from ..neural.prior import load_prior

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
