"""Results kept by the content of their inputs, for the variants of one photo on one head.

A variant of a photo fitted before (another style, seed, strength, output size: ``FitCache``) runs
again work whose inputs did not change: the de-lighting's light fit when the inpainted atlas is the
same (the flat styles draw no grain), the photo read on the UV texels the atlas does not hold. Each
is kept under a digest of every array and value it reads (SHA-1, ~1.7 GB/s: 10-20 ms a request), so
a hit gives what the work would have given, bit for bit.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

KEPT = 4
"""Entries kept per kind (about 24 MB each for the de-lighting, 40 MB for the regions at 1024²)."""


def digest(*parts: Any) -> str:
    """A SHA-1 over arrays (dtype, shape and bytes) and plain values (their repr)."""
    found = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray):
            found.update(f"{part.dtype}{part.shape}".encode())
            found.update(memoryview(np.ascontiguousarray(part)).cast("B"))
        else:
            found.update(repr(part).encode())
        found.update(b"|")
    return found.hexdigest()


class Memo:
    """One generator's kept results, by kind and digest (``Generator.memo``: its lifetime, as
    ``FitCache``'s; a stage run outside a generator, as the tests run them, keeps nothing)."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._kept: dict[str, OrderedDict[str, Any]] = {}

    def get(self, kind: str, key: str) -> Any:
        """A copy of what was kept under ``key``, or None."""
        entries = self._kept.get(kind)
        if entries is None or key not in entries:
            return None
        entries.move_to_end(key)
        return copy.deepcopy(entries[key])

    def put(self, kind: str, key: str, value: Any) -> None:
        """Keep a copy of ``value`` (the least recently used entry goes past ``kept``)."""
        entries = self._kept.setdefault(kind, OrderedDict())
        entries[key] = copy.deepcopy(value)
        entries.move_to_end(key)
        while len(entries) > self.kept:
            entries.popitem(last=False)
