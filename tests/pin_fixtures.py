"""A "face" marked on a sphere by pins alone, for the tests of pins (no detector reads a ball)."""

SPHERE_FACE = {
    "right_eye_outer": (-0.9, 0.5, 1.7),
    "right_eye_inner": (-0.35, 0.5, 1.9),
    "left_eye_inner": (0.35, 0.5, 1.9),
    "left_eye_outer": (0.9, 0.5, 1.7),
    "nose_tip": (0.0, 0.0, 2.0),
    "mouth_right": (-0.5, -0.7, 1.8),
    "mouth_left": (0.5, -0.7, 1.8),
}
"""Seven pins on a sphere of radius 2 about the origin: a face looking along +z, y up."""
