"""Jobs: a queue of texture generations run one at a time through the warm backend.

A job is a list of tasks (one object, or one variant of an object). ``Job.pump`` advances it: it starts
the backend when needed, captures the next object, sends ``generate``, reads progress, and applies
results to the scene. All Blender data is touched only in ``pump``, which runs on the main thread:
driven by a blocking loop in background mode, by ``bpy.app.timers`` when a script calls an operator
in the UI, or by the modal operator after a button click.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import backend, capture, errors, material, outputs, prepare, properties, state
from .client import PendingRequest, error_from_message
from .paths import output_dir, protocol, safe_name, user_dir

TIMER_INTERVAL_S = 0.1
BUSY_PATIENCE_S = 60.0
"""How long a job waits for the backend to finish a cancelled request before giving up."""


@dataclass
class Task:
    """One generation: an object (and optionally one of its variants) with the settings to use."""

    object_name: str
    portrait: str
    style: str
    prompt: str
    size: int
    engine: str
    seed: int
    strength: float
    uv_map: str
    facing: str
    scalp: str = ""
    """The request's ``scalp``: '' (the style decides), skin or hair."""
    subject: str = ""
    """The request's ``subject``: '' (decided from the photo), same or other."""
    white_balance: str = "auto"
    """The request's ``white_balance``: auto, eyes or off."""
    variant: int = -1
    """Index into ``obj.avatartex.variants``, or -1 for the object's main texture."""
    label: str = ""
    status: str = "queued"
    """queued, running, done, failed, cancelled."""
    message: str = ""
    code: str = ""
    """Why it failed, as a code a script can test (``protocol.ErrorCode``: ``portrait_missing``...;
    ``internal`` for an unexpected error); "" unless failed."""
    texture: str = ""
    retried: bool = False
    scratch: list[str] = field(default_factory=list)
    """Capture file and backend output folder of the current attempt, removed when the task ends."""
    busy_until: float = 0.0
    """When the backend said it is busy (a cancelled request still winding down): retry after this."""
    file_stem: str = ""
    """The texture's file name without ``.png``: the object's name, or the object's and the variant's."""
    body_object: str = ""
    """A body that is an object of its own, sent with the request (``capture.separate_body``)."""
    body_image: str = ""
    """The name of the image that body's skin showed, which its toned copy replaces on it."""
    material_images: list[str] = field(default_factory=list)
    """The image each texture set of the object showed when captured (``material.set_images``; ""
    for none), sent as ``material_textures``: a body in a material of its own is toned from its set's."""


@dataclass
class Job:
    """A run of tasks; ``kind`` is generate, batch or variants."""

    kind: str
    tasks: list[Task]
    driver: str = "sync"
    """Who calls ``pump``: sync (a blocking loop), timer (bpy.app.timers) or modal."""
    index: int = 0
    pending: PendingRequest | None = None
    phase: str = "idle"
    """idle, hello, generate."""
    cancelled: bool = False
    finished: bool = False
    summary: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)
    """Warnings for the artist (backend restarted, texture saved outside the project, the backend's
    own about a result)."""
    warned: set[str] = field(default_factory=set)
    """The backend's warnings already in ``notes`` (a batch says each once)."""
    _printed: tuple = ()
    """The last (task, stage) printed in background mode."""

    # -- control ------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop after the running request: the backend is asked to cancel, nothing more is applied."""
        self.cancelled = True
        if self.pending is not None and state.client is not None:
            state.client.cancel(self.pending)

    @property
    def current(self) -> Task | None:
        """The task being worked on."""
        return self.tasks[self.index] if self.index < len(self.tasks) else None

    def pump(self, wait: float = 0.0) -> bool:
        """Advance the job; ``wait`` seconds at most for a backend message. Returns whether it is finished."""
        if self.finished:
            return True
        try:
            self._step(wait)
        except Exception as exc:  # noqa: BLE001 - any failure ends the task, never the whole add-on
            self._fail_current(exc)
        if self.finished:
            return True
        return False

    def run_sync(self) -> None:
        """Pump until finished (background mode); Ctrl+C cancels the running request."""
        try:
            while not self.pump(wait=0.2):
                pass
        except KeyboardInterrupt:
            self.cancel()
            while not self.pump(wait=0.2):
                pass

    # -- steps --------------------------------------------------------------------------------------

    def _step(self, wait: float) -> None:
        task = self.current
        if task is None or (self.cancelled and self.pending is None):
            self._finish()
            return
        if self.pending is None:
            if time.monotonic() < task.busy_until:
                time.sleep(min(wait, task.busy_until - time.monotonic()))
                return
            self._start(task)
            return
        message = self.pending.get(timeout=wait)
        while message is not None:
            self._handle(task, message)
            if self.pending is None or self.finished:
                return
            message = self.pending.get(timeout=0)

    def _start(self, task: Task) -> None:
        client = backend.get_client()
        if client.hello is None or not client.alive():
            self.phase = "hello"
            self._set_status(task, "running", "Starting the backend...", 0.0)
            self.pending = client.start_async()
            if self.pending is not None:
                return
        self.phase = "generate"
        prepare.before_generate([t.object_name for t in self.tasks[self.index :]])
        obj = bpy.data.objects.get(task.object_name)
        if obj is None:
            raise errors.error(errors.NOTHING_SELECTED, f"Object '{task.object_name}' no longer exists.", "")
        _check_portrait(task.portrait)
        out_folder, _ = output_dir()
        _ensure_output_dir(out_folder)
        stamp = f"{safe_name(task.object_name)}_{int(time.time() * 1000)}"
        mesh_path = user_dir("captures") / f"{stamp}.npz"
        work = user_dir("work") / stamp
        task.scratch += [str(mesh_path), str(work)]
        base_texture = material.body_base_image(obj)
        body_mesh, body_texture, task.body_object = "", "", ""
        material_textures: list[str] = []
        # Captured unposed (its rig at rest), as the texture must fit every pose.
        with capture.at_rest([obj, obj.avatartex.body_object]) as posed:
            depsgraph = capture.evaluated_depsgraph()
            capture.capture_object(obj, depsgraph, task.uv_map, mesh_path, task.facing)
            # A body that is an object of its own (found or set in the panel): its skin matched at the neck.
            found = None if base_texture else capture.separate_body(obj)
            if found is not None:
                body_obj, body_image = found
                body_mesh = str(user_dir("captures") / f"{stamp}_body.npz")
                spare = user_dir("captures") / f"{stamp}_body.png"  # a packed image's pixels (a glTF import)
                task.scratch += [body_mesh, str(spare)]
                capture.capture_body(body_obj, obj, depsgraph, Path(body_mesh))
                body_texture = material.image_file(body_image, spare)
                task.body_object, task.body_image = body_obj.name, body_image.name
            elif not base_texture:  # a body in a material of its own (Daz's Face and Torso)
                material_textures = self._material_textures(task, obj, stamp)
        self._note_capture(task, obj, posed)
        params = protocol().GenerateParams(
            mesh=str(mesh_path),
            portrait=task.portrait,
            out_dir=str(work),
            style=task.style,
            prompt=task.prompt,
            size=task.size,
            engine=task.engine,
            seed=task.seed,
            strength=float(task.strength),
            facing=task.facing.lower() if task.facing != "AUTO" else "",
            # A full-body character: only its head is textured, the body kept from its image.
            base_texture=base_texture,
            tone_match=bpy.context.scene.avatartex.tone_match,
            body_mesh=body_mesh,
            body_texture=body_texture,
            material_textures=material_textures,
            scalp=task.scalp,
            subject=task.subject,
            white_balance=task.white_balance,
        )
        self._set_status(task, "running", "Sending to the backend...", 0.0)
        self.pending = client.send("generate", params.to_dict())
        if self.cancelled:  # pressed while the request was being made (another thread, a sync run):
            client.cancel(self.pending)  # cancel() found nothing pending to cancel

    def _material_textures(self, task: Task, obj: bpy.types.Object, stamp: str) -> list[str]:
        """The files of the images ``obj``'s texture sets show (a packed image's pixels copied to a
        scratch file), by set: the backend tones the body's where a set of its own meets the face's
        below the mouth. [] for an object with fewer than two sets with an image."""
        images = material.set_images(obj)
        if sum(image is not None for image in images) < 2:
            return []
        task.material_images = [image.name if image is not None else "" for image in images]
        files = []
        for index, image in enumerate(images):
            spare = user_dir("captures") / f"{stamp}_set{index}.png"
            task.scratch.append(str(spare))
            try:
                files.append(
                    material.image_file(image, spare) if image and material.has_pixels(image) else ""
                )
            except RuntimeError:  # pixels Blender cannot write out (a broken packed file): no tone from it
                files.append("")
        return files

    def _handle(self, task: Task, message: dict) -> None:
        if message.get("event") == "progress":
            fraction = float(message.get("fraction", 0.0))
            text = f"{message.get('stage', '')}: {message.get('message', '')}".strip(": ")
            self._set_status(task, "running", text, fraction, str(message.get("stage", "")))
            return
        self.pending = None
        if "error" in message:
            error = errors.for_artist(error_from_message(message))
            if error.code == protocol().ErrorCode.BUSY and time.monotonic() - self.started < BUSY_PATIENCE_S:
                # A request cancelled just before (another job, a file load) is still winding down.
                task.busy_until = time.monotonic() + 0.5
                return
            if error.code == errors.BACKEND_CRASHED and not task.retried and not self.cancelled:
                # Restart once: a crash may be a one-off (out of memory, a driver hiccup).
                task.retried = True
                note = f"The backend crashed while working on '{task.label}'; restarted it and retrying."
                self.notes.append(note + f" ({error.message})")
                self._set_status(task, "running", note, 0.0)
                return
            if self.phase == "hello" and error.code != errors.BACKEND_CRASHED:
                raise error
            if self.phase == "hello":
                raise errors.backend_error(f"The backend did not start. {error.message}", error.hint)
            raise error
        if self.phase == "hello":
            state.hello = backend.get_client().finish_start(message.get("result") or {})
            return
        if self.cancelled:
            self._set_status(task, "cancelled", "", 0.0)
            self._next()
            return
        result = message.get("result") or {}
        report = result.get("report") or {}
        slot = (report.get("material") or {}).get("index")
        self._note_warnings(task, report.get("warnings") or [])
        in_material = (report.get("body") or {}).get("material_index")
        if isinstance(in_material, int) and 0 <= in_material < len(task.material_images):
            # The body is a material of the head's own object: its toned copy goes on that set's slots.
            task.body_object, task.body_image = task.object_name, task.material_images[in_material]
        if (report.get("body") or {}).get("summary"):  # what was done to a full-body character
            said = report["body"]["summary"]
            if task.body_object and task.body_object != task.object_name:  # which object, and how chosen
                head = bpy.data.objects.get(task.object_name)
                how = "as set in the panel" if head and head.avatartex.body_object else "found under the head"
                said += f" (the object '{task.body_object}', {how}; set Body in the panel for another)"
                if head is not None and not shown_now(task, head):
                    said += "; kept with the variant, shown on the body by Apply Variant"
            self.notes.append(f"{task.label}: {said}")
        # A character over UDIM tiles: the body's tiles of its base image, shown unchanged beside the head's.
        tiles = {**(result.get("base_tiles") or {}), **(result.get("tiles") or {})}
        self._apply(task, result.get("texture", ""), report.get("quality") or {}, tiles, slot, result)

    def _note_capture(self, task: Task, obj: bpy.types.Object, posed: list[str]) -> None:
        """Say how the head was captured where its scene shows it otherwise: a posed rig left out,
        collection instances that show it too, shape keys that shape the face the texture is fitted to."""
        if posed:
            rigs = ", ".join(f"'{name}'" for name in posed)
            self.notes.append(
                f"{task.label}: captured in the rest position of {rigs} (posed in the scene): the texture "
                "fits the character unposed, as every pose deforms it"
            )
        instances = sorted(
            o.name
            for o in bpy.data.objects
            if o.instance_type == "COLLECTION"
            and o.instance_collection is not None
            and obj.name in o.instance_collection.all_objects
        )
        if instances:  # a collection instanced elsewhere: those show the same object, and its texture
            shown = ", ".join(f"'{name}'" for name in instances[:3]) + (" ..." if len(instances) > 3 else "")
            self.notes.append(
                f"{task.label}: {len(instances)} collection instance(s) show this object too ({shown}): "
                "they show its texture as well (Object > Apply > Make Instances Real to texture one apart)"
            )
        keys = capture.shape_keys_on(obj)
        if keys:
            self.notes.append(
                f"{task.label}: the texture is fitted to the face as its shape keys shape it "
                f"({', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}); an expression left on (a jaw "
                "open, a blink) moves the features off the face at rest: set it to 0 and generate again"
            )

    def _note_warnings(self, task: Task, warnings: list[str]) -> None:
        """The backend's warnings about a result (glasses taken off, an open mouth, the only material
        textured, mirrored UVs...) into the summary the panel shows: each once per run, and not the
        registration's, which the verdict says already. Auto's choice of the classic engine is said
        where something can be done about it (a GPU whose models are not downloaded: an artist got
        classic textures with no word), not where there is no GPU to run the neural engine on."""
        for warning in warnings:
            text = str(warning)
            if text.startswith("registration ") or text in self.warned:
                continue
            if text.startswith("engine auto chose") and not _auto_said(text):
                continue
            self.warned.add(text)
            self.notes.append(f"{task.label}: {text}")

    def _apply(
        self,
        task: Task,
        texture: str,
        quality: dict | None = None,
        tiles: dict | None = None,
        slot: int | None = None,
        result: dict | None = None,
    ) -> None:
        """Write the texture (``tiles``: UDIM number -> file, a head over several UV tiles) for the
        task's object or variant and show it through its material: the materials of texture set
        ``slot`` (``material.texture_sets``: the face's, which the backend textured, of an object
        with several), else the active one; and a separate body's toned copy (``result``'s
        ``body_texture``) through the body's."""
        obj = bpy.data.objects.get(task.object_name)
        if obj is None:
            raise errors.error(
                errors.NOTHING_SELECTED, f"Object '{task.object_name}' was deleted meanwhile.", ""
            )
        if not texture or not all(Path(p).is_file() for p in [texture, *(tiles or {}).values()]):
            raise errors.backend_error(
                f"The backend reported a texture that does not exist: {texture!r}.",
                "See the backend log.",
                code=protocol().ErrorCode.INTERNAL,
            )
        out_folder, next_to_blend = output_dir()
        settings = obj.avatartex
        variant = settings.variants[task.variant] if 0 <= task.variant < len(settings.variants) else None
        if task.variant >= 0 and variant is None:
            raise errors.error(
                protocol().ErrorCode.BAD_REQUEST, f"The variant '{task.label}' was removed meanwhile.", ""
            )
        record = settings.output if variant is None else variant.output
        # The texture is for the face's texture set (or, unnamed, the active slot's): each of its materials.
        sets, _names = material.texture_sets(obj)
        active = obj.active_material_index
        chosen = int(slot) if slot is not None else (sets[active] if active < len(sets) else None)
        slots = [i for i, s in enumerate(sets) if s == chosen] or [active]
        # A texture the artist packed into the .blend (to send one self-contained file): so is the next.
        shown_before = [
            material.texture_node(obj.material_slots[i].material)
            for i in slots
            if i < len(obj.material_slots)
        ]
        packed = any(
            node is not None and node.image is not None and node.image.packed_file for node in shown_before
        )
        if tiles:
            sources = {int(number): Path(path) for number, path in tiles.items()}
            image = outputs.write_tiles(sources, out_folder, task.file_stem, record, obj, self.notes)
        else:
            image = outputs.write_texture(Path(texture), out_folder, task.file_stem, record, obj, self.notes)
        if packed and image.packed_file is None and image.source != "TILED":
            image.pack()
        final = Path(bpy.path.abspath(image.filepath))
        shown = shown_now(task, obj)
        if variant is not None:
            variant.image = image
        else:  # kept (a user) while a variant is shown: a save no longer drops it
            settings.texture = image
        for index in reversed(slots) if shown else []:  # the set's first slot is left active
            obj.active_material_index = index
            _mat, note = material.apply_image(obj, image, task.uv_map)
            if note:
                self.notes.append(note)
        if shown and variant is not None and settings.texture is not None:
            self.notes.append(
                f"{obj.name} shows the variant '{variant.name}' now (the active one); Main Texture in the "
                "Variants panel shows its main texture again."
            )
        layers = obj.data.uv_layers if obj.type == "MESH" else []
        if len(layers) > 1:  # which of them is not obvious (the active one, the render one)
            used = capture.resolve_uv_map(obj, task.uv_map)
            why = (
                "as set in the panel"
                if task.uv_map
                else "the one the material's image read"
                if used == material.read_uv_map(obj)
                else "the one marked for rendering, or the active one"
            )
            self.notes.append(
                f"{task.label}: the texture is laid out in the UV map '{used}' ({why}) of "
                f"{len(layers)}; set UV Map in the AvatarTex panel for another."
            )
        if not next_to_blend and "unsaved" not in " ".join(self.notes):
            self.notes.append(
                f"The .blend is unsaved: textures went to {out_folder}; "
                "save the file to keep them next to it."
            )
        task.texture = str(final)
        verdict = (quality or {}).get("verdict", "")
        why = "; ".join((quality or {}).get("reasons", []))
        advice = "; ".join((quality or {}).get("advice", []))
        settings.verdict = verdict
        notes = "; ".join((quality or {}).get("notes", []))  # caveats of a good result
        settings.verdict_note = (f"{why}. Try: {advice}" if why and advice else why) or notes
        if verdict and verdict != "good":
            # A texture that may be wrong must say so where the artist looks: panel and summary.
            self.notes.append(f"{task.label}: registration {verdict}: {settings.verdict_note}")
        done_text = final.name if verdict in ("", "good") else f"{final.name} (registration {verdict})"
        if (result or {}).get("body_texture"):
            self._apply_body(task, Path(result["body_texture"]))
        self._set_status(task, "done", done_text, 1.0)
        if self.driver == "timer":
            _undo_push(f"AvatarTex: {task.label}")
        self._next()

    def _apply_body(self, task: Task, source: Path) -> None:
        """Show the body's toned copy (a body that is an object of its own, its skin matched to the
        face's) through the body's materials that showed its image: the artist's image is kept, and
        Restore Material on the body puts it back. A variant keeps its own copy (``variant.body_image``,
        shown again by Apply Variant); one that is not shown leaves the body as it is."""
        body = bpy.data.objects.get(task.body_object)
        head = bpy.data.objects.get(task.object_name)
        if body is None or head is None or not source.is_file():
            return
        settings = head.avatartex
        variant = settings.variants[task.variant] if 0 <= task.variant < len(settings.variants) else None
        source_image = bpy.data.images.get(task.body_image)
        slots = material.slots_showing(body, source_image) if source_image is not None else []
        if not slots:
            return
        out_folder, _ = output_dir()
        if variant is None:
            stem = f"{safe_name(body.name)}_toned"
            image = outputs.write_texture(
                source, out_folder, stem, body.avatartex.body_output, body, self.notes
            )
            settings.toned_body, settings.body_texture = body.name, image
        else:
            stem = f"{task.file_stem}_body"
            image = outputs.write_texture(source, out_folder, stem, variant.body_output, body, self.notes)
            variant.body_image, variant.body_object = image, body.name
            if not shown_now(task, head):
                return
        show_on_body(body, image, slots, self.notes)
        material.toned_through_shared(self.notes, head, body)

    def _fail_current(self, exc: Exception) -> None:
        task = self.current
        if self.pending is not None and state.client is not None:
            state.client.cancel(self.pending)
        self.pending = None
        if task is None:
            self._finish()
            return
        code, text = failure(exc)
        status = "cancelled" if code == "cancelled" else "failed"
        task.code = code if status == "failed" else ""
        self._set_status(task, status, "" if status == "cancelled" else text, 0.0)
        self._next()

    def _next(self) -> None:
        task = self.current
        if task is not None:
            for path in task.scratch:
                if Path(path).is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    Path(path).unlink(missing_ok=True)
            task.scratch.clear()
        self.index += 1
        self.phase = "idle"
        if self.index >= len(self.tasks) or self.cancelled:
            self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        for task in self.tasks[self.index :]:
            if task.status in ("queued", "running"):
                task.status, task.message = "cancelled", "before it ran"
                self._write_status(task)
        done = [t for t in self.tasks if t.status == "done"]
        failed = [t for t in self.tasks if t.status == "failed"]
        cancelled = [t for t in self.tasks if t.status == "cancelled"]
        head = f"{len(done)} done, {len(failed)} failed"
        if cancelled:
            head += f", {len(cancelled)} cancelled"
        failures = [f"{t.label}: {t.message}" for t in failed]
        self.summary = [head] + merged_notes(failures + self.notes, [t.label for t in self.tasks])
        state.last_summary = self.summary
        scene = bpy.context.scene
        if scene is not None and hasattr(scene, "avatartex"):
            only = self.tasks[0] if len(self.tasks) == 1 else None
            scene.avatartex.status = status_text(only.status, only.message) if only else head
            if done and not failed and not cancelled:
                scene.avatartex.progress = 1.0
        self.finished = True
        if self.driver == "timer" or bpy.app.background:
            # Nobody is left to report: say it on the console (scripts run from the UI, farm logs).
            print("AvatarTex: " + " | ".join(self.summary), flush=True)
        if state.job is self:
            state.job = None
        _status_bar(None)
        _redraw()

    # -- status -------------------------------------------------------------------------------------

    def _set_status(self, task: Task, status: str, message: str, fraction: float, stage: str = "") -> None:
        task.status, task.message = status, message
        self._write_status(task)
        total = max(len(self.tasks), 1)
        prefix = f"[{self.index + 1}/{total}] " if total > 1 else ""
        text = status_text(status, message)
        scene = bpy.context.scene
        if scene is not None and hasattr(scene, "avatartex"):
            scene.avatartex.progress = min(1.0, (self.index + fraction) / total)
            scene.avatartex.status = f"{prefix}{task.label}: {text}"
            _status_bar(f"AvatarTex {prefix}{task.label}: {text} ({scene.avatartex.progress:.0%})")
        if self.driver == "sync" and bpy.app.background:
            # A farm's log: one line per object and stage (not per progress event), flushed at once.
            key = (self.index, status if status != "running" else stage or message)
            if key != self._printed:
                self._printed = key
                code = f" [{task.code}]" if status == "failed" and task.code else ""
                print(f"AvatarTex [{self.index + 1}/{total}] {task.label}{code}: {text}", flush=True)
        _redraw()

    def _write_status(self, task: Task) -> None:
        obj = bpy.data.objects.get(task.object_name)
        text = status_text(task.status, task.message)
        if obj is not None:
            if task.variant < 0:
                obj.avatartex.status, obj.avatartex.error_code = text, task.code
            elif task.variant < len(obj.avatartex.variants):
                obj.avatartex.variants[task.variant].status = text
        scene = bpy.context.scene
        if self.kind == "batch" and scene is not None and hasattr(scene, "avatartex"):
            item = scene.avatartex.batch.get(task.object_name)
            if item is not None:
                item.status, item.message, item.code = task.status, task.message, task.code


def _check_portrait(path: str) -> None:
    proto = protocol()
    if not path:
        raise errors.error(
            proto.ErrorCode.PORTRAIT_MISSING,
            "No portrait is set for this object.",
            "Pick a portrait photo in the AvatarTex panel (Portrait field).",
        )
    if path.startswith("//"):
        raise errors.error(
            proto.ErrorCode.PORTRAIT_MISSING,
            f"The portrait {path} is relative to the .blend, which is not saved yet.",
            "Save the .blend first, or pick the portrait again with Relative Path off.",
        )
    if Path(path).is_dir():
        raise errors.error(
            proto.ErrorCode.PORTRAIT_MISSING,
            f"The portrait {path} is a folder, not an image file.",
            "Pick the photo file itself (a PNG, JPEG or HEIC) in the folder.",
        )
    if not Path(path).is_file():
        packed = any(
            image.packed_file is not None and Path(bpy.path.abspath(image.filepath)).resolve() == Path(path)
            for image in bpy.data.images
            if image.filepath
        )
        raise errors.error(
            proto.ErrorCode.PORTRAIT_MISSING,
            f"The portrait {path} does not exist"
            + (
                " as a file: it is packed into this .blend, which the backend cannot read." if packed else "."
            ),
            "Unpack it (File > External Data > Unpack Resources) or pick the photo file again."
            if packed
            else "Pick an existing photo file.",
        )


def _ensure_output_dir(folder: Path) -> None:
    from .paths import ensure_writable_dir

    ensure_writable_dir(folder)


def _undo_push(message: str) -> None:
    """Make a result applied from a timer one undo step (operators get theirs from Blender)."""
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError:
        pass


def _status_bar(text: str | None) -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        try:
            window.workspace.status_text_set_internal(text)
        except (AttributeError, RuntimeError):
            pass


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None or bpy.app.background:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


# -- building and running jobs -------------------------------------------------------------------------


def shown_now(task: Task, obj: bpy.types.Object) -> bool:
    """Whether the task's texture is the one ``obj``'s material shows once written: its main
    texture, its active variant's, or its only variant's."""
    settings = obj.avatartex
    return task.variant < 0 or task.variant == settings.active_variant_index or len(settings.variants) == 1


def own_body_copies(obj: bpy.types.Object) -> set:
    """The toned copies of ``obj``'s own body material (a body in a material of the head's object)
    its variants and its last run wrote: the images Apply Variant leaves to the body's slots."""
    settings = obj.avatartex
    copies = {v.body_image for v in settings.variants if v.body_object == obj.name and v.body_image}
    written = outputs.own_file(settings.body_output, obj.name) if settings.toned_body == obj.name else None
    return copies | set(outputs.images_of(written) if written is not None else [])


def merged_notes(notes: list[str], labels: list[str]) -> list[str]:
    """``notes`` with those that say the same of several tasks (``"<label>: <text>"``, one of
    ``labels``) said once for all of them ("Head, Hero: <text>"), where the first of them stood: a
    batch of heads with one verdict repeated its paragraph for each."""
    by_text: dict[str, list[str]] = {}
    order: list[tuple[str, str]] = []  # (kind, key): a note as it is, or a text several labels share
    longest_first = sorted(set(labels), key=len, reverse=True)  # "Head.001" before "Head"
    for note in notes:
        label = next((name for name in longest_first if note.startswith(f"{name}: ")), None)
        if label is None:
            order.append(("note", note))
            continue
        text = note[len(label) + 2 :]
        if text not in by_text:
            by_text[text] = []
            order.append(("text", text))
        if label not in by_text[text]:
            by_text[text].append(label)
    return [key if kind == "note" else f"{', '.join(by_text[key])}: {key}" for kind, key in order]


def show_on_body(body: bpy.types.Object, image: bpy.types.Image, slots: list[int], notes: list[str]) -> None:
    """``image`` (a toned copy of the body's image) shown through the body's material ``slots``."""
    active = body.active_material_index
    uv_map = capture.resolve_uv_map(body, "")
    for index in slots:
        body.active_material_index = index
        _mat, note = material.apply_image(body, image, uv_map)
        if note:
            notes.append(note)
    body.active_material_index = active


def task_for(obj: bpy.types.Object, scene: bpy.types.Scene, variant: int = -1) -> Task:
    """A task with the scene's settings (or the variant's style/seed/strength) for ``obj``."""
    settings = scene.avatartex
    task = Task(
        object_name=obj.name,
        portrait=portrait_path(obj),
        style=settings.style,
        prompt=settings.prompt,
        size=settings.resolution,
        engine=settings.engine,
        seed=settings.seed,
        strength=settings.strength,
        uv_map=settings.uv_map,
        facing=settings.facing,
        scalp=properties.scalp_param(settings.scalp),
        subject=properties.subject_param(settings.subject),
        white_balance=settings.white_balance,
        label=obj.name,
        file_stem=safe_name(obj.name),
    )
    if variant >= 0:
        v = obj.avatartex.variants[variant]
        task.variant, task.style, task.seed, task.strength = variant, v.style, v.seed, v.strength
        task.label = f"{obj.name} / {v.name}"
        task.file_stem = variant_stem(obj, v)
    return task


def variant_stem(obj: bpy.types.Object, variant) -> str:
    """File name (no ``.png``) of a variant's texture and export: ``<object>_<variant name>``."""
    return safe_name(f"{obj.name}_{variant.name or variant_name(variant.style, variant.seed)}")


def free_seed(variants, style: str, seed: int) -> int:
    """``seed``, or the first after it that no variant of ``style`` has: the panel's Seed is the new
    variant's, and pressing Add again steps it rather than repeating a variant."""
    taken = {v.seed for v in variants if v.style == style}
    while seed in taken:
        seed += 1
    return seed


def variant_name(style: str, seed: int) -> str:
    """The name a new variant gets: its style and seed, which its files are then named after too."""
    return f"{style} {seed}"


def _seed_free(style: str) -> bool:
    """Whether the backend said (``hello``) that ``style``, fully applied by the classic engine, is
    the same texture for every seed."""
    styles = (state.hello or {}).get("styles") or []
    return any(isinstance(s, dict) and s.get("name") == style and s.get("seed_free") for s in styles)


def classic_will_run(scene: bpy.types.Scene) -> bool:
    """Whether the scene's engine setting gives the classic engine: chosen, or ``auto`` while the
    neural engine cannot run (``hello``'s code for it is not ``ok``)."""
    from .engines import neural_code

    engine = scene.avatartex.engine
    return engine == "classic" or (engine == "auto" and neural_code() != "ok")


def _settings(variant) -> tuple:
    """What a variant's texture is made with: its style, seed and strength."""
    return (variant.style, variant.seed, variant.strength)


def same_texture_as(obj: bpy.types.Object, index: int, scene: bpy.types.Scene):
    """The earlier variant of ``obj`` whose texture variant ``index`` repeats, or None: one of the
    same style, seed and strength (a variant edited to match), on any engine; or the same style, both
    fully applied, a style the backend makes alike for every seed on the classic engine (toon, comic,
    anime: ``Style.seed_free``), and the classic engine to run. Add Variant steps the seed, which
    then changes nothing: two generations, one texture under two names."""
    variants = obj.avatartex.variants
    if not 0 <= index < len(variants):
        return None
    variant = variants[index]
    earlier = list(variants)[:index]
    same = next((v for v in earlier if _settings(v) == _settings(variant)), None)
    if same is not None or not classic_will_run(scene):
        return same
    if variant.strength < 1.0 or not _seed_free(variant.style):
        return None
    return next((v for v in earlier if v.style == variant.style and v.strength >= 1.0), None)


def same_texture_note(obj: bpy.types.Object, index: int, scene: bpy.types.Scene) -> str:
    """What to tell the artist about variant ``index`` (``same_texture_as``), or ''."""
    twin = same_texture_as(obj, index, scene)
    if twin is None:
        return ""
    variant = obj.avatartex.variants[index]
    if _settings(twin) == _settings(variant):
        return (
            f"'{variant.name}' will be the same texture as '{twin.name}': the same style, seed and "
            "strength. Give it another seed, style or strength"
        )
    return (
        f"'{variant.name}' will be the same texture as '{twin.name}': {variant.style} on the classic "
        "engine does not depend on the seed. Give it another style or a strength under 1"
    )


def portrait_path(obj: bpy.types.Object) -> str:
    """The object's portrait as an absolute path; ``//`` is the folder of the .blend (or of the library
    the object comes from). A ``//`` path in an unsaved file stays as it is (``_check_portrait`` says why)."""
    raw = obj.avatartex.portrait_path
    if raw.startswith("~"):  # a path typed as a shell would take it
        raw = os.path.expanduser(raw)
    if not raw or (raw.startswith("//") and obj.library is None and not bpy.data.filepath):
        return raw
    return str(Path(bpy.path.abspath(raw, library=obj.library)).resolve())


NO_GPU_REASONS = ("no GPU torch can use", "torch sees no CUDA or MPS device", "the device is the CPU")
"""How the backend's auto choice of the classic engine begins where no GPU could run the neural one
(``engines.neural.status``, ``engines.choose``): nothing for the artist to do, so not said each run."""


def _auto_said(warning: str) -> bool:
    """Whether auto's choice of the classic engine (``warning``) is worth a note in the summary."""
    return not any(reason in warning for reason in NO_GPU_REASONS)


def failure(exc: Exception) -> tuple[str, str]:
    """An error's code (``internal`` for an unexpected one) and its text for a status line."""
    if hasattr(exc, "code"):
        return str(exc.code or "internal"), str(exc)
    return "internal", f"{type(exc).__name__}: {exc}"


def status_text(status: str, message: str) -> str:
    """One status line, said once: "Done: Head.png", "Failed: <why>", the current step while running."""
    if status == "running":
        return message
    word = {"done": "Done", "failed": "Failed", "cancelled": "Cancelled", "queued": "Queued"}.get(
        status, status
    )
    return f"{word}: {message}" if message else word


def check_idle() -> None:
    """Raise a clear error when a job is already running (one backend, one job at a time)."""
    if state.job is not None and not state.job.finished:
        raise errors.error(
            errors.ALREADY_RUNNING,
            "AvatarTex is already generating.",
            "Wait for it to finish or press Cancel (Esc).",
        )


SCRATCH_KEEP_S = 24 * 3600.0
"""Age after which a capture or backend work folder in the user folder is a leftover: a run removes
its own when its task ends, but a Blender killed mid-run (a farm task stopped, a crash) left its
mesh capture (megabytes a head) for ever. Another Blender's run in progress is far younger."""


def remove_stale_scratch(now: float | None = None) -> list[Path]:
    """Remove the captures and work folders older than SCRATCH_KEEP_S; returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for kind in ("captures", "work"):
        folder = user_dir(kind)
        for path in folder.iterdir() if folder.is_dir() else ():
            try:
                if now - path.stat().st_mtime < SCRATCH_KEEP_S:
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
            except OSError:
                continue
    return removed


def start(job: Job, driver: str) -> Job:
    """Make ``job`` the running job; with the timer driver it advances by itself."""
    check_idle()
    remove_stale_scratch()
    job.driver = driver
    state.job = job
    # Statuses from an earlier run would read as this one's: every task starts as queued.
    for task in job.tasks:
        task.status, task.message = "queued", ""
        job._write_status(task)
    scene = bpy.context.scene
    if scene is not None and hasattr(scene, "avatartex"):
        scene.avatartex.status, scene.avatartex.progress = "", 0.0
    if driver == "timer":
        bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL_S)
    return job


def _timer() -> float | None:
    job = state.job
    if job is None or job.driver != "timer":
        return None
    if job.pump(wait=0.0):
        return None
    return TIMER_INTERVAL_S
