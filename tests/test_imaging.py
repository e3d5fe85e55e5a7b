"""The low-level image helpers that stand in for slower numpy idioms must give numpy's results bit
for bit (their speed is bench/speed.py's to measure, not asserted here)."""

from __future__ import annotations

import numpy as np
import pytest
from avatartex.imaging import put_rows, take_rows


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_take_and_put_rows_are_numpys_indexing(channels: int) -> None:
    rng = np.random.default_rng(channels)
    image = rng.random((40, 30, channels)).astype(np.float32)
    image[3, 4] = np.nan
    mask = rng.random((40, 30)) < 0.4
    np.testing.assert_array_equal(take_rows(image, mask), image[mask])
    flat = image.reshape(-1, channels)
    index = rng.integers(0, len(flat), 500)
    np.testing.assert_array_equal(take_rows(flat, index), flat[index])

    values = rng.random((int(mask.sum()), channels)).astype(np.float32)
    ours, theirs = image.copy(), image.copy()
    put_rows(ours, mask, values)
    theirs[mask] = values
    assert ours.tobytes() == theirs.tobytes()
    ours, theirs = image.copy(), image.copy()
    put_rows(ours, mask, np.full(channels, np.nan, np.float32))  # one row for every masked one
    theirs[mask] = np.nan
    assert ours.tobytes() == theirs.tobytes()


def test_rows_of_arrays_not_laid_out_as_rows_fall_back_to_numpy() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((20, 30, 4)).astype(np.float32)
    strided = image[:, ::2, :3]  # not contiguous
    mask = rng.random(strided.shape[:2]) < 0.5
    np.testing.assert_array_equal(take_rows(strided, mask), strided[mask])
    before = image.copy()
    put_rows(strided, mask, np.ones((int(mask.sum()), 3)))  # float64 values into float32 rows
    assert (strided[mask] == 1.0).all() and (strided[~mask] == before[:, ::2, :3][~mask]).all()
    np.testing.assert_array_equal(image[:, 1::2], before[:, 1::2])  # through the view only
    empty = np.zeros(mask.shape, bool)
    assert take_rows(image[:, ::2], empty).shape == (0, 4)
