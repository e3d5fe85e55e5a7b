"""``python -m avatartex`` is the ``avatartex`` command."""

import sys

from .cli import main

sys.exit(main())
