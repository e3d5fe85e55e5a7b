"""Registers the add-on test fixtures (they live in blender_support.py, which tests import by name:
a module called ``conftest`` would collide with the other test folders' conftest files)."""

from blender_support import *  # noqa: F401,F403
