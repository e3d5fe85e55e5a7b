"""Runtime state of the add-on (not saved in .blend files): the backend client and the running job."""

from __future__ import annotations

from typing import Any

client = None
"""The shared ``client.BackendClient`` (one warm backend for every operator), or None."""

hello: dict[str, Any] | None = None
"""The last ``hello`` answer (styles, engines, devices), for the UI."""

job = None
"""The running ``jobs.Job``, or None."""

last_summary: list[str] = []
"""Lines of the last job's summary, for the panel."""

previews = None
"""``bpy.utils.previews`` collection of portrait thumbnails."""

env_install = None
"""The running or last ``environment.EnvInstall``, or None."""

model_download = None
"""The running or last ``models.ModelDownload``, or None."""

warm_tried = False
"""Whether the panel has started warming the backend since it last stopped (``backend.warm_up``)."""

prepare_target = None
"""The panel's target as the last draw saw it (``prepare.Target``), or None."""

prepare_since = 0.0
"""``time.monotonic()`` when the panel's target last changed (``prepare.DEBOUNCE_S``)."""

prepared: set = set()
"""(backend pid, capture digest, size) of the heads sent in a ``prepare`` to the running backend."""

prepare_sent = None
"""The ``prepare.Sent`` still waiting for its answer, or None."""
