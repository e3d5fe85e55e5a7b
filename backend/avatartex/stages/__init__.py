"""Stage engines: classic (any CPU) and neural (GPU, downloaded weights)."""
