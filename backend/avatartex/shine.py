"""The skin's shine: the key light mirrored by the skin's oil, taken out of the photo's colour.

A photo's skin shines where it faces halfway between the light and the camera: a pale patch on the
forehead, the nose's ridge, the cheekbones. That light is the light's own colour (near white in a
white-balanced photo) added on top of the skin's, so it is no shading a Lambertian model can divide
out: the de-lighting left it in the albedo as pale, greyish patches that a renderer then lights a
second time. With the mesh registered, where it can shine is known (the light the de-lighting fitted,
the camera, each texel's normal: a Blinn lobe), and what it added is the part of the colour that is
whiter than the skin around (the dichromatic model: skin's own colour scaled by the shading, plus
some amount of the light's colour, read from the texels that shine most; the skin's own colour is
read where nothing shines). Only that excess comes out, and only in the lobe: pale skin elsewhere,
and skin as white as the face's own, are kept.
"""

from __future__ import annotations

import numpy as np

from .imaging import luminance, smoothstep

SHINE_EXPONENT = 16.0
"""Blinn exponent of the skin's shine as a photo records it: broad (oily skin's microfacets, the
light's own size and the photo's blur): at 16 the lobe halves 17 degrees off the mirror direction."""
LOBE_GATE = (0.3, 0.7)
"""Lobe values between which the excess whiteness is taken out from none to all: where the lobe
is weaker the skin cannot shine, whatever its colour."""
CHROMA_TOLERANCE = 0.04
"""How much paler (min/max channel ratio, linear) than the skin's own colour a texel may be before
any of it counts as shine: the skin's own spread (cheeks redder, forehead paler) stays."""
SHINE_COLOUR_MIN = 0.8
"""The shine's weakest channel over its strongest at least: a light's colour, not the skin's."""
UNLIT_LOBE = 0.15
"""Lobe under which texels are read for the skin's own colour."""
SATURATED = (0.85, 0.95)
"""Strongest channel (linear) over which a shining texel's colour gives way to the skin around
(from none to all): the photo clipped there, and what is left of the skin under the shine cannot be
read (the astronaut's cheek, 0.96/0.86/0.83 under a bluish-white light, kept a pale grey-blue spot
0.25 of the shine deep on the scanned head). Its colour only: its lightness stays what is left."""


def lobe(normals: np.ndarray, positions: np.ndarray, view_from: np.ndarray, lights: np.ndarray) -> np.ndarray:
    """(N,) 0..1 how strongly each surface point (unit ``normals`` and ``positions`` (N, 3), head
    frame) mirrors the key ``lights`` ((K, 3) direction x intensity, as
    ``shading.DirectionalLights``) towards a camera at ``view_from`` (3,): each light's Blinn lobe
    weighted by its intensity over the strongest's."""
    n = np.asarray(normals, np.float32).reshape(-1, 3)
    view = np.asarray(view_from, np.float32) - np.asarray(positions, np.float32).reshape(-1, 3)
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-6)
    lights = np.asarray(lights, np.float32).reshape(-1, 3)
    strength = np.linalg.norm(lights, axis=1)
    out = np.zeros(len(n), np.float32)
    if not len(lights) or strength.max() <= 0:
        return out
    for light, power in zip(lights, strength / strength.max(), strict=True):
        if power <= 0:
            continue
        half = view + light / np.linalg.norm(light)
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-6)
        facing = np.clip(np.einsum("ij,ij->i", n, half), 0.0, 1.0)
        # Only where the light reaches and the camera sees.
        lit = (n @ (light / np.linalg.norm(light)) > 0) & (np.einsum("ij,ij->i", n, view) > 0)
        out = np.maximum(out, np.float32(power) * facing**SHINE_EXPONENT * lit)
    return out


def skin_ratio(linear: np.ndarray) -> float:
    """The skin's own colour as the ratio of its weakest channel to its strongest (linear), the
    median over ``linear`` (N, 3) texels where nothing shines. NaN where there are too few."""
    rgb = np.asarray(linear, np.float64).reshape(-1, 3)
    top = rgb.max(axis=1)
    ok = top > 1e-3
    if ok.sum() < 50:
        return float("nan")
    return float(np.median(rgb[ok].min(axis=1) / top[ok]))


def shine_colour(linear: np.ndarray, expected: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """(3,) the colour of the shine (its strongest channel 1): what the texels that shine most hold
    over the skin around (``expected``), the median of its direction where it is clearly there. The
    light's own colour, which a photo's white balance leaves a little warm or cool (the astronaut's
    studio light shines bluish-white on her cheek: taking out white left a bluish mark). Never
    further from white than SHINE_COLOUR_MIN in any channel; white where too few texels shine."""
    rgb = np.asarray(linear, np.float32).reshape(-1, 3)
    over = rgb - np.asarray(expected, np.float32).reshape(-1, 3)
    strong = (np.asarray(gate).reshape(-1) > 0.5) & (over.min(axis=1) > 0.02)
    if strong.sum() < 50:
        return np.ones(3, np.float32)
    direction = over[strong] / over[strong].max(axis=1, keepdims=True)
    colour = np.median(direction, axis=0)
    return np.clip(colour / colour.max(), SHINE_COLOUR_MIN, 1.0).astype(np.float32)


def without_shine(
    linear: np.ndarray,
    gate: np.ndarray,
    ratio: float,
    expected: np.ndarray,
    colour: np.ndarray = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """``linear`` (N, 3) colours with the shine they hold (of ``colour``, white by default) beyond
    the skin's own colour taken out as far as ``gate`` (N,) 0..1 says they can shine; and the amount
    taken out (N,).

    Shine added to a colour raises its weakest channel towards its strongest: the amount ``s`` that
    brings min/max back to the skin's ratio r (``ratio`` plus CHROMA_TOLERANCE) solves
    min - s c_min = r (max - s c_max). Where the shine nearly saturates the photo that reading loses
    the skin under it (a white 0.96/0.88/0.84 read as 0.70 of white over a dark brown): the amount
    is at most what the colour holds over ``expected`` (N, 3), the skin around under the texel's own
    shading, in every channel. Where the photo nearly saturates (SATURATED) the colour left takes the
    hue of that skin around at its own lightness, as far as ``gate`` says it can shine."""
    rgb = np.asarray(linear, np.float32).reshape(-1, 3)
    if not np.isfinite(ratio):
        return rgb.copy(), np.zeros(len(rgb), np.float32)
    expected = np.asarray(expected, np.float32).reshape(-1, 3)
    c = np.asarray(colour, np.float32).reshape(3)
    r = np.float32(min(ratio + CHROMA_TOLERANCE, 0.95))
    rows = np.arange(len(rgb))
    low, high = rgb.argmin(axis=1), rgb.argmax(axis=1)
    below = np.maximum(c[low] - r * c[high], np.float32(0.05))
    excess = np.clip((rgb[rows, low] - r * rgb[rows, high]) / below, 0.0, None)
    over = np.clip(((rgb - expected) / c).min(axis=1), 0.0, None)
    gate = np.clip(np.asarray(gate, np.float32).reshape(-1), 0.0, 1.0)
    taken = np.minimum(excess, over) * gate
    clean = np.clip(rgb - taken[:, None] * c, 0.0, None)
    # Where the photo clipped, the skin around's colour at what is left's lightness: its own
    # lightness (expected) would dig a dark hole wherever the fitted light misjudges the texel, and
    # where it is under half what is left (nothing around to read, or a light that misjudges) its
    # colour is trusted less, under a quarter not at all.
    left, around = luminance(clean), luminance(expected)
    trust = smoothstep((around / np.maximum(left, 1e-4) - 0.25) / 0.25)
    clipped = gate * trust * smoothstep((rgb[rows, high] - SATURATED[0]) / (SATURATED[1] - SATURATED[0]))
    hue = expected / np.maximum(around, 1e-4)[:, None]
    skin = np.clip(hue * left[:, None], 0.0, 1.0)
    return clean + clipped[:, None] * (skin - clean), taken
