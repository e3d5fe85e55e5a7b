"""Add-on preferences (keyed by ``__package__`` so they work under any install method)."""

from __future__ import annotations

import re

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import backend, engines, environment, outputs, state
from .paths import ADDON_PACKAGE


def _restart_backend(self, context) -> None:
    # The backend reads these at start-up: the next request starts a fresh process.
    backend.shutdown()


class AVATARTEX_AP_preferences(bpy.types.AddonPreferences):
    """Where the backend runs and how."""

    bl_idname = ADDON_PACKAGE

    backend_mode: EnumProperty(
        name="Backend Python",
        items=[
            ("MANAGED", "Managed Environment", "An environment the add-on creates in its user folder"),
            ("CUSTOM", "Existing Interpreter", "A Python that already has the backend's requirements"),
        ],
        default="MANAGED",
        update=_restart_backend,
    )
    python_path: StringProperty(
        name="Interpreter",
        subtype="FILE_PATH",
        update=_restart_backend,
        description="Python executable with the backend's requirements installed",
    )
    model_cache: StringProperty(
        name="Model Cache",
        subtype="DIR_PATH",
        update=_restart_backend,
        description="Folder for downloaded models (empty: the default cache)",
    )
    device: EnumProperty(
        name="Device",
        update=_restart_backend,
        items=[
            ("auto", "Auto", "The GPU when there is one"),
            ("cpu", "CPU", ""),
            ("cuda", "CUDA", "NVIDIA GPU"),
            ("mps", "Metal", "Apple GPU"),
        ],
    )
    low_vram: BoolProperty(
        name="Low VRAM",
        default=False,
        update=_restart_backend,
        description="Trade speed for memory on small GPUs (offload, attention slicing)",
    )

    neural_packages: BoolProperty(
        name="Neural Engine Packages",
        default=False,
        description="Also install the neural engine's packages (PyTorch with CUDA, diffusers, transformers) "
        "into the managed environment: about 4 GB more to download. Needs an NVIDIA GPU to be useful",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "CUSTOM":
            layout.prop(self, "python_path")
        else:
            row = layout.row()
            row.label(text=f"Environment: {backend.managed_python()}")
            install = state.env_install
            if install is not None and not install.done:
                layout.progress(factor=install.progress, type="BAR", text=install.message)
            else:
                row.operator("avatartex.create_environment", icon="CONSOLE")
                layout.prop(
                    self,
                    "neural_packages",
                    text=f"Neural Engine Packages ({environment.NEURAL_DOWNLOAD} more)",
                )
                if install is not None:
                    layout.label(
                        text=install.error or install.message, icon="ERROR" if install.error else "CHECKMARK"
                    )
        layout.prop(self, "model_cache")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "low_vram")
        layout.operator("avatartex.test_backend", icon="PLUGIN")
        if state.hello:
            box = layout.box()
            for part in engines.hello_summary(state.hello).split("; "):
                box.label(text=part)
        _draw_models(layout)
        _draw_unsaved(layout)


def _draw_unsaved(layout) -> None:
    """How much the textures of unsaved files take in the user folder, and Clean Up."""
    leftovers, total = outputs.unsaved_leftovers()
    old = f"{len(leftovers)} unused for {outputs.UNSAVED_KEEP_DAYS} days"
    row = layout.row()
    row.label(text=f"Textures of unsaved files: {total / 1e6:.0f} MB ({old})")
    row.operator("avatartex.clean_unsaved_textures", text="Clean Up", icon="TRASH")


def _draw_models(layout) -> None:
    """Download Models (with its size) while models are missing; its progress and Cancel while it runs."""
    download = state.model_download
    if download is not None and not download.done:
        row = layout.row()
        row.progress(factor=download.progress, type="BAR", text=download.message)
        row.operator("avatartex.cancel_download", text="", icon="CANCEL")
        return
    missing = engines.missing_models(state.hello)
    if missing or state.hello is None:
        size = engines.size_text(engines.download_size_gb(missing)) if missing else ""
        text = f"Download Models ({size})" if size else "Download Models"
        layout.operator("avatartex.download_models", text=text, icon="IMPORT")
    if download is not None:
        # A label does not wrap: one line per sentence, so that "Nothing was changed" is read.
        icon = "ERROR" if download.error else "CHECKMARK"
        for sentence in re.split(r"(?<=\.) ", download.error or download.message):
            layout.label(text=sentence, icon=icon)
            icon = "BLANK1"


CLASSES = (AVATARTEX_AP_preferences,)
