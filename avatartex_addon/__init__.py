"""AvatarTex: a portrait photo in, a complete seam-free head texture in the mesh's own UVs out.

Scripting API (stable): ``bpy.ops.avatartex.generate()``, ``bpy.ops.avatartex.batch_retexture()``,
``bpy.ops.avatartex.generate_variants()``; per object ``obj.avatartex.portrait_path``; per scene
``scene.avatartex.style``, ``.resolution``, ``.engine``, ``.seed``. The backend interpreter comes from
the add-on preferences or the ``AVATARTEX_BACKEND_PYTHON`` environment variable. In background mode
(``blender -b``) the operators return only when the textures are applied.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import backend, operators, outputs, panels, paths, preferences, properties, state

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(
    properties.CLASSES + preferences.CLASSES + operators.CLASSES + panels.CLASSES
)


@persistent
def _on_load_pre(*_args) -> None:
    # Another file is being opened: the running job's objects are about to disappear.
    if state.job is not None:
        state.job.cancel()
        state.job = None


@persistent
def _on_save_pre(filepath=None, *_args) -> None:
    # Textures of an unsaved file live in the extension's user folder: move them next to the .blend
    # before it is written, so that no saved file points into the extension's folders.
    target = filepath if isinstance(filepath, str) and filepath else bpy.data.filepath
    if target:
        outputs.move_next_to(target)
        packed = outputs.packed_instead()
        if packed:
            _tell_after_save(
                f"Textures packed into the .blend: {', '.join(packed)}. The .blend holds them; fix the "
                "folder and use File > External Data > Unpack Resources to have them as files."
            )
        # Save As elsewhere: Blender remaps images' relative paths, not the portraits' (``//photo.png``
        # would then point beside the new file).
        for obj in bpy.data.objects:
            settings = getattr(obj, "avatartex", None)
            if settings is not None and settings.portrait_path.startswith("//") and obj.library is None:
                settings.portrait_path = paths.relative_for(settings.portrait_path, bpy.data.filepath, target)


def _tell_after_save(message: str) -> None:
    """Say ``message`` where the artist sees it: a save handler cannot report like an operator, so in
    the console, the panel's notes and, with a window, a popup."""
    print(f"AvatarTex: {message}")
    state.last_summary = [*(state.last_summary[:1] or ["Saved"]), message]
    window_manager = getattr(bpy.context, "window_manager", None)
    if bpy.app.background or window_manager is None or not window_manager.windows:
        return

    def draw(menu, _context) -> None:
        menu.layout.label(text=message)

    try:  # the panel and the console have it already: a popup refused during a save is no loss
        window_manager.popup_menu(draw, title="AvatarTex", icon="INFO")
    except (RuntimeError, TypeError, AttributeError):
        pass


@persistent
def _on_save_post(filepath=None, *_args) -> None:
    target = filepath if isinstance(filepath, str) and filepath else bpy.data.filepath
    if target:
        outputs.after_save(target)


_HANDLERS = (("load_pre", _on_load_pre), ("save_pre", _on_save_pre), ("save_post", _on_save_post))


def register() -> None:
    """Register classes and properties; nothing starts until the artist asks for it."""
    import bpy.utils.previews

    _register_classes()
    properties.register_props()
    state.previews = bpy.utils.previews.new()
    for name, handler in _HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)


def unregister() -> None:
    """Stop the backend and any running job, remove everything registered."""
    for name, handler in _HANDLERS:
        if handler in getattr(bpy.app.handlers, name):
            getattr(bpy.app.handlers, name).remove(handler)
    _on_load_pre()
    if state.model_download is not None:
        state.model_download.cancel()
        state.model_download = None
    backend.shutdown()
    if state.previews is not None:
        bpy.utils.previews.remove(state.previews)
        state.previews = None
    properties.unregister_props()
    _unregister_classes()
