"""Registers the add-on test fixtures (they live in blender_support.py, which tests import by name:
a module called ``conftest`` would collide with the other test folders' conftest files)."""

import os
import sys

from blender_support import *  # noqa: F401,F403

_EXIT_STATUS = [0]


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS[0] = int(exitstatus)


def pytest_unconfigure(config):
    """Leave with pytest's own status once everything is reported: the bpy module (4.5 LTS in
    particular) can deadlock in its interpreter shutdown after the add-on's tests, with every thread
    in a futex wait, which a CI run would otherwise wait on for ever."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[0])
