"""The "AvatarTex" tab of the 3D View sidebar."""

from __future__ import annotations

import os

import bpy

from . import backend, jobs, prepare, state
from .paths import protocol


def _mesh_or_reason(context) -> tuple[bpy.types.Object | None, str]:
    obj = context.active_object
    if obj is None:
        return None, "Select a head mesh"
    if obj.type != "MESH":
        return None, f"'{obj.name}' is not a mesh"
    return obj, ""


def portrait_icon(path: str) -> int:
    """Icon id of a thumbnail of the portrait at ``path`` (0 when unavailable)."""
    pcoll = state.previews
    if pcoll is None or not path:
        return 0
    path = bpy.path.abspath(path)
    if not os.path.isfile(path):
        return 0
    if path not in pcoll:
        try:
            pcoll.load(path, path, "IMAGE")
        except (KeyError, RuntimeError):
            return 0
    return pcoll[path].icon_id


CHAR_PX = 7.0
"""Width of an average character of Blender's interface font at UI scale 1, pixels: how many
characters a sidebar line holds (a label does not wrap, it is cut with an ellipsis)."""
SIDEBAR_CHARS = 40
"""Characters a line holds where the region's width is not known (a panel drawn without one)."""


def line_width(context) -> int:
    """Characters that fit on one line of the sidebar as it is now (its width and the UI scale)."""
    region = getattr(context, "region", None)
    if region is None or not getattr(region, "width", 0):
        return SIDEBAR_CHARS
    scale = context.preferences.system.ui_scale if getattr(context, "preferences", None) else 1.0
    return max(20, int((region.width - 30) / (CHAR_PX * max(scale, 0.5))))


def wrapped_labels(layout, text: str, width: int, icon: str = "NONE") -> None:
    """``text`` as labels of at most ``width`` characters, one paragraph per sentence the backend
    joined with "; " or ". Try: " (each reason and each thing to try starts a line of its own); the
    first line carries ``icon``, the others are indented as far."""
    import textwrap

    paragraphs = []
    for part in text.replace(". Try: ", "\nTry: ").split("\n"):
        paragraphs += [p.strip() for p in part.split("; ") if p.strip()]
    first = True
    for paragraph in paragraphs:
        for line in textwrap.wrap(paragraph, max(width, 10)) or [""]:
            layout.label(text=line, icon=icon if first else ("BLANK1" if icon != "NONE" else "NONE"))
            first = False


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "AvatarTex"


class AVATARTEX_PT_main(_Panel, bpy.types.Panel):
    """Portrait, style and the Generate Texture button."""

    bl_idname = "AVATARTEX_PT_main"
    bl_label = "AvatarTex"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.avatartex
        if not state.warm_tried and not bpy.app.timers.is_registered(backend.warm_up):
            # The artist opened the tab: start the backend now, so that Generate finds it warm.
            # (From a timer: drawing itself must not start processes.)
            bpy.app.timers.register(backend.warm_up, first_interval=0.0)
        obj, reason = _mesh_or_reason(context)
        # A head the backend has not seen gets ready while the artist picks a photo (prepare.py).
        prepare.note_target(obj, context.scene)
        if obj is None:
            layout.label(text=reason, icon="INFO")
        col = layout.column()
        col.enabled = obj is not None
        if obj is not None:
            col.prop(obj.avatartex, "portrait_path")
            icon = portrait_icon(obj.avatartex.portrait_path)
            if icon:
                col.template_icon(icon_value=icon, scale=6.0)
        col.prop(settings, "style")
        col.prop(settings, "scalp")
        col.prop(settings, "subject")
        col.prop(settings, "white_balance")
        col.prop(settings, "prompt")
        row = col.row(align=True)
        row.prop(settings, "resolution")
        row.prop(settings, "seed")
        col.prop(settings, "engine")
        col.prop(settings, "strength")
        if obj is not None:
            if len(obj.data.uv_layers) == 0:
                row = col.row()
                row.label(text="No UV map", icon="ERROR")
                row.operator("avatartex.unwrap")
            else:
                col.prop_search(settings, "uv_map", obj.data, "uv_layers")
        col.prop(settings, "facing")
        col.prop(settings, "tone_match")
        if obj is not None:  # a body that is an object of its own (found under the head when empty)
            col.prop(obj.avatartex, "body_object")
        running = state.job is not None and not state.job.finished
        if running:
            layout.progress(factor=settings.progress, type="BAR", text=settings.status or "Working...")
            layout.operator("avatartex.cancel", icon="CANCEL")
        else:
            row = layout.row()
            row.scale_y = 1.5
            row.enabled = obj is not None
            row.operator("avatartex.generate", icon="TEXTURE")
            if settings.status:
                wrapped_labels(layout.column(align=True), settings.status, line_width(context))
            # The active object's verdict is drawn with its reasons below: not twice.
            verdict_note = obj.avatartex.verdict_note if obj is not None and obj.avatartex.verdict else ""
            notes = [
                line
                for line in state.last_summary[1:]
                if line
                and not (
                    verdict_note and line.startswith(f"{obj.name}: ") and line.endswith(f": {verdict_note}")
                )
            ]
            if notes:
                box = layout.box().column(align=True)
                for line in notes:
                    wrapped_labels(box, line, line_width(context) - 3, icon="INFO")
        if obj is not None and obj.avatartex.status and obj.avatartex.status != settings.status:
            wrapped_labels(layout.column(align=True), obj.avatartex.status, line_width(context))
        if obj is not None and obj.avatartex.verdict:
            icon = {"good": "CHECKMARK", "doubtful": "INFO", "failed": "ERROR"}.get(
                obj.avatartex.verdict, "DOT"
            )
            layout.label(text=f"Registration: {obj.avatartex.verdict}", icon=icon)
            if obj.avatartex.verdict_note:
                wrapped_labels(layout.column(align=True), obj.avatartex.verdict_note, line_width(context))


class AVATARTEX_PT_pins(_Panel, bpy.types.Panel):
    """Landmark pins: for heads the face detector cannot read, and where the photo's eyes, nose, mouth
    or chin land beside the mesh's (each pin takes the landmarks around it along)."""

    bl_idname = "AVATARTEX_PT_pins"
    bl_label = "Landmark Pins"
    bl_parent_id = "AVATARTEX_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj, reason = _mesh_or_reason(context)
        if obj is None:
            layout.label(text=reason, icon="INFO")
            return
        col = layout.column(align=True)
        for slot, name in enumerate(protocol().PIN_NAMES):
            row = col.row(align=True)
            vertex = obj.avatartex.pins[slot]
            row.label(text=name.replace("_", " ").title())
            row.label(text=str(vertex) if vertex >= 0 else "-")
            row.operator("avatartex.set_pin", text="", icon="PINNED").pin = name
        layout.operator("avatartex.clear_pins", icon="X")


class AVATARTEX_PT_batch(_Panel, bpy.types.Panel):
    """Re-texture every selected character (or a collection)."""

    bl_idname = "AVATARTEX_PT_batch"
    bl_label = "Batch"
    bl_parent_id = "AVATARTEX_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.avatartex
        layout.prop(settings, "batch_collection")
        layout.operator("avatartex.batch_retexture", icon="SEQ_STRIP_DUPLICATE")
        for item in settings.batch:
            icon = {"done": "CHECKMARK", "failed": "ERROR", "running": "SORTTIME"}.get(item.status, "DOT")
            text = f"{item.name}: {item.message or item.status}"
            wrapped_labels(layout.column(align=True), text, line_width(context) - 3, icon=icon)


class AVATARTEX_UL_variants(bpy.types.UIList):
    """A row per variant: name, style, seed, strength."""

    bl_idname = "AVATARTEX_UL_variants"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon="IMAGE_DATA" if item.image else "DOT")
        row.prop(item, "style", text="")
        row.prop(item, "seed", text="")
        row.prop(item, "strength", text="")


class AVATARTEX_PT_variants(_Panel, bpy.types.Panel):
    """Stylized variants of the active object's texture."""

    bl_idname = "AVATARTEX_PT_variants"
    bl_label = "Variants"
    bl_parent_id = "AVATARTEX_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj, reason = _mesh_or_reason(context)
        if obj is None:
            layout.label(text=reason, icon="INFO")
            return
        settings = obj.avatartex
        row = layout.row()
        row.template_list(
            "AVATARTEX_UL_variants", "", settings, "variants", settings, "active_variant_index", rows=3
        )
        col = row.column(align=True)
        col.operator("avatartex.variant_add", text="", icon="ADD")
        col.operator("avatartex.variant_remove", text="", icon="REMOVE")
        note = jobs.same_texture_note(obj, settings.active_variant_index, context.scene)
        if note:
            wrapped_labels(layout.column(align=True), note + ".", line_width(context), icon="ERROR")
        row = layout.row(align=True)
        row.operator("avatartex.generate_variants", icon="RENDER_STILL")
        row.operator("avatartex.apply_variant", icon="CHECKMARK")
        if settings.texture is not None:
            row.operator("avatartex.show_main_texture", icon="LOOP_BACK")
        layout.operator("avatartex.export_variants", icon="EXPORT")


CLASSES = (
    AVATARTEX_PT_main,
    AVATARTEX_PT_pins,
    AVATARTEX_PT_batch,
    AVATARTEX_UL_variants,
    AVATARTEX_PT_variants,
)
