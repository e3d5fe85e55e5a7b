"""The interface every stage engine implements, classic or neural.

A stage takes the atlas texture so far and returns a new one; it never changes its input in place.
It reports progress through ``ctx.progress(fraction, message)`` (fraction of this stage, 0 to 1) and
calls ``ctx.check_cancel()`` at least once per step, which raises ``Cancelled`` when the client
cancelled.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..atlas import AtlasGeometry
    from ..bake import StyleShadow
    from ..memo import Memo
    from ..styles import Style


@dataclass
class AtlasTexture:
    """A texture in the canonical head atlas (see ``atlas.py``)."""

    color: np.ndarray
    """(S, S, 3) float32 sRGB in 0..1."""
    confidence: np.ndarray
    """(S, S) float32 in 0..1: how strongly each texel is backed by the portrait (1 = seen head-on)."""

    def copy(self) -> AtlasTexture:
        return AtlasTexture(self.color.copy(), self.confidence.copy())


@dataclass
class StageContext:
    """Everything a stage may read besides the texture itself."""

    atlas: AtlasGeometry
    """The atlas layout and the mesh surface behind each texel (mask, positions, normals, mirror)."""
    portrait: np.ndarray
    """(H, W, 3) float32 sRGB 0..1, the portrait photo (after orientation fixes and downscaling)."""
    portrait_coords: np.ndarray
    """(S, S, 2) float32 portrait pixel (x, y) of each atlas texel's surface point; NaN where unseen."""
    style: Style
    seed: int = 0
    strength: float = 1.0
    """0 keeps the photo, 1 applies the style preset as designed."""
    prompt: str = ""
    progress: Callable[[float, str], None] = lambda fraction, message="": None
    check_cancel: Callable[[], None] = lambda: None
    warnings: list[str] = field(default_factory=list)
    """Stages append messages for the report here (e.g. 'no GAN prior configured; used classic')."""
    passed: dict[str, str] = field(default_factory=dict)
    """Stage name -> why it passed the texture on unchanged (a strength that rounds to no denoising
    step): the report's ``stages`` says so beside the engine it names."""
    alignment_error_iod: float = float("nan")
    """The registration's own estimate of how far the photo lands from where it belongs on the mesh,
    in eye distances (``quality.Quality.estimated_error_iod``); NaN when unknown. Steps that need the
    photo's creases on the mesh's creases read it."""
    subject: str = ""
    """Whom the photo shows (``protocol.GenerateParams.subject``): ``same``, the person the mesh was
    made from; ``other``, another face than the mesh's; empty: the de-lighting decides from the
    photo's creases against the mesh's."""
    photo_share: np.ndarray | None = None
    """(S, S) float32 how much of each texel's colour is still the photo's where the regions step put
    fills under it (``regions.Regions.photo_confidence``: a smile's teeth taken off and the lips
    filled in, the photo's eyes off the lids, glasses frames): the photo's detail goes back only as
    far as this, not as far as the texel's confidence, which counts the fill too. None: the
    confidence is all the photo's."""
    marks: np.ndarray | None = None
    """(S, S) float32 0..1: texels showing a mark on one side of the face (``regions.Regions.marks``),
    kept as the photo shows them but no source of the fills; read through ``fill_confidence``."""
    delight: np.ndarray | None = None
    """(S, S, 3) float32 factor (per channel) the latent stage multiplied the colour by to take the
    photo's light out (None where it did not): the repaint takes the photo's own detail through the
    same factor, so the shading of creases it removed does not come back with it."""
    delight_at: Callable[..., np.ndarray] | None = None
    """The same de-lighting for surface points the atlas does not hold: ``delight_at(normals,
    coords, occlusion)`` (mesh-space unit normals (N, 3), their portrait pixels (N, 2), their
    ambient occlusion (N,) or None) gives the (N, 3) factor (``classic.latent.SurfaceDelight``);
    None where no stage de-lit."""
    view_from: np.ndarray | None = None
    """(3,) the registered camera's centre in the head frame (eye distances): where the skin's
    shine can be (``shine.py``); None where unknown."""
    memo: Memo | None = None
    """The generator's ``memo.Memo``: results kept by the content of their inputs (None: none kept)."""
    photo_face: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None = None
    """The photographed face's own normals at each texel, in the head frame, and how far its face
    mesh covers each texel ((S, S, 3), (S, S): ``photoface.photo_face_normals``), made on demand;
    None where unknown. The de-lighting shades with them where the mesh is another face."""
    lighting: dict[str, float] = field(default_factory=dict)
    """What the de-lighting fitted of the photo's light (report.json ``lighting``): ``occluded``,
    the share of the ambient light the mesh's creases keep out (``shading.DirectionalLights``)."""
    style_shadow: StyleShadow | None = None
    """A style's cel shadow (``bake.StyleShadow``), set by the repaint's style filter that draws one:
    the bake gives it to the texels the atlas does not hold at their own normals; None otherwise."""
    hair: np.ndarray | None = None
    """(S, S) float32 how far the hair layer (``scalp=hair``: ``regions.Regions.hair_cover``) covers
    each texel: the flat styles paint it as hair of their own (``classic.repaint.flat_hair``), not
    as the strands' and the photo's hair's colours quantised with the skin's; None without hair."""
    lenses: np.ndarray | None = None
    """(S, S) float32 0..1: texels the photo shows through a lens of its glasses (``glasses.lens_at``),
    whose lightness the lens's tint darkens: the flat styles take no shadow from it there (it made
    blotches under Grace Hopper's eyes in toon); None without glasses. Read it through
    ``lens_cover()``."""
    lenses_source: Callable[[], np.ndarray | None] | None = None
    """Finds ``lenses`` on first use: only the styles that read them pay for it (up to 61 ms at
    1024² with glasses in the photo)."""
    feature_lines: dict[str, np.ndarray] = field(default_factory=dict)
    """Atlas pixel polylines (N, 2) of the face's features (``features.FEATURES``: eyes, brows, lips,
    nose, jaw; closed ones repeat their first point), for the style filters; empty when unknown.
    Read them through ``features()``."""
    feature_source: Callable[[], dict[str, np.ndarray]] | None = None
    """Finds ``feature_lines`` on first use: only the styles that draw them pay for it."""

    def fill_confidence(self, confidence: np.ndarray) -> np.ndarray:
        """The confidence the classic fills draw on, for a texture with this ``confidence``: less the
        ``marks``, which are neither mirrored to the other side of the face nor spread round them."""
        if self.marks is None:
            return confidence
        return (np.asarray(confidence, np.float32) * (1.0 - self.marks)).astype(np.float32)

    def photo_part(self, confidence: np.ndarray) -> np.ndarray:
        """How far each texel of a texture with this ``confidence`` is the photo's, for the photo's
        detail to go back there: the confidence, at most ``photo_share`` (where the regions step put
        a fill under the photo, a smile's teeth taken off and the lips filled in, the photo's edges
        must not come back as detail)."""
        return confidence if self.photo_share is None else np.minimum(confidence, self.photo_share)

    drawn_lines: dict[str, np.ndarray] = field(default_factory=dict)
    """The lines a flat style draws its features along (``features.drawn_lines``: the head's own eyes,
    lips and nose; the photo's brows moved with them); read them through ``drawn()``."""
    drawn_source: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    """Finds ``drawn_lines`` from ``features()`` on first use; None: the feature lines are drawn."""

    def features(self) -> dict[str, np.ndarray]:
        """The feature lines, found now if they were not yet (``feature_source``)."""
        if not self.feature_lines and self.feature_source is not None:
            self.feature_lines = self.feature_source()
            self.feature_source = None
        return self.feature_lines

    def lens_cover(self) -> np.ndarray | None:
        """``lenses``, found now if they were not yet (``lenses_source``)."""
        if self.lenses is None and self.lenses_source is not None:
            self.lenses = self.lenses_source()
            self.lenses_source = None
        return self.lenses

    def drawn(self) -> dict[str, np.ndarray]:
        """The lines the flat styles draw along (``drawn_source``), else the feature lines."""
        if not self.drawn_lines:
            found = self.features()
            self.drawn_lines = self.drawn_source(found) if self.drawn_source is not None else found
            self.drawn_source = None
        return self.drawn_lines


class Stage(abc.ABC):
    """One of the three stages of the method, in one engine."""

    name: str = ""
    """``inpaint``, ``latent`` or ``repaint``."""
    engine: str = ""
    """``classic`` or ``neural``."""

    @abc.abstractmethod
    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the stage's output texture; ``texture`` is left untouched."""
