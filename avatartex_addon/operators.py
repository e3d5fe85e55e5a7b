"""Operators: ``bpy.ops.avatartex.*``. Each turns properties into tasks, runs them, reports the outcome.

In background mode (``blender -b``) the generating operators run to completion before returning, so
scripts and render farms can drive them; in the UI they return at once and progress streams in.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import (
    backend,
    capture,
    engines,
    environment,
    errors,
    jobs,
    material,
    models,
    outputs,
    properties,
    state,
)
from .paths import ensure_writable_dir, output_dir, place_unique_tiles, protocol, user_dir


def _report_error(op: bpy.types.Operator, exc: Exception) -> set[str]:
    op.report({"ERROR"}, str(exc))
    return {"CANCELLED"}


def _mesh_objects(objects) -> list[bpy.types.Object]:
    return [o for o in objects if o.type == "MESH"]


class _JobOperator:
    """Shared run logic of generate / batch / variants: validate, build a job, run it."""

    asynchronous: BoolProperty(
        name="Asynchronous",
        default=False,
        options={"SKIP_SAVE", "HIDDEN"},
        description="Return at once even in background mode (progress then comes through timers)",
    )

    def make_job(self, context) -> jobs.Job:  # pragma: no cover - overridden
        raise NotImplementedError

    def refused(self, context, exc: Exception) -> None:
        """Say on the object a request was refused for, before any job (a missing portrait, no UV
        map): its status had kept the last run's "Done"."""

    def execute(self, context):
        try:
            jobs.check_idle()
            backend.resolve_python()
            job = self.make_job(context)
        except Exception as exc:  # noqa: BLE001 - every user error becomes a report
            self.refused(context, exc)
            return _report_error(self, exc)
        if bpy.app.background and not self.asynchronous:
            try:
                jobs.start(job, "sync").run_sync()
            except Exception as exc:  # noqa: BLE001
                state.job = None
                return _report_error(self, exc)
            return self._report_summary(job)
        try:
            jobs.start(job, "timer")
        except Exception as exc:  # noqa: BLE001
            return _report_error(self, exc)
        self.report({"INFO"}, f"AvatarTex: started {len(job.tasks)} generation(s)")
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        try:
            jobs.check_idle()
            backend.resolve_python()
            job = self.make_job(context)
            jobs.start(job, "modal")
        except Exception as exc:  # noqa: BLE001
            self.refused(context, exc)
            return _report_error(self, exc)
        self._job = job
        self._timer = context.window_manager.event_timer_add(jobs.TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS" and not job.cancelled:
            job.cancel()
            return {"RUNNING_MODAL"}  # Esc belongs to this operator while it runs
        if event.type == "TIMER":
            job.pump(wait=0.0)
        if not job.finished:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        result = self._report_summary(job)
        # Nothing applied: no undo step for an empty change.
        return result if any(t.status == "done" for t in job.tasks) else {"CANCELLED"}

    def _report_summary(self, job: jobs.Job) -> set[str]:
        done = [t for t in job.tasks if t.status == "done"]
        failed = [t for t in job.tasks if t.status == "failed"]
        for note in job.notes:
            self.report({"WARNING"}, note)
        if job.cancelled or any(t.status == "cancelled" for t in job.tasks):
            self.report({"WARNING"}, "AvatarTex: cancelled; " + job.summary[0])
            return {"CANCELLED"} if not done else {"FINISHED"}
        if not done:
            self.report({"ERROR"}, " | ".join(f"{t.label}: {t.message}" for t in failed) or job.summary[0])
            return {"CANCELLED"}
        if failed and bpy.app.background:
            # A farm must see the task failed: an error (bpy.ops raises, so `blender --python-exit-code 1`
            # exits non-zero) and CANCELLED. The objects that succeeded keep their textures.
            self.report({"ERROR"}, "AvatarTex: " + " | ".join(job.summary[: 1 + len(failed)]))
            return {"CANCELLED"}
        if failed:
            self.report({"WARNING"}, "AvatarTex: " + " | ".join(job.summary[: 1 + len(failed)]))
        else:
            self.report({"INFO"}, "AvatarTex: " + job.summary[0])
        return {"FINISHED"}


class AVATARTEX_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate a head texture for the active mesh from its portrait"""

    bl_idname = "avatartex.generate"
    bl_label = "Generate Texture"
    bl_options = {"REGISTER", "UNDO"}

    def make_job(self, context) -> jobs.Job:
        obj = context.active_object
        capture.check_mesh_object(obj)
        if obj.mode == "EDIT":
            obj.update_from_editmode()
        capture.resolve_uv_map(obj, context.scene.avatartex.uv_map)
        task = jobs.task_for(obj, context.scene)
        jobs._check_portrait(task.portrait)
        ensure_writable_dir(output_dir()[0])
        return jobs.Job("generate", [task])

    def refused(self, context, exc: Exception) -> None:
        obj = context.active_object
        code, text = jobs.failure(exc)
        if obj is None or not hasattr(obj, "avatartex") or obj.library:
            return
        if code in (errors.ALREADY_RUNNING, "busy", "cancelled"):  # another run's, not this object's
            return
        obj.avatartex.status, obj.avatartex.error_code = jobs.status_text("failed", text), code


class AVATARTEX_OT_batch_retexture(_JobOperator, bpy.types.Operator):
    """Generate textures for every selected mesh (or the chosen collection), one after another"""

    bl_idname = "avatartex.batch_retexture"
    bl_label = "Batch Re-texture"
    bl_options = {"REGISTER", "UNDO"}

    collection: StringProperty(
        name="Collection",
        default="",
        options={"SKIP_SAVE"},
        description="Name of a collection to batch (farm scripts); empty: the panel's collection, else the "
        "selection, else every mesh of the scene that has a portrait",
    )

    def make_job(self, context) -> jobs.Job:
        settings = context.scene.avatartex
        objects, where = self._objects(context)
        if not objects:
            raise errors.error(
                errors.NOTHING_SELECTED,
                f"There is no mesh object in {where}.",
                "Select the characters' head meshes, pick a collection, or give objects a portrait.",
            )
        ensure_writable_dir(output_dir()[0])
        objects.sort(key=lambda o: o.name)
        # Whole characters box-selected: their bodies, hair and props have no portrait. Where some
        # meshes have one, the others are passed over (said), not failed one by one.
        skipped = [o for o in objects if not o.avatartex.portrait_path]
        if len(skipped) < len(objects):
            objects = [o for o in objects if o.avatartex.portrait_path]
        else:
            skipped = []
        settings.batch.clear()
        for obj in objects + skipped:
            item = settings.batch.add()
            item.name = obj.name
            if obj in skipped:
                item.status, item.message = "skipped", "no portrait (a body, hair or a prop?)"
        job = jobs.Job("batch", [jobs.task_for(obj, context.scene) for obj in objects])
        if skipped:
            names = ", ".join(f"'{o.name}'" for o in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
            job.notes.append(
                f"{len(skipped)} mesh(es) without a portrait passed over: {names} (give one a portrait "
                "to texture it)"
            )
        return job

    def _objects(self, context) -> tuple[list[bpy.types.Object], str]:
        """The meshes to batch and, for messages, where they came from."""
        settings = context.scene.avatartex
        if self.collection:
            collection = bpy.data.collections.get(self.collection)
            if collection is None:
                raise errors.error(
                    errors.NOTHING_SELECTED,
                    f"There is no collection named '{self.collection}'.",
                    f"Collections: {', '.join(c.name for c in bpy.data.collections) or 'none'}.",
                )
            return _mesh_objects(collection.all_objects), f"collection '{collection.name}'"
        if settings.batch_collection is not None:
            collection = settings.batch_collection
            return _mesh_objects(collection.all_objects), f"collection '{collection.name}'"
        selected = _mesh_objects(context.selected_objects or [])
        if selected:
            return selected, "the selection"
        # A .blend saved with nothing selected (a farm's): every character that has a portrait.
        with_portrait = [o for o in _mesh_objects(context.scene.objects) if o.avatartex.portrait_path]
        return with_portrait, "the selection, nor any mesh with a portrait in the scene"


class AVATARTEX_OT_generate_variants(_JobOperator, bpy.types.Operator):
    """Generate every variant (style, seed, strength) of the active mesh"""

    bl_idname = "avatartex.generate_variants"
    bl_label = "Generate Variants"
    bl_options = {"REGISTER", "UNDO"}

    def make_job(self, context) -> jobs.Job:
        obj = context.active_object
        capture.check_mesh_object(obj)
        if len(obj.avatartex.variants) == 0:
            raise errors.error(
                protocol().ErrorCode.BAD_REQUEST,
                f"'{obj.name}' has no variants.",
                "Add variants with the + button of the Variants list.",
            )
        capture.resolve_uv_map(obj, context.scene.avatartex.uv_map)
        jobs._check_portrait(jobs.task_for(obj, context.scene).portrait)
        ensure_writable_dir(output_dir()[0])
        tasks = [jobs.task_for(obj, context.scene, i) for i in range(len(obj.avatartex.variants))]
        return jobs.Job("variants", tasks)


class AVATARTEX_OT_cancel(bpy.types.Operator):
    """Cancel the running generation; nothing more is applied to the scene"""

    bl_idname = "avatartex.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if state.job is None:
            self.report({"INFO"}, "Nothing is running.")
            return {"CANCELLED"}
        state.job.cancel()
        self.report({"INFO"}, "AvatarTex: cancelling...")
        return {"FINISHED"}


class AVATARTEX_OT_restore_material(bpy.types.Operator):
    """Remove the AvatarTex texture node and reconnect Base Color as it was before"""

    bl_idname = "avatartex.restore_material"
    bl_label = "Restore Material"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        # Every material the texture went into (a face with its lips and ears: one texture set).
        mats = {slot.material for slot in obj.material_slots if slot.material is not None} if obj else set()
        restored = [mat for mat in sorted(mats, key=lambda m: m.name) if material.restore(mat)]
        if not restored:
            self.report({"INFO"}, "The material has no AvatarTex texture.")
            return {"CANCELLED"}
        obj.avatartex.status = "Material restored"  # the last run's "Done: ..." no longer holds
        given = material.restore_shared(obj)  # the shared or library material it had before
        if given:
            self.report({"INFO"}, f"'{obj.name}' shows {', '.join(repr(n) for n in given)} again.")
        body = bpy.data.objects.get(obj.avatartex.toned_body) if obj.avatartex.toned_body else None
        if body is not None and any(material.texture_node(slot.material) for slot in body.material_slots):
            self.report(
                {"INFO"},
                f"'{body.name}' still shows the copy of its image toned to this face: select it and "
                "Restore Material to bring its own back.",
            )
        return {"FINISHED"}


class AVATARTEX_OT_variant_add(bpy.types.Operator):
    """Add a variant with the scene's style and seed (the next free seed where that style has it)"""

    bl_idname = "avatartex.variant_add"
    bl_label = "Add Variant"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        if obj is None:
            return _report_error(self, errors.error(errors.NOTHING_SELECTED, "Nothing is selected.", ""))
        variants = obj.avatartex.variants
        variant = variants.add()
        variant.style = context.scene.avatartex.style
        variant.seed = jobs.free_seed(list(variants)[:-1], variant.style, context.scene.avatartex.seed)
        variant.strength = context.scene.avatartex.strength
        # Named by style and seed, as its files will be: <object>_<style>_<seed>.png.
        variant.name = jobs.variant_name(variant.style, variant.seed)
        obj.avatartex.active_variant_index = len(variants) - 1
        note = jobs.same_texture_note(obj, len(variants) - 1, context.scene)
        if note:
            self.report({"WARNING"}, note + ".")
        return {"FINISHED"}


class AVATARTEX_OT_variant_remove(bpy.types.Operator):
    """Remove the active variant (its image stays in the file until unused)"""

    bl_idname = "avatartex.variant_remove"
    bl_label = "Remove Variant"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        if obj is None or len(obj.avatartex.variants) == 0:
            return {"CANCELLED"}
        settings = obj.avatartex
        settings.variants.remove(settings.active_variant_index)
        settings.active_variant_index = max(0, min(settings.active_variant_index, len(settings.variants) - 1))
        return {"FINISHED"}


class AVATARTEX_OT_apply_variant(bpy.types.Operator):
    """Show this variant's texture in the material"""

    bl_idname = "avatartex.apply_variant"
    bl_label = "Apply Variant"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Index", default=-1, description="Variant to apply; -1: the active one")

    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH" or len(obj.avatartex.variants) == 0:
            return _report_error(
                self, errors.error(errors.NOTHING_SELECTED, "The active object has no variants.", "")
            )
        settings = obj.avatartex
        index = settings.active_variant_index if self.index < 0 else self.index
        if index >= len(settings.variants):
            return _report_error(
                self, errors.error(protocol().ErrorCode.BAD_REQUEST, f"There is no variant {index}.", "")
            )
        variant = settings.variants[index]
        if variant.image is None:
            return _report_error(
                self,
                errors.error(
                    protocol().ErrorCode.BAD_REQUEST,
                    f"Variant '{variant.name}' has no texture yet.",
                    "Press Generate Variants first.",
                ),
            )
        settings.active_variant_index = index
        _show(self, context, obj, variant.image, variant.body_object, variant.body_image)
        return {"FINISHED"}


class AVATARTEX_OT_show_main_texture(bpy.types.Operator):
    """Show the object's main texture (made by Generate Texture) again in place of a variant"""

    bl_idname = "avatartex.show_main_texture"
    bl_label = "Main Texture"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH" or obj.avatartex.texture is None:
            name = f"'{obj.name}'" if obj is not None else "Nothing selected"
            return _report_error(
                self,
                errors.error(
                    errors.NOTHING_SELECTED,
                    f"{name} has no main texture.",
                    "Press Generate Texture to make one.",
                ),
            )
        settings = obj.avatartex
        _show(self, context, obj, settings.texture, settings.toned_body, settings.body_texture)
        return {"FINISHED"}


def _show(
    op: bpy.types.Operator,
    context,
    obj: bpy.types.Object,
    image: bpy.types.Image,
    body_name: str,
    body_image: bpy.types.Image | None,
) -> None:
    """Show ``image`` (a variant's or the main texture) through every material of ``obj`` showing
    its texture now (one texture set), else the active one; not those showing a toned copy of the
    object's own body material (Daz's Torso). ``body_image``: the toned copy of ``body_name``'s
    image made with it, shown again on that body."""
    copies = jobs.own_body_copies(obj)
    nodes = [material.texture_node(slot.material) for slot in obj.material_slots]
    slots = [i for i, node in enumerate(nodes) if node is not None and node.image not in copies]
    active = obj.active_material_index
    for slot in slots or [active]:
        obj.active_material_index = slot
        _mat, note = material.apply_image(obj, image, context.scene.avatartex.uv_map)
        if note:
            op.report({"WARNING"}, note)
    obj.active_material_index = active
    body = bpy.data.objects.get(body_name) if body_name else None
    if body is not None and body_image is not None:
        toned = [i for i, slot in enumerate(body.material_slots) if material.texture_node(slot.material)]
        if body == obj:  # the body is a material of the head's own object
            toned = [i for i in toned if nodes[i].image in copies]
        notes: list[str] = []
        jobs.show_on_body(body, body_image, toned, notes)
        for note in notes:
            op.report({"WARNING"}, note)


class AVATARTEX_OT_export_variants(bpy.types.Operator):
    """Write each variant's texture to <object>_<variant>.png in a folder (optionally pack them)"""

    bl_idname = "avatartex.export_variants"
    bl_label = "Export Variants"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH", options=properties.BLEND_RELATIVE)
    pack: BoolProperty(
        name="Pack into .blend",
        default=False,
        description="Also pack the variant images into the .blend file",
    )

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        obj = context.active_object
        if obj is None or len(obj.avatartex.variants) == 0:
            return _report_error(
                self, errors.error(errors.NOTHING_SELECTED, "The active object has no variants.", "")
            )
        if not self.directory:
            return _report_error(
                self,
                errors.error(
                    protocol().ErrorCode.OUTPUT_NOT_WRITABLE, "No export folder given.", "Pick a folder."
                ),
            )
        folder = Path(bpy.path.abspath(self.directory))
        written, skipped = [], []
        try:
            ensure_writable_dir(folder)
            for variant in obj.avatartex.variants:
                image = variant.image
                if image is None:
                    skipped.append(variant.name)
                    continue
                stem = jobs.variant_stem(obj, variant)
                if image.source == "TILED":  # a head over UDIM tiles: each tile, under one new name
                    placed = place_unique_tiles(outputs.tile_files(image), folder, stem)
                    written += list(placed.values())
                    continue
                source = Path(bpy.path.abspath(image.filepath_raw or image.filepath))
                scratch = None
                if not source.is_file():
                    # Packed or generated in memory: save a copy first (in the add-on's own folder).
                    scratch = source = user_dir("work") / f"{stem}_{os.getpid()}.png"
                    image.save(filepath=str(source))
                try:
                    # Exporting again replaces this variant's own earlier export, never another file.
                    written.append(outputs.export_file(source, folder, stem, variant.export, obj.name))
                finally:
                    if scratch is not None:
                        scratch.unlink(missing_ok=True)
                if self.pack and image.packed_file is None:
                    image.pack()
        except Exception as exc:  # noqa: BLE001
            return _report_error(self, exc)
        message = f"Exported {len(written)} variant(s) to {folder}"
        if skipped:
            message += f"; not generated yet: {', '.join(skipped)}"
        self.report({"WARNING"} if skipped else {"INFO"}, message)
        return {"FINISHED"}


def _pin_items(self, context):
    return [
        (name, name.replace("_", " ").title(), f"Mark the selected vertex as {name}")
        for name in protocol().PIN_NAMES
    ]


class AVATARTEX_OT_set_pin(bpy.types.Operator):
    """Mark the selected vertex as a facial landmark (for heads the detector cannot read)"""

    bl_idname = "avatartex.set_pin"
    bl_label = "Set Landmark Pin"
    bl_options = {"REGISTER", "UNDO"}

    pin: EnumProperty(name="Landmark", items=_pin_items)

    def execute(self, context):
        obj = context.active_object
        try:
            capture.check_mesh_object(obj)
            index = _selected_vertex(obj)
        except Exception as exc:  # noqa: BLE001
            return _report_error(self, exc)
        slot = list(protocol().PIN_NAMES).index(self.pin)
        obj.avatartex.pins[slot] = index
        self.report({"INFO"}, f"{self.pin} = vertex {index}")
        return {"FINISHED"}


def _selected_vertex(obj: bpy.types.Object) -> int:
    """The one selected vertex of ``obj`` (edit or object mode); the active one when several are."""
    import numpy as np

    if obj.mode == "EDIT":
        import bmesh

        bm = bmesh.from_edit_mesh(obj.data)
        active = bm.select_history.active
        if isinstance(active, bmesh.types.BMVert):
            return active.index
        obj.update_from_editmode()
    mesh = obj.data
    selected = np.zeros(len(mesh.vertices), bool)
    mesh.vertices.foreach_get("select", selected)
    ids = np.flatnonzero(selected)
    if len(ids) != 1:
        raise errors.error(
            protocol().ErrorCode.BAD_REQUEST,
            f"{len(ids)} vertices are selected; a pin needs exactly one.",
            "In Edit Mode, click the one vertex at the landmark, then set the pin.",
        )
    return int(ids[0])


class AVATARTEX_OT_clear_pins(bpy.types.Operator):
    """Forget all landmark pins of the active object"""

    bl_idname = "avatartex.clear_pins"
    bl_label = "Clear Pins"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        if obj is None:
            return {"CANCELLED"}
        obj.avatartex.pins = (-1,) * len(obj.avatartex.pins)
        return {"FINISHED"}


class AVATARTEX_OT_unwrap(bpy.types.Operator):
    """Give the active mesh a UV map (Smart UV Project) so it can be textured"""

    bl_idname = "avatartex.unwrap"
    bl_label = "Unwrap"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            return _report_error(self, errors.error(errors.NOT_A_MESH, "Select a mesh to unwrap.", ""))
        library = obj.data.library or obj.library
        if library is not None:  # edit mode refuses it with a traceback; a UV map added here is not saved
            return _report_error(
                self,
                errors.error(
                    errors.LINKED_DATA,
                    f"The mesh of '{obj.name}' is linked from {library.filepath}: it cannot be unwrapped "
                    "in this file.",
                    "Unwrap it in that file, or make it local (Object > Relations > Make Local > Selected "
                    "Objects and Data), then unwrap.",
                ),
            )
        mode = obj.mode
        if mode != "EDIT":
            bpy.ops.object.mode_set(mode="EDIT")
        try:
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(island_margin=0.02)
        finally:
            bpy.ops.object.mode_set(mode=mode)
        self.report({"INFO"}, f"'{obj.name}' now has the UV map '{obj.data.uv_layers.active.name}'")
        return {"FINISHED"}


class AVATARTEX_OT_test_backend(bpy.types.Operator):
    """Start the backend and show what it offers (devices, engines, styles, models)"""

    bl_idname = "avatartex.test_backend"
    bl_label = "Test Backend"

    def execute(self, context):
        try:
            answer = backend.hello()
        except Exception as exc:  # noqa: BLE001
            state.hello = None
            return _report_error(self, exc)
        self.report({"INFO"}, engines.hello_summary(answer))
        return {"FINISHED"}


class AVATARTEX_OT_create_environment(bpy.types.Operator):
    """Build a new managed backend environment; the one in use stays until the new one works"""

    bl_idname = "avatartex.create_environment"
    bl_label = "Create Environment"

    def execute(self, context):
        prefs = backend.preferences()
        try:
            install = environment.start_install(neural=bool(prefs and prefs.neural_packages))
        except Exception as exc:  # noqa: BLE001
            return _report_error(self, exc)
        if bpy.app.background:
            install.thread.join()
            install.finish()
            if install.error:
                self.report({"ERROR"}, install.error)
                return {"CANCELLED"}
        else:
            bpy.app.timers.register(environment.watch, first_interval=0.5)
        self.report({"INFO"}, f"AvatarTex: {install.message}")
        return {"FINISHED"}


class AVATARTEX_OT_download_models(bpy.types.Operator):
    """Download the models the neural engine needs (several GB, once) from Hugging Face into the model
    cache; the size is stated before anything is fetched, and a failure changes nothing"""

    bl_idname = "avatartex.download_models"
    bl_label = "Download Models"

    def invoke(self, context, event):
        try:
            download = models.plan(backend.hello())
        except Exception as exc:  # noqa: BLE001
            return _report_error(self, exc)
        if download is None:
            return self.execute(context)  # says there is nothing to fetch
        size = engines.size_text(download.size_gb)
        return context.window_manager.invoke_confirm(
            self,
            event,
            title="Download Models",
            message=f"Download {download.describe()}?",
            confirm_text=f"Download {size}",
        )

    def execute(self, context):
        try:
            download = models.plan(backend.hello())
        except Exception as exc:  # noqa: BLE001
            return _report_error(self, exc)
        if download is None:
            self.report({"INFO"}, "AvatarTex: the neural engine's models are already downloaded.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"AvatarTex: downloading {download.describe()}")
        download.start()
        if bpy.app.background:
            download.thread.join()
            download.finish()
            if download.error:
                self.report({"ERROR"}, download.error)
                return {"CANCELLED"}
            self.report({"INFO"} if download.succeeded else {"WARNING"}, f"AvatarTex: {download.message}")
            return {"FINISHED"} if download.succeeded else {"CANCELLED"}
        bpy.app.timers.register(models.watch, first_interval=0.5)
        return {"FINISHED"}


class AVATARTEX_OT_clean_unsaved_textures(bpy.types.Operator):
    """Remove the textures that unsaved files left in the extension's user folder: those not shown by
    the open file and not written for a week (a first save moves a file's textures next to it)"""

    bl_idname = "avatartex.clean_unsaved_textures"
    bl_label = "Clean Up Unsaved Textures"

    def invoke(self, context, event):
        leftovers, _total = outputs.unsaved_leftovers()
        if not leftovers:
            return self.execute(context)  # says there is nothing to remove
        size = sum(path.stat().st_size for path in leftovers) / 1e6
        return context.window_manager.invoke_confirm(
            self,
            event,
            title="Clean Up Unsaved Textures",
            message=f"Delete {len(leftovers)} texture file(s), {size:.0f} MB, of unsaved files "
            f"older than {outputs.UNSAVED_KEEP_DAYS} days? This cannot be undone.",
            confirm_text="Delete",
        )

    def execute(self, context):
        leftovers, _total = outputs.unsaved_leftovers()
        removed, failed = 0, []
        for path in leftovers:
            try:
                path.unlink()
                removed += 1
            except OSError as exc:
                failed.append(f"{path.name} ({exc.strerror or exc})")
        if failed:
            self.report({"WARNING"}, f"AvatarTex: removed {removed}; could not remove {', '.join(failed)}.")
        else:
            self.report(
                {"INFO"},
                f"AvatarTex: removed {removed} texture file(s) of unsaved files"
                if removed
                else f"AvatarTex: no texture of an unsaved file is older than {outputs.UNSAVED_KEEP_DAYS} "
                "days and unused: nothing removed.",
            )
        return {"FINISHED"} if removed else {"CANCELLED"}


class AVATARTEX_OT_cancel_download(bpy.types.Operator):
    """Stop the model download; what was fetched so far is kept and resumes next time"""

    bl_idname = "avatartex.cancel_download"
    bl_label = "Cancel Download"

    def execute(self, context):
        download = state.model_download
        if download is None or download.done:
            self.report({"INFO"}, "No download is running.")
            return {"CANCELLED"}
        download.cancel()
        self.report({"INFO"}, "AvatarTex: cancelling the download...")
        return {"FINISHED"}


CLASSES = (
    AVATARTEX_OT_generate,
    AVATARTEX_OT_batch_retexture,
    AVATARTEX_OT_generate_variants,
    AVATARTEX_OT_cancel,
    AVATARTEX_OT_restore_material,
    AVATARTEX_OT_variant_add,
    AVATARTEX_OT_variant_remove,
    AVATARTEX_OT_apply_variant,
    AVATARTEX_OT_show_main_texture,
    AVATARTEX_OT_export_variants,
    AVATARTEX_OT_set_pin,
    AVATARTEX_OT_clear_pins,
    AVATARTEX_OT_unwrap,
    AVATARTEX_OT_test_backend,
    AVATARTEX_OT_create_environment,
    AVATARTEX_OT_download_models,
    AVATARTEX_OT_cancel_download,
    AVATARTEX_OT_clean_unsaved_textures,
)
