"""Style presets: what each stage should aim for, for both engines.

Styles are data (``styles.json`` beside this file): a prompt and negative prompt and per-stage
strengths for the neural engine, the name of a stage-2 prior, what covers the scalp (``scalp``:
``skin`` or ``hair``), and a ``classic`` dict of filter settings that the classic stages read
(``symmetry``, ``grain``, ``delight``, ``flatten``, ``filter`` ...). Adding a preset means adding an
entry to the JSON, not code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .protocol import SCALP_CHOICES, AvatarTexError, ErrorCode

STYLES_FILE = Path(__file__).with_name("styles.json")


@dataclass(frozen=True)
class Style:
    """One style preset."""

    name: str
    """Identifier used in requests (``photoreal``, ``toon`` ...)."""
    label: str
    """What the Blender panel shows."""
    description: str
    prompt: str
    """Positive prompt of the neural inpaint and repaint passes."""
    negative_prompt: str
    inpaint_strength: float
    """Neural stage 1: how far the diffusion inpainting may move away from the initial fill (0..1)."""
    repaint_strength: float
    """Neural stage 3: img2img denoising strength (low keeps identity)."""
    guidance_scale: float
    prior: str | None = None
    """Name of the stage-2 generative prior for this style, ``None`` for none."""
    classic: dict[str, Any] = field(default_factory=dict)
    """Settings of the classic engine's filters (see ``styles.json``)."""
    scalp: str = "skin"
    """What covers the scalp when the request leaves it to the style: ``skin`` or ``hair``
    (``GenerateParams.scalp``, ``regions.py``)."""

    @property
    def seed_free(self) -> bool:
        """Whether this style, fully applied by the classic engine, gives the same texture for every
        seed: no skin grain (``grain``) and no brush strokes (the painterly filter draws them from
        the seed). Under a strength of 1 photoreal's grain comes in (``classic_at``), and the neural
        engine's diffusion always draws from the seed. Variants of such a style that differ only
        by their seed are one texture twice (the add-on says so)."""
        return float(self.classic.get("grain", 1.0)) == 0.0 and self.classic.get("filter") != "painterly"

    def classic_value(self, key: str, default: Any) -> Any:
        """A classic-engine setting, ``default`` when the preset does not set it."""
        return self.classic.get(key, default)

    def classic_at(self, key: str, default: float, strength: float) -> float:
        """A numeric classic setting at ``strength``: photoreal's value at 0, this preset's at 1.

        ``StageContext.strength`` blends between keeping the photo and the full style; settings
        that photoreal also has (grain, detail, flatten ...) are interpolated rather than scaled.
        """
        s = float(min(max(strength, 0.0), 1.0))
        mine = float(self.classic.get(key, default))
        base = next((st for st in _load() if st.name == "photoreal"), None)
        anchor = float(base.classic.get(key, default)) if base is not None else mine
        return anchor + s * (mine - anchor)


def _style_from_dict(data: dict[str, Any]) -> Style:
    scalp = str(data.get("scalp", "skin"))
    if not scalp or scalp not in SCALP_CHOICES:
        raise ValueError(f"style {data['name']!r}: scalp must be 'skin' or 'hair', not {scalp!r}")
    return Style(
        name=str(data["name"]),
        label=str(data.get("label", data["name"])),
        description=str(data.get("description", "")),
        prompt=str(data.get("prompt", "")),
        negative_prompt=str(data.get("negative_prompt", "")),
        inpaint_strength=float(data.get("inpaint_strength", 1.0)),
        repaint_strength=float(data.get("repaint_strength", 0.3)),
        guidance_scale=float(data.get("guidance_scale", 7.0)),
        prior=data.get("prior") or None,
        classic=dict(data.get("classic", {})),
        scalp=scalp,
    )


@lru_cache(maxsize=1)
def _load() -> tuple[Style, ...]:
    with STYLES_FILE.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return tuple(_style_from_dict(entry) for entry in data["styles"])


def list_styles() -> list[Style]:
    """All presets, in the order the panel shows them."""
    return list(_load())


def get_style(name: str) -> Style:
    """The preset called ``name``; raises ``AvatarTexError(UNKNOWN_STYLE)`` naming the known ones."""
    for style in _load():
        if style.name == name:
            return style
    known = ", ".join(style.name for style in _load())
    raise AvatarTexError(
        ErrorCode.UNKNOWN_STYLE,
        f"Unknown style {name!r}; the known styles are: {known}.",
        f"Pick one of: {known}.",
    )
