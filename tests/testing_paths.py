"""Where the tests find the repository and the shared assets (imported by name from test files)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_ASSETS = ROOT.parent / "shared" / "assets"
SCANNED_HEAD = SHARED_ASSETS / "heads" / "lee_perry_smith.glb"


def require_scanned_head() -> Path:
    """The shared scanned head, or a loud skip where ../shared is absent."""
    if not SCANNED_HEAD.exists():
        pytest.skip(f"../shared absent: {SCANNED_HEAD} not found; this test needs the scanned head")
    return SCANNED_HEAD
