"""The pipeline: analyse -> register -> project -> inpaint -> latent -> repaint -> bake.

``Generator`` (generator.py) runs whole requests; ``steps.py`` holds each step as a function with
typed inputs and outputs; ``cache.py`` what is kept per mesh; ``report.py`` what is written beside
the texture.
"""

from .generator import MAX_SIZE, MIN_SIZE, Generator, atlas_size_for

__all__ = ["MAX_SIZE", "MIN_SIZE", "Generator", "atlas_size_for"]
