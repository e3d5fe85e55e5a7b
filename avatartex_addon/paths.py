"""Where things live: the bundled backend, the extension's user folder, output textures.

Nothing is ever written inside the add-on's own folder: it may be read-only and is wiped on upgrade.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import bpy

ADDON_PACKAGE = __package__ or "avatartex_addon"
_ADDON_DIR = Path(__file__).resolve().parent


def backend_root() -> Path:
    """The folder holding the bundled ``avatartex`` backend package (goes on the backend's PYTHONPATH).

    Inside the built zip it is ``<add-on>/backend``; when the add-on runs from the source tree it is
    the repository's ``backend`` folder.
    """
    for candidate in (_ADDON_DIR / "backend", _ADDON_DIR.parent / "backend"):
        if (candidate / "avatartex" / "protocol.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"The AvatarTex backend source is missing next to {_ADDON_DIR}; reinstall the extension."
    )


def requirements_file(neural: bool = False) -> Path:
    """The backend's ``requirements.txt`` (or the neural engine's ``requirements-neural.txt``) bundled
    with the add-on (may not exist in dev builds)."""
    return backend_root() / ("requirements-neural.txt" if neural else "requirements.txt")


_protocol: ModuleType | None = None


def protocol() -> ModuleType:
    """The backend's stdlib-only ``protocol`` module, loaded by file path.

    Importing the backend package itself inside Blender is avoided on purpose: only this one file
    is guaranteed to need nothing but the standard library.
    """
    global _protocol
    if _protocol is None:
        path = backend_root() / "avatartex" / "protocol.py"
        name = f"{ADDON_PACKAGE}._protocol"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        # dataclasses resolve annotations through sys.modules, so register before executing.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _protocol = module
    return _protocol


def user_dir(sub: str = "") -> Path:
    """A writable folder of this extension's user data (``extension_path_user``), created on demand.

    Legacy (non-extension) installs have no extension user folder; they use Blender's config folder.
    """
    try:
        base = bpy.utils.extension_path_user(ADDON_PACKAGE, create=True)
    except (ValueError, RuntimeError, TypeError):
        base = bpy.utils.user_resource("CONFIG", path="avatartex", create=True)
    path = Path(base) / sub if sub else Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_dir() -> tuple[Path, bool]:
    """Folder for generated textures and whether it is next to the saved .blend.

    Saved files get ``//textures/`` so the images travel with the project; unsaved files get the
    extension's user folder, because there is no project folder yet.
    """
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//textures")), True
    return user_dir("textures"), False


WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{device}{n}" for device in ("COM", "LPT") for n in list("123456789") + ["¹", "²", "³"]]
)
"""Device names Windows will not take as a file's name, whatever its extension (``CON.png``): an
object called ``Con`` or ``aux`` is a plausible name for a character."""


def safe_name(text: str) -> str:
    """A file-name-safe version of an object or variant name (letters of any script kept: 頭 -> 頭),
    one Windows can write too (``CON`` -> ``CON_``)."""
    cleaned = re.sub(r"[^\w.-]+", "_", text).strip("._") or "texture"
    stem, dot, rest = cleaned.partition(".")
    return f"{stem}_{dot}{rest}" if stem.upper() in WINDOWS_RESERVED else cleaned


def ensure_writable_dir(folder: Path) -> None:
    """Create ``folder`` and prove it is writable by creating a file in it; raise AvatarTexError if not."""
    proto = protocol()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".avatartex-probe-"):
            pass
    except OSError as exc:
        raise proto.AvatarTexError(
            proto.ErrorCode.OUTPUT_NOT_WRITABLE,
            f"Cannot write textures to {folder}: {exc.strerror or exc}.",
            "Save the .blend somewhere you can write to, or fix the folder's permissions.",
        ) from None


def file_mode() -> int:
    """Mode of a new file as ``open()`` would make it: 0666 less the process umask (0644 usually).

    ``mkstemp`` creates files 0600, which other users and farm nodes cannot read on shared storage.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROVENANCE_KEY = b"AvatarTex"
"""Keyword of the PNG text chunk that says for which object and .blend a texture was written
(``with_provenance``): the records travel with a .blend (saved as another shot, a run not saved), the
file's own word stays with the file."""


def with_provenance(data: bytes, provenance: dict[str, str]) -> bytes:
    """The PNG ``data`` with ``provenance`` as a text chunk right after its header; the pixels are
    untouched. Data that is not a PNG comes back as it is."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return data
    header_end = 8 + 12 + int.from_bytes(data[8:12], "big")
    text = PROVENANCE_KEY + b"\0" + json.dumps(provenance, sort_keys=True).encode("ascii")  # Latin-1 safe
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + zlib.crc32(b"tEXt" + text).to_bytes(4, "big")
    return data[:header_end] + chunk + data[header_end:]


def provenance(path: Path) -> dict[str, str]:
    """What ``with_provenance`` put in ``path`` ({} for any other file, or one that cannot be read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return {}
    if head[:8] != PNG_SIGNATURE:
        return {}
    pos = 8
    while pos + 8 <= len(head):
        size, kind = int.from_bytes(head[pos : pos + 4], "big"), head[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"tEXt":
            key, _, value = head[pos + 8 : pos + 8 + size].partition(b"\0")
            if key == PROVENANCE_KEY:
                try:
                    found = json.loads(value.decode("ascii"))
                except ValueError:
                    return {}
                return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
        pos += 12 + size
    return {}


def _staged_copy(source: Path, folder: Path, suffix: str, made: dict[str, str] | None = None) -> Path:
    """A complete copy of ``source`` in ``folder`` under a hidden temporary name, with ``file_mode()``
    (and, where given, the provenance ``made``: ``with_provenance``)."""
    ensure_writable_dir(folder)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".avatartex-", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if made:  # read once, written once with its chunk (a 4096² texture is tens of MB)
            tmp.write_bytes(with_provenance(Path(source).read_bytes(), made))
        else:
            shutil.copyfile(source, tmp)
        os.chmod(tmp, file_mode())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def file_stamp(path: Path) -> str:
    """Size, modification time and a digest of ``path``'s bytes: ``size:mtime_ns:digest``."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{_digest(path)}"


def stamp_matches(path: Path, stamp: str) -> bool:
    """Whether ``path`` is the file ``stamp`` (``file_stamp``) was taken of: its size and time, or,
    where only the time differs (a project folder copied, unzipped, checked out or synced: the copy
    has a time of its own), its bytes. Stamps of files written before the digest (``size:mtime``)
    match on size and time alone."""
    if not stamp:
        return False
    st = path.stat()
    size, _, rest = stamp.partition(":")
    mtime, _, digest = rest.partition(":")
    if size != str(st.st_size):
        return False
    return mtime == str(st.st_mtime_ns) or (bool(digest) and digest == _digest(path))


def _digest(path: Path) -> str:
    """A digest of the file's bytes (BLAKE2b, 128 bits; a 4096² texture of 30 MB in about 0.05 s)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def replace_own(source: Path, target: Path, made: dict[str, str] | None = None) -> Path:
    """Atomically replace ``target`` (a file this add-on wrote earlier) with a copy of ``source`` (with
    the provenance ``made``, where given)."""
    tmp = _staged_copy(source, target.parent, target.suffix, made)
    try:
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _claim(tmp: Path, target: Path) -> bool:
    """Give the staged copy ``tmp`` the name ``target`` unless that name exists; whether it did.

    A hard link fails instead of overwriting, so a file that appeared meanwhile is never replaced.
    """
    if target.exists():
        return False
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError:
        # File systems without hard links: the existence check above is the best we can do.
        if target.exists():
            return False
        os.replace(_staged_copy(tmp, target.parent, target.suffix), target)  # whole, or not at all
    return True


def _free_names(stem: str, taken: Callable[[str], bool]):
    """``stem``, ``stem_001``, ``stem_002``... less those ``taken`` rules out."""
    for index in range(10000):
        name = stem if index == 0 else f"{stem}_{index:03d}"
        if not taken(name):
            yield name


def place_unique(
    source: Path,
    folder: Path,
    stem: str,
    suffix: str = ".png",
    taken: Callable[[str], bool] = lambda _stem: False,
    made: dict[str, str] | None = None,
) -> Path:
    """Copy ``source`` into ``folder`` under a new, unused name ``stem[_NNN]suffix``; atomic, no clobber.

    ``taken(stem)`` rules out further names (an image datablock already called so, whose name the
    new image could then not have). The copy goes to a temporary file first and is then hard-linked
    to its final name, which fails instead of overwriting when the name exists: the artist's images
    are never replaced. ``made``: the provenance the copy carries (``with_provenance``).
    """
    tmp = _staged_copy(source, folder, suffix, made)
    try:
        for name in _free_names(stem, taken):
            target = folder / f"{name}{suffix}"
            if _claim(tmp, target):
                return target
        raise FileExistsError(f"no free file name for {stem}{suffix} in {folder}")
    finally:
        tmp.unlink(missing_ok=True)


def place_unique_tiles(
    sources: dict[int, Path],
    folder: Path,
    stem: str,
    suffix: str = ".png",
    taken: Callable[[str], bool] = lambda _stem: False,
    made: dict[str, str] | None = None,
) -> dict[int, Path]:
    """Copy UDIM tiles (tile number -> file) into ``folder`` as ``name.<tile>suffix`` under one new
    name none of whose tiles exists yet (``stem[_NNN]``), as ``place_unique`` copies one file: staged
    first, then linked without clobbering; a name one of whose tiles exists is given up whole."""
    staged = {number: _staged_copy(path, folder, suffix, made) for number, path in sources.items()}
    try:
        for name in _free_names(stem, taken):
            targets = {number: folder / f"{name}.{number}{suffix}" for number in staged}
            claimed = []
            for number, tmp in staged.items():
                if not _claim(tmp, targets[number]):
                    break
                claimed.append(targets[number])
            else:
                return targets
            for target in claimed:
                target.unlink(missing_ok=True)
        raise FileExistsError(f"no free file name for the tiles of {stem}{suffix} in {folder}")
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def relative_for(path: str, old_blend: str, new_blend: str) -> str:
    """A ``//``-relative path of a .blend at ``old_blend``, made relative to ``new_blend`` instead
    (what Blender's *Remap Relative* does for images on Save As, and not for an add-on's string
    properties): the same file, found from the new place. Other paths come back as they are, and so
    does one that cannot be relative from the new place (another drive): then absolute."""
    if not path.startswith("//") or not old_blend or not new_blend:
        return path
    old_folder, new_folder = Path(old_blend).resolve().parent, Path(new_blend).resolve().parent
    if old_folder == new_folder:
        return path
    target = old_folder / path[2:].replace("\\", "/")
    try:
        return "//" + Path(os.path.relpath(target, new_folder)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(target)
