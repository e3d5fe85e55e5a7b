"""The code base stays ruff-clean and ruff-formatted (STYLE.md §7): a lint error or an unformatted file
fails the suite, not just a review."""

import subprocess
import sys

import pytest
from testing_paths import ROOT

CHECKED = ["backend", "avatartex_addon", "bench", "tests", "build.py"]


def test_ruff_clean():
    if subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed (requirements-dev.txt installs it)")
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *CHECKED], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_ruff_format_clean():
    if subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed (requirements-dev.txt installs it)")
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *CHECKED],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, "run `ruff format` on:\n" + run.stdout + run.stderr
