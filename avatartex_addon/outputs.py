"""The files this add-on writes (textures, exports): recorded, replaced next time, never anyone else's.

Each object and variant keeps an ``AVATARTEX_PG_output`` record of the file it last got. A later run
replaces exactly that file, atomically, when it is still the add-on's: written for this object (not
for the original of a Shift+D duplicate), unchanged since (size and time), and not shown by another
object's material. Anything else gets a new, unused name, so an artist's file is never replaced.
Image datablocks are named like their files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from glob import escape as glob_escape
from pathlib import Path

import bpy

from .paths import (
    file_stamp,
    place_unique,
    place_unique_tiles,
    protocol,
    provenance,
    replace_own,
    safe_name,
    stamp_matches,
    user_dir,
)

UDIM_TOKEN = "<UDIM>"
"""What stands for the tile number in a tiled image's file path (Blender's own token)."""


def blender_path(path: Path) -> str:
    """``path`` as Blender stores it: ``//``-relative when next to the saved .blend, else absolute."""
    if bpy.data.filepath:
        try:
            relative = bpy.path.relpath(str(path))
        except ValueError:  # another drive on Windows
            return str(path)
        if relative.startswith("//") and not relative.startswith("//.."):
            return relative
    return str(path)


def _written_for(record, owner: str) -> bool:
    """Whether ``record``'s file was written for ``owner``: for its name, or for a name no object
    has any more (``owner`` renamed since; a copy of an object that still exists carries its record
    too, and is not its owner)."""
    return record.owner == owner or bool(record.owner and record.owner not in bpy.data.objects)


def _made_for(owner: str) -> dict[str, str]:
    """The provenance a file written now for the object ``owner`` carries (``paths.with_provenance``)."""
    return {"object": owner, "blend": Path(bpy.data.filepath).name if bpy.data.filepath else ""}


def other_blend(path: Path) -> str:
    """The .blend beside the open one that ``path`` was written for, by the file's own word
    (``paths.provenance``): a shot saved from this one as a template, or an earlier version of it,
    whose objects carry the same records. Its file is its own: replacing it changed another shot's
    render with no word. "" where the file was written for the open .blend, in an unsaved file, before
    files said so, or for a .blend no longer beside this one (renamed, or a project folder copied or
    moved with it, whose files are still the add-on's)."""
    blend = provenance(path).get("blend", "") if path.is_file() else ""
    if not blend:
        return ""
    if not bpy.data.filepath:
        return blend
    here = Path(bpy.data.filepath)
    return blend if blend != here.name and (here.parent / blend).is_file() else ""


_WRITTEN: dict[str, str] = {}
"""Resolved path -> the stamp (``file_stamp``) this add-on last wrote it with, in this session: what
a record says, as Undo does not take it back. After Generate, Undo, Generate the record is the one
from before the second run, whose stamp no longer matches the file that run wrote: without this the
file was taken for someone else's and the next run wrote ``<object>_001.png`` beside it."""


def own_file(record, owner: str) -> Path | None:
    """The file ``record`` names when this add-on wrote it for ``owner`` (``_written_for``: a renamed
    object's file is replaced, not left beside a new one) and nobody changed it since: the stamp it
    was written with, as recorded or (after an Undo) as this session wrote it."""
    if not record.path or not _written_for(record, owner):
        return None
    path = Path(bpy.path.abspath(record.path))
    try:
        stamps = (record.stamp, _WRITTEN.get(str(path.resolve()), ""))
        ours = any(stamp_matches(path, stamp) for stamp in stamps)
    except OSError:
        return None
    return path if ours and not other_blend(path) else None


def changed_since(record, owner: str) -> Path | None:
    """The file ``record`` names where this add-on wrote it for ``owner`` and it was changed since (an
    edit in an image editor, a copy over it): kept, which the artist is told; None otherwise."""
    if not record.path or not _written_for(record, owner):
        return None
    path = Path(bpy.path.abspath(record.path))
    return path if path.is_file() and own_file(record, owner) is None and not other_blend(path) else None


def remember(record, path: Path, owner: str) -> None:
    """Record that ``path`` was just written for ``owner``."""
    record.path = blender_path(path)
    record.stamp = file_stamp(path)
    record.owner = owner
    _WRITTEN[str(path.resolve())] = record.stamp


def images_of(path: Path) -> list[bpy.types.Image]:
    """Image datablocks that read the file ``path``, or hold it packed into the .blend."""
    target = str(path.resolve())
    found = []
    for image in bpy.data.images:
        if image.source != "FILE" or not image.filepath:
            continue
        try:
            if str(Path(bpy.path.abspath(image.filepath, library=image.library)).resolve()) == target:
                found.append(image)
        except (OSError, ValueError):
            continue
    return found


def shown_elsewhere(images: list[bpy.types.Image], obj: bpy.types.Object) -> list[str]:
    """Names of the objects other than ``obj`` whose materials show one of ``images``."""
    if not images:
        return []
    shown = set()
    for mat in bpy.data.materials:
        tree = mat.node_tree
        if tree is None or not any(getattr(n, "image", None) in images for n in tree.nodes):
            continue
        shown.add(mat)
    return sorted(
        o.name for o in bpy.data.objects if o != obj and any(s.material in shown for s in o.material_slots)
    )


def kept_because(files: list[Path], images: list[bpy.types.Image]) -> str:
    """Why the add-on's own earlier file(s) must not be replaced although it wrote them: paint on
    their image not saved yet (Texture Paint), or a file made read-only since (a checked-in file a
    version control locks), or paint packed into the .blend since (``_packed_differs``); "" when
    nothing keeps them."""
    dirty = [image.name for image in images if image.is_dirty]
    if dirty:
        return f"'{dirty[0]}' has paint not saved yet"
    repacked = [image.name for image in images if _packed_differs(image)]
    if repacked:
        return f"'{repacked[0]}' holds paint packed into the .blend (Image > Pack) that its file has not"
    locked = [path.name for path in files if path.is_file() and not path.stat().st_mode & 0o222]
    return f"{locked[0]} is read-only" if locked else ""


def _packed_differs(image: bpy.types.Image) -> bool:
    """Whether ``image`` holds packed data other than its file's bytes: paint packed after it was
    made (Image > Pack packs the pixels as they are), which the file on disk has not. Replacing the
    file and packing it again threw that paint away, unsaid (the image was not dirty any more). A
    tiled image's tiles are packed one by one, each against its own file."""
    if image.source == "TILED":
        files = tile_files(image)
        packed = [(files.get(item.tile_number), item.packed_file) for item in image.packed_files]
    elif image.packed_file is not None:
        packed = [(Path(bpy.path.abspath(image.filepath, library=image.library)), image.packed_file)]
    else:
        return False
    for path, data in packed:
        try:
            if data is not None and (data.size != path.stat().st_size or data.data != path.read_bytes()):
                return True
        except (OSError, AttributeError):  # no file to differ from: nothing lost by replacing it
            continue
    return False


def _keep_images(kept: str, images: list[bpy.types.Image], notes: list[str] | None, what: str) -> None:
    """Where ``kept`` says why the earlier images hold the artist's work, keep them in the .blend: the
    new texture takes their place in the material, and an image nothing uses is dropped when the
    .blend is saved, its paint with it. A fake user keeps them (the shield in the Image Editor)."""
    if not kept:
        return
    for image in images:
        image.use_fake_user = True
    if notes is not None:
        names = ", ".join(f"'{image.name}'" for image in images)
        notes.append(f"{kept}: {what}" + (f"; {names} kept in the .blend (fake user)" if names else ""))


def write_texture(
    source: Path, folder: Path, stem: str, record, obj: bpy.types.Object, notes: list[str] | None = None
) -> bpy.types.Image:
    """Put the texture ``source`` in ``folder`` as ``stem.png`` (or the record's own file); returns its image.

    The record's file is replaced in place when it is still ours, no other object shows it and nothing
    keeps it (``kept_because``: unsaved paint, read-only; said in ``notes``); otherwise a new file
    gets a name no file and no image datablock has yet.
    """
    made = _made_for(obj.name)
    previous = own_file(record, obj.name)
    images = images_of(previous) if previous is not None else []
    kept = kept_because([previous], images) if previous is not None else ""
    _keep_images(kept, images, notes, "the new texture went to a file of its own, the old one left as it is")
    if (
        previous is not None
        and previous.parent == folder.resolve()
        and not shown_elsewhere(images, obj)
        and not kept
    ):
        final = replace_own(source, previous, made)
        image = images[0] if images else None
        if image is not None:
            if image.packed_file is not None:
                # Packed by the artist: the same datablock (its name, what refers to it) reads the new
                # file, packed again by the caller. A new image beside it took the name with ".png"
                # and left the old one holding the last texture.
                image.unpack(method="REMOVE")
            image.reload()
    elif (orphan := _unsaved_own(folder, stem, obj)) is not None:
        final, image = replace_own(source, orphan, made), None
    else:
        wanted = folder / f"{stem}.png"
        foreign = wanted.is_file() and not _recorded_for(obj, wanted)
        final = place_unique(source, folder, stem, taken=lambda name: name in bpy.data.images, made=made)
        image = None
        changed = changed_since(record, obj.name)
        recorded = Path(bpy.path.abspath(record.path)) if record.path else None
        theirs = other_blend(recorded) if recorded is not None else ""
        if theirs and notes is not None:
            notes.append(
                f"{recorded.name} is {theirs}'s (beside this .blend, whose {obj.name} was saved from it): "
                f"kept as it is, the new texture is {final.name}"
            )
        elif changed is not None and notes is not None:
            notes.append(
                f"{changed.name} was changed since AvatarTex wrote it (an edit outside Blender?): kept as "
                f"it is, the new texture is {final.name}"
            )
        elif foreign and final != wanted and not kept and notes is not None:  # kept: said above
            # Written by AvatarTex for an object of this name in another file (another unsaved one's,
            # in the user folder), or the artist's own.
            whose = (
                f"AvatarTex wrote it for another file's {obj.name}"
                if provenance(wanted).get("object") == obj.name
                else f"not a file AvatarTex wrote for {obj.name}"
            )
            notes.append(
                f"{wanted.name} was already in {folder.name}/ ({whose}): kept as it is, the new texture "
                f"is {final.name}"
            )
    if image is None:
        image = bpy.data.images.load(str(final), check_existing=False)
    if image.name != final.stem and final.stem not in bpy.data.images:
        image.name = final.stem
    image.filepath = blender_path(final)
    remember(record, final, obj.name)
    return image


def _unsaved_own(folder: Path, stem: str, obj: bpy.types.Object) -> Path | None:
    """A texture of ``stem``'s family (``stem.png``, ``stem_NNN.png``) in ``folder`` that this add-on
    wrote for ``obj`` in the open .blend (the file's own word, ``paths.provenance``) and that the
    .blend neither records nor shows: a run whose .blend was not saved after it (a render farm's
    task that stopped on another object's failure before its save). It was left beside the next
    run's ``stem_001.png``, said to be someone else's, one more on every retry; it is replaced now."""
    if not bpy.data.filepath or not folder.is_dir():
        return None
    blend = Path(bpy.data.filepath).name
    for path in sorted(folder.glob(f"{glob_escape(stem)}*.png")):
        if not _same_family(path.stem, stem):
            continue
        made = provenance(path)
        if made.get("object") != obj.name or made.get("blend") != blend or images_of(path):
            continue
        if not any(_recorded_for(other, path) for other in bpy.data.objects):
            return path
    return None


def write_tiles(
    sources: dict[int, Path],
    folder: Path,
    stem: str,
    record,
    obj: bpy.types.Object,
    notes: list[str] | None = None,
) -> bpy.types.Image:
    """Put the UDIM tiles ``sources`` (tile number -> file) in ``folder`` as ``name.<tile>.png`` and
    return one tiled image showing them all (a head whose UVs lie in several tiles).

    As ``write_texture`` does for one file: the record's tiles are replaced in place when every one
    is still ours (written for this object, unchanged since, the same tiles) and no other object
    shows them; otherwise the tiles get a new name none of whose tiles exists
    (``place_unique_tiles``), so neither the artist's files nor anyone else's are touched.
    """
    previous = own_tiles(record, obj.name)
    images = [
        i for i in bpy.data.images if previous and i.source == "TILED" and _pattern_of(i) == previous[0]
    ]
    kept = kept_because(list(previous[1].values()), images) if previous is not None else ""
    what = "the new tiles went to files of their own, the old ones left as they are"
    _keep_images(kept, images, notes, what)
    if (
        previous is not None
        and set(previous[1]) == set(sources)
        and previous[0].parent == folder.resolve()
        and not shown_elsewhere(images, obj)
        and not kept
    ):
        made = _made_for(obj.name)
        placed = {number: replace_own(sources[number], path, made) for number, path in previous[1].items()}
        image = images[0] if images else None
        if image is not None:
            image.reload()
    else:
        placed = place_unique_tiles(
            sources, folder, stem, taken=lambda name: name in bpy.data.images, made=_made_for(obj.name)
        )
        image = None
    first = placed[min(placed)]
    name = first.stem.rsplit(".", 1)[0]
    pattern = folder / f"{name}.{UDIM_TOKEN}{first.suffix}"
    if image is None:
        image = bpy.data.images.load(str(first), check_existing=False)
        image.source = "TILED"  # Blender finds the other tiles beside the first and names the pattern
    if image.name != name and name not in bpy.data.images:
        image.name = name
    image.filepath = blender_path(pattern)
    record.path, record.stamp, record.owner = blender_path(pattern), tiles_stamp(placed), obj.name
    return image


def tiles_stamp(files: dict[int, Path]) -> str:
    """Each tile's number and stamp (``file_stamp``): ``number=stamp;...``."""
    return ";".join(f"{number}={file_stamp(path)}" for number, path in sorted(files.items()))


def own_tiles(record, owner: str) -> tuple[Path, dict[int, Path]] | None:
    """The pattern and tile files ``record`` names when this add-on wrote them for ``owner``
    (``_written_for``) and nobody changed any since."""
    if (
        not record.path
        or not _written_for(record, owner)
        or UDIM_TOKEN not in record.path
        or not record.stamp
    ):
        return None
    pattern = Path(bpy.path.abspath(record.path)).resolve()
    try:
        stamps = {int(n): stamp for n, stamp in (entry.split("=", 1) for entry in record.stamp.split(";"))}
        files = {n: Path(str(pattern).replace(UDIM_TOKEN, str(n))) for n in stamps}
        unchanged = all(stamp_matches(files[n], stamp) for n, stamp in stamps.items())
        return (pattern, files) if unchanged and not any(map(other_blend, files.values())) else None
    except (OSError, ValueError):
        return None


def _pattern_of(image: bpy.types.Image) -> Path | None:
    try:
        return Path(bpy.path.abspath(image.filepath, library=image.library)).resolve()
    except (OSError, ValueError):
        return None


def tile_files(image: bpy.types.Image) -> dict[int, Path]:
    """The files of a tiled image's tiles that exist, by tile number."""
    pattern = str(Path(bpy.path.abspath(image.filepath, library=image.library)))
    files = {tile.number: Path(pattern.replace(UDIM_TOKEN, str(tile.number))) for tile in image.tiles}
    return {number: path for number, path in files.items() if path.is_file()}


def export_file(source: Path, folder: Path, stem: str, record, owner: str) -> Path:
    """Write ``source`` to ``folder/stem.png``, replacing this record's earlier export of that name there
    (``stem.png`` or the ``stem_NNN.png`` it had to take); anything else gets a new, unused name."""
    previous, made = own_file(record, owner), _made_for(owner)
    if previous is not None and previous.parent == folder.resolve() and _same_family(previous.stem, stem):
        final = replace_own(source, previous, made)
    else:
        final = place_unique(source, folder, stem, made=made)
    remember(record, final, owner)
    return final


def _same_family(name: str, stem: str) -> bool:
    """Whether ``name`` is ``stem`` or one of the ``stem_NNN`` names ``place_unique`` gives."""
    return name == stem or (name.startswith(stem + "_") and name[len(stem) + 1 :].isdigit())


def in_user_folder(path: Path) -> bool:
    """Whether ``path`` lies in this extension's user folder (textures of an unsaved .blend)."""
    try:
        path.resolve().relative_to(user_dir().resolve())
    except ValueError:
        return False
    return True


UNSAVED_KEEP_DAYS = 7
"""Days a texture of an unsaved file is kept in the user folder before Clean Up may remove it: another
Blender open on an unsaved file may still show it (this one cannot tell), and Blender's autosave of
such a session points at it until the session is recovered or given up."""


def used_files() -> set[str]:
    """The resolved paths of every image file the open .blend shows (each tile of a tiled one)."""
    used = set()
    for image in bpy.data.images:
        if image.source not in ("FILE", "TILED") or not image.filepath or image.packed_file is not None:
            continue
        path = bpy.path.abspath(image.filepath, library=image.library)
        paths = [path]
        if image.source == "TILED":
            paths = [path.replace("<UDIM>", str(tile.number)) for tile in image.tiles]
        used.update(str(Path(p).resolve()) for p in paths)
    return used


def unsaved_leftovers(keep_days: float = UNSAVED_KEEP_DAYS) -> tuple[list[Path], int]:
    """The files in the user folder's ``textures`` (textures of unsaved files; a first save moves them
    next to the .blend) that the open file does not show and that were last written over
    ``keep_days`` ago, and the bytes of every file there (what the preferences show)."""
    folder = user_dir("textures")
    old_before = time.time() - keep_days * 86400.0
    old, total = [], 0
    for entry in os.scandir(folder):
        if not entry.is_file(follow_symlinks=False):
            continue
        stat = entry.stat(follow_symlinks=False)
        total += stat.st_size
        if stat.st_mtime < old_before:
            old.append(Path(entry.path))
    # The open file's images resolved only where a file is old enough (the preferences redraw this).
    used = used_files() if old else set()
    return sorted(path for path in old if str(path.resolve()) not in used), total


def _recorded_for(obj: bpy.types.Object, path: Path) -> bool:
    """Whether ``path`` is a file one of ``obj``'s records names (its texture's, a variant's, a body's)."""
    target = path.resolve()
    for record in records_of(obj):
        if record.path and Path(bpy.path.abspath(record.path)).resolve() == target:
            return True
    return False


def records_of(obj: bpy.types.Object) -> list:
    """Every record of a file the add-on wrote for ``obj``: its texture, the toned copy of its image as
    a head's body, and its variants' (and their bodies')."""
    settings = obj.avatartex
    variants = list(settings.variants)
    return list(settings.records) + [v.output for v in variants] + [v.body_output for v in variants]


def move_next_to(blend_path: str) -> list[str]:
    """Before a save to ``blend_path``: copy the textures that live in the extension's user folder to
    ``textures/`` next to it and point their images and records there. Returns the files moved.

    A saved .blend must never point into the extension's folders: uninstalling the extension deletes
    them. The copies get names no file and no other image has; the old files are removed once the
    save is done (``after_save``). The first save of a new file gets ``//`` paths; a file saved before
    gets absolute ones, because Blender remaps relative paths from the old folder when saving elsewhere.
    """
    folder = Path(blend_path).resolve().parent / "textures"
    relative = not bpy.data.filepath
    moved: dict[str, Path] = {}
    _packed_instead.clear()

    def stored(path: Path) -> str:
        return "//" + path.relative_to(folder.parent).as_posix() if relative else str(path)

    for image in bpy.data.images:
        if image.source == "TILED" and image.filepath and image.packed_file is None and not image.library:
            try:
                _move_tiles(image, folder, moved, stored)
            except (OSError, protocol().AvatarTexError) as error:  # a save cannot be stopped: pack it
                _pack_instead(image, folder, error, stored)
            continue
        if image.source != "FILE" or not image.filepath or image.packed_file is not None or image.library:
            continue
        path = Path(bpy.path.abspath(image.filepath))
        if not in_user_folder(path) or not path.is_file():
            continue
        key = str(path.resolve())
        if key not in moved:
            own = image.name
            try:
                moved[key] = place_unique(
                    path,
                    folder,
                    _wanted_stem(path.stem, path),
                    taken=lambda name, own=own: name != own and name in bpy.data.images,
                )
            except (OSError, protocol().AvatarTexError) as error:  # as above
                _pack_instead(image, folder, error, stored)
                continue
        new = moved[key]
        image.filepath = stored(new)
        if image.name != new.stem and new.stem not in bpy.data.images:
            image.name = new.stem
    for obj in bpy.data.objects:
        for record in records_of(obj):
            old = str(Path(bpy.path.abspath(record.path)).resolve()) if record.path else ""
            if old in moved:
                record.path = stored(moved[old])
                if UDIM_TOKEN in moved[old].name:  # a tiled image's pattern: its tiles' stamps
                    numbers = [entry.split("=", 1)[0] for entry in record.stamp.split(";") if "=" in entry]
                    files = {int(n): Path(str(moved[old]).replace(UDIM_TOKEN, n)) for n in numbers}
                    record.stamp = tiles_stamp(files) if all(f.is_file() for f in files.values()) else ""
                else:
                    record.stamp = file_stamp(moved[old])
    _moved.clear()
    _moved.update(moved)
    return [path for path in moved if UDIM_TOKEN not in path]  # the files (not the tiles' patterns)


def _wanted_stem(stem: str, written: Path) -> str:
    """The name ``stem`` of a texture in the user folder moves beside the .blend under: the one it
    was written for (``Head``, ``Head_toon_7``), not the ``_NNN`` the user folder gave it beside
    another unsaved file's texture of that name (``written``, the file or a tile of it, names its
    object in its provenance)."""
    base, _, number = stem.rpartition("_")
    owner = provenance(written).get("object", "")
    own = safe_name(owner) if owner else ""
    if own and len(number) == 3 and number.isdigit() and (base == own or base.startswith(f"{own}_")):
        return base
    return stem


_packed_instead: list[str] = []
"""The images ``move_next_to`` packed into the .blend being saved, as its ``textures/`` could not
take them (a read-only folder, a full disk), with why: for the save handler to tell the artist."""


def _pack_instead(
    image: bpy.types.Image, folder: Path, error: Exception, stored: Callable[[Path], str]
) -> None:
    """Pack ``image`` (a texture in the extension's user folder) into the .blend being saved, where
    its copy beside the .blend could not be written: a save cannot be stopped from its handler, and
    it went on pointing into the extension's folders, whose Clean Up or uninstall then deleted the
    texture the saved .blend showed. Its paths (``stored``) then name ``folder``, where the copy was
    going: *File › External Data › Unpack Resources › Use files in original location* wrote it back
    into the user folder."""
    source = Path(bpy.path.abspath(image.filepath))
    image.pack()
    # filepath_raw: setting filepath reloads the image from the packed bytes
    image.filepath_raw = stored(folder / source.name)
    for packed in image.packed_files:
        packed.filepath = stored(folder / Path(bpy.path.abspath(packed.filepath)).name)
    why = getattr(error, "message", "") or str(error) or type(error).__name__
    _packed_instead.append(f"'{image.name}' (could not be written to {folder}: {why})")


def packed_instead() -> list[str]:
    """What the last ``move_next_to`` packed into the .blend instead of moving (``_pack_instead``)."""
    return list(_packed_instead)


def _move_tiles(image: bpy.types.Image, folder: Path, moved: dict[str, Path], stored) -> None:
    """``move_next_to`` for a tiled image in the user folder: its tiles under one new name in
    ``folder``; ``moved`` gets each tile file and the pattern (the record names the pattern)."""
    pattern = Path(bpy.path.abspath(image.filepath))
    files = tile_files(image)
    if not in_user_folder(pattern) or not files:
        return
    key = str(pattern.resolve())
    if key not in moved:
        own = image.name
        stem = _wanted_stem(pattern.name[: -len(f".{UDIM_TOKEN}{pattern.suffix}")], files[min(files)])
        placed = place_unique_tiles(
            files, folder, stem, taken=lambda name, own=own: name != own and name in bpy.data.images
        )
        for number, path in files.items():
            moved[str(path.resolve())] = placed[number]
        name = placed[min(placed)].stem.rsplit(".", 1)[0]
        moved[key] = folder / f"{name}.{UDIM_TOKEN}{pattern.suffix}"
    new = moved[key]
    image.filepath = stored(new)
    name = new.name[: -len(f".{UDIM_TOKEN}{new.suffix}")]
    if image.name != name and name not in bpy.data.images:
        image.name = name


_moved: dict[str, Path] = {}
"""User-folder file -> its copy next to the .blend, between ``move_next_to`` and ``after_save``."""


def after_save(blend_path: str) -> None:
    """After a save: remove the user-folder files that were moved (they are the add-on's). After
    *Save Copy* of an unsaved file this session still has no folder: its images get absolute paths."""
    if not _moved:
        return
    if bpy.data.filepath != blend_path:
        copies = {str(new) for new in _moved.values()}
        base = Path(blend_path).resolve().parent
        for image in bpy.data.images:
            if image.filepath.startswith("//") and str(base / image.filepath[2:]) in copies:
                image.filepath = str(base / image.filepath[2:])
        for obj in bpy.data.objects:
            for record in records_of(obj):
                if record.path.startswith("//") and str(base / record.path[2:]) in copies:
                    record.path = str(base / record.path[2:])
    for old in _moved:
        Path(old).unlink(missing_ok=True)
    _moved.clear()
