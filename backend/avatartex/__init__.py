"""AvatarTex backend: a portrait and a head mesh in, a seam-free head texture in the mesh's UVs out.

Importing this package is cheap and needs only the standard library; the heavy modules (numpy,
numba, mediapipe, torch) are imported by the submodules that use them.
"""

__version__ = "0.1.0"
