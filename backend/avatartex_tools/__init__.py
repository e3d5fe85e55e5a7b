"""Tools around the AvatarTex backend that a texture request never runs: training and converting
stage-2 priors, exporting them to ONNX, and the tiny random models the tests and benchmarks build.

Kept out of the runtime package ``avatartex`` (and out of the Blender extension's zip): they pull
training-only code and test fixtures that an artist's backend has no use for.
"""
