"""The contract between the Blender add-on and the backend process.

Standard library only: the add-on imports this file inside Blender's own Python, where numpy may be
the only third-party package. The wire format is JSON lines over the backend's stdin/stdout:

    -> {"id": 7, "method": "generate", "params": {...}}
    <- {"id": 7, "event": "progress", "stage": "inpaint", "fraction": 0.4, "message": "step 8/20"}
    <- {"id": 7, "result": {"texture": "/.../texture.png", "report": {...}}}
    <- {"id": 7, "error": {"code": "no_face_in_portrait", "message": "...", "hint": "..."}}

A request gets any number of progress events and then exactly one result or one error. Large data
travel as files whose paths are in the messages (``.npz`` mesh captures, PNG images). A head whose
UVs lie in several UDIM tiles gets one texture per tile: the result adds ``"tiles": {"1001": path,
"1002": path}`` (``texture`` is then the first); the report's ``material`` names the material slot
textured when the capture has several (``CAPTURE_KEYS["materials"]``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change of the messages below; ``hello`` reports it."""

METHODS = ("hello", "prepare", "generate", "cancel", "shutdown")
"""``prepare`` (``PrepareParams``) readies a head before its ``generate``: optional, and a backend
that predates it answers ``unknown_method``; ``hello`` lists the methods a backend serves."""
ENGINES = ("auto", "classic", "neural")
STAGES = ("analyse", "register", "project", "inpaint", "latent", "repaint", "bake")

# Keys of a mesh-capture file (``numpy.savez``), the format the add-on writes for the backend.
CAPTURE_KEYS = {
    "positions": "float32 (V, 3) vertex positions, any unit and origin; the add-on sends them world-oriented "
    "(the object's rotation applied, its translation and overall scale left out), so that the up and "
    "forward hints, which are world axes, hold",
    "triangles": "int32 (T, 3) vertex indices, counter-clockwise seen from outside",
    "uvs": "float32 (T, 3, 2) per-corner UV coordinates of the chosen UV map, (0, 0) bottom-left",
    "normals": "float32 (V, 3) optional vertex normals; recomputed when absent",
    "pins": "int32 (P,) optional vertex indices of landmark pins, -1 where a pin is not set",
    "materials": "int32 (T,) optional material slot of each triangle; only the face's material is "
    "textured (each material has its own texture, and their UV islands may overlap)",
    "material_names": "str (S,) optional names of the material slots",
    "pin_names": "str (P,) optional names of those pins, from PIN_NAMES",
    "name": "str () the object's name, for messages",
    "up": "float32 (3,) optional up axis of the object (Blender: +Z)",
    "forward": "float32 (3,) optional direction the face looks towards, when the artist knows it",
}

SCALP_CHOICES = ("", "skin", "hair")
"""``GenerateParams.scalp``: empty takes the style's choice."""

WHITE_BALANCE_CHOICES = ("auto", "eyes", "off")
"""``GenerateParams.white_balance`` (``whitebalance.py``)."""

MAX_SEED = 2**63 - 1
"""``GenerateParams.seed`` runs from 0 to this: the noise is compiled for 64-bit integers and numpy's
generators take no negative seed."""

SUBJECT_CHOICES = ("", "same", "other")
"""``GenerateParams.subject``: empty decides from the photo."""

PIN_NAMES = (
    "right_eye_outer",
    "right_eye_inner",
    "left_eye_inner",
    "left_eye_outer",
    "nose_tip",
    "mouth_right",
    "mouth_left",
    "chin",
)
"""Landmark pins an artist can mark on a vertex. Left/right are the character's own."""


class ErrorCode:
    """Machine-readable error codes. Every error a user can hit has one of these."""

    PARSE_ERROR = "parse_error"
    BAD_REQUEST = "bad_request"
    UNKNOWN_METHOD = "unknown_method"
    BUSY = "busy"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
    PACKAGES_MISSING = "packages_missing"
    """The backend's Python lacks a package it needs (the hint says how to install it)."""
    PORTRAIT_MISSING = "portrait_missing"
    PORTRAIT_UNREADABLE = "portrait_unreadable"
    NO_FACE_IN_PORTRAIT = "no_face_in_portrait"
    FACE_TOO_SMALL = "face_too_small"
    MESH_MISSING = "mesh_missing"
    MESH_UNREADABLE = "mesh_unreadable"
    MESH_EMPTY = "mesh_empty"
    MESH_INVALID = "mesh_invalid"
    NO_UV_MAP = "no_uv_map"
    UV_MAP_NOT_FOUND = "uv_map_not_found"
    NO_FACE_ON_MESH = "no_face_on_mesh"
    UNKNOWN_STYLE = "unknown_style"
    UNKNOWN_ENGINE = "unknown_engine"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    MODEL_MISSING = "model_missing"
    OUTPUT_NOT_WRITABLE = "output_not_writable"
    INVALID_SIZE = "invalid_size"
    BASE_TEXTURE_UNREADABLE = "base_texture_unreadable"
    """``GenerateParams.base_texture`` is missing or not an 8/16-bit image (full-body characters)."""
    UV_TILES = "uv_tiles"
    """The textured triangles' UVs lie in several tiles the texture cannot be split into (a tile
    outside the UDIM grid, or one base texture for a character whose head spans several tiles)."""
    # Raised by the Blender add-on itself, never sent by the backend:
    BACKEND_UNAVAILABLE = "backend_unavailable"
    """The backend interpreter is not set, missing, or fails before answering ``hello``."""
    BACKEND_CRASHED = "backend_crashed"
    """The backend process died while a request was running."""
    NOTHING_SELECTED = "nothing_selected"
    NOT_A_MESH = "not_a_mesh"
    ALREADY_RUNNING = "already_running"
    LINKED_DATA = "linked_data"
    """The object, its mesh or its material is linked from another .blend: a texture put in it
    would be lost when the file is saved and opened again."""


class AvatarTexError(Exception):
    """An error the user can act on: what happened, why, and what to do about it."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        # A message is often assembled from another's sentence ("cannot run: {reason}."), which may
        # end in its own full stop: one is kept (an ellipsis stays).
        message, hint = _one_full_stop(message), _one_full_stop(hint)
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        """The ``error`` object of a protocol message."""
        return {"code": self.code, "message": self.message, "hint": self.hint}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AvatarTexError:
        """Rebuild an error received over the wire."""
        return cls(
            str(data.get("code", ErrorCode.INTERNAL)), str(data.get("message", "")), str(data.get("hint", ""))
        )

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def _one_full_stop(text: str) -> str:
    """``text`` without a doubled full stop at its end ("device.." -> "device.")."""
    return text[:-1] if text.endswith("..") and not text.endswith("...") else text


class Cancelled(AvatarTexError):
    """Raised inside a stage when the client cancelled the request."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.CANCELLED, "Generation was cancelled.", "")


@dataclass
class GenerateParams:
    """Parameters of ``generate``; also what the CLI builds from its flags."""

    mesh: str
    """Path of a mesh-capture ``.npz`` (from the add-on) or an ``.obj``/``.glb``/``.gltf``/``.ply``."""
    portrait: str
    """Path of the portrait photo (PNG, JPEG, HEIC, TIFF, WebP, AVIF; 8 or 16 bit; any orientation tag)."""
    out_dir: str
    """Folder that receives ``texture.png`` and ``report.json``; created if missing."""
    style: str = "photoreal"
    """A style preset name (``hello`` lists them)."""
    prompt: str = ""
    """Free text added to the style's prompt (neural engine only)."""
    size: int = 1024
    """Edge length in pixels of the square output texture, 512 to 4096."""
    engine: str = "auto"
    """``auto``, ``classic`` or ``neural``."""
    seed: int = 0
    """Seed of every random choice, 0 to ``MAX_SEED``; the same inputs and seed give the same texture."""
    strength: float = 1.0
    """How strongly the style is applied, 0 (photo) to 1 (the preset as designed); a value outside
    (or NaN, infinity) is a ``bad_request``."""
    uv_map: str = ""
    """Name of the UV map to bake into (mesh files with several); empty picks the first."""
    unwrap: bool = False
    """Make a UV map with xatlas when the mesh has none."""
    bit_depth: int = 8
    """8 or 16 bits per channel of the PNG."""
    debug: bool = False
    """Also write the partial projection, confidence map and landmark overlay."""
    facing: str = ""
    """Direction the face looks in the mesh's space (``+z``, ``-y``...); empty searches. A facing in
    which no face is found is searched past, with a warning naming the direction the face looks."""
    texture_name: str = "texture.png"
    """File name of the texture inside ``out_dir``: a plain name ending in ``.png`` (no folder in it,
    so that nothing is written outside ``out_dir``); UDIM tiles are ``<stem>.<UDIM>.png``."""
    # -- body: full-body characters (body.py); on a plain head a base texture sets only size and depth --
    base_texture: str = ""
    """Path of the material's existing base-colour image (full-body characters; ``name.<UDIM>.png``
    for UDIM tiles: each head tile over its own, the result's ``base_tiles`` naming the rest). When given, the
    texture written is a copy of it (same size, bit depth and alpha) with the head region replaced
    through a mask feathered along the neck; texels outside the head and the blend band stay bit for
    bit (see ``tone_match`` for the one exception). A square base of 512-4096 also sets ``size`` and
    ``bit_depth``. Empty: the body gets a skin fill of the face's tone."""
    tone_match: str = "body_to_face"
    """With ``base_texture``: ``body_to_face`` moves the body's skin-like texels (and only those) to
    the face's tone measured at the neck; ``face_to_body`` moves the head's skin to the body's;
    ``none`` blends the two as they are."""
    body_mesh: str = ""
    """A body that is a mesh of its own (a separate object: VRoid's Face and Body, a head set on a
    stock body): its mesh file or capture, in the head mesh's coordinates. With ``body_texture`` the
    skin is matched across the neck as ``tone_match`` says (``separate_body.py``): ``body_to_face``
    writes a toned copy of the body's image beside the texture (``<texture stem>_body.png``; the
    result's ``body_texture``), ``face_to_body`` tones the head's texture, ``none`` measures."""
    body_texture: str = ""
    """With ``body_mesh``: the body's base-colour image (read, never written over)."""
    material_textures: list[str] = field(default_factory=list)
    """A mesh of several materials (a capture's ``materials``; a file's primitives): each material's
    base-colour image, by material index, "" where it shows none. Where the face's material meets
    another's below the mouth (Daz's and Character Creator's Face and Torso, a bust's Skin and Neck)
    that one is the body: its skin is matched across the seam as with ``body_mesh``
    (``separate_body.in_material``), its toned copy the result's ``body_texture``. Not used with
    ``body_mesh``."""
    # -- end body --
    scalp: str = ""
    """What covers the scalp: ``skin`` (a clean scalp with a soft hairline, for hair made as a separate
    mesh or cards), ``hair`` (the photo's hair continued over the whole scalp, front to back), or
    empty for the style's own choice (``skin`` in every preset)."""
    subject: str = ""
    """Whom the photo shows: ``same``, the person this head was made from (a scan, a photogrammetry
    head: the photo's mid-scale tones are the skin's own and are kept); ``other``, someone else than
    the head's sculpted, stylized or scanned face (the photographed face's relief, the shading of its
    nose, sockets and cheekbones that the mesh's shape does not cast, is taken out of the skin);
    empty: decided from how much of the photo's crease shading the mesh's own creases explain
    (report.json ``lighting.relief``)."""
    white_balance: str = "auto"
    """The photo's light colour, read on its eye whites: ``auto`` takes it out where the whites say
    the light was coloured (tungsten, a sunset, a cool shade) and leaves other photos as they are;
    ``eyes`` balances on the whites whenever they can be read; both also brighten an underexposed
    photo and denoise a grainy one (``photo_condition.py``); ``off`` keeps the photo's colours, exposure
    and grain (a warning still names a coloured light, a dark or a grainy photo). report.json
    ``portrait.white_balance`` and ``portrait.condition`` say what was read and done."""
    pins: dict[str, Any] = field(default_factory=dict)
    """Landmark pins over the mesh's own (a capture's): a name of ``PIN_NAMES`` -> a vertex index of
    the mesh as read, or a point ``[x, y, z]`` in its coordinates (its nearest vertex). The fallback
    where no face is found on the mesh, and an override of the detected points where one is."""

    def __post_init__(self) -> None:
        _check_paths_given(
            self,
            mesh="the path of the head mesh (a capture .npz, .glb, .gltf, .obj or .ply)",
            portrait="the path of the photo of the face",
            out_dir="the folder to write the texture into",
        )
        if not _is_png_file_name(self.texture_name):
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"texture_name must be a plain file name ending in .png, not {self.texture_name!r}.",
                'Send a name such as "texture.png", without a folder: the folder it goes in is out_dir.',
            )
        # Written so that NaN fails it too (JSON's NaN and Infinity parse, as do --strength nan and inf);
        # an integer too large for a float is compared exactly (_checked_params leaves it one).
        if not 0.0 <= self.strength <= 1.0:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"Style strength {_number_text(self.strength)} is not a number from 0 to 1.",
                "Give a strength from 0 (the photo as it is) to 1 (the style as its preset designs it).",
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"Seed {_number_text(self.seed)} is out of range: a seed is a whole number from 0 to "
                f"{MAX_SEED} (2^63 - 1).",
                "Pick a seed in that range; the same seed gives the same texture.",
            )
        if bool(self.body_mesh) != bool(self.body_texture):
            given, missing = (
                ("body_mesh", "body_texture") if self.body_mesh else ("body_texture", "body_mesh")
            )
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"{given} was given without {missing}: the skin across the neck is matched between the "
                "body's mesh and its texture, both.",
                f"Send {missing} too (the body's mesh in the head's coordinates, and its base-colour "
                "image), or neither.",
            )
        if not all(isinstance(path, str) for path in self.material_textures):
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"material_textures must be a list of image paths, got {self.material_textures!r}.",
                'Send one path per material of the mesh, "" for a material that shows no image.',
            )
        if self.scalp not in SCALP_CHOICES:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"Unknown scalp option {self.scalp!r}: the scalp is either skin or hair.",
                'Send "scalp": "skin" (a clean scalp), "hair" (the photo\'s hair over it), or "" for '
                "the style's default.",
            )
        if self.white_balance not in WHITE_BALANCE_CHOICES:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"Unknown white balance {self.white_balance!r}: it is read on the eye whites or left alone.",
                'Send "white_balance": "auto" (taken out where the eye whites show a coloured light), '
                '"eyes" (always balanced on the eye whites) or "off" (the photo\'s colours kept).',
            )
        if self.subject not in SUBJECT_CHOICES:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"Unknown subject {self.subject!r}: the photo shows either this head's person or another.",
                'Send "subject": "same" (the photo shows the person this head was made from), "other" '
                '(another face than the head\'s), or "" to let the photo decide.',
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerateParams:
        """Validate and build from a request's ``params``; unknown keys are a ``bad_request``."""
        return cls(**_checked_params(cls, data, "generate", "mesh, portrait and out_dir are required."))

    def to_dict(self) -> dict[str, Any]:
        """The ``params`` object of a ``generate`` request."""
        return dataclasses.asdict(self)


@dataclass
class PrepareParams:
    """Parameters of ``prepare``: what a later ``generate`` on this mesh will compute from the mesh
    alone (its landmarks, head frame, atlas and UV surface), computed now and kept by the backend.

    The add-on sends it when a head becomes the panel's target, so that the landmark search (a few
    seconds on a head never seen) runs while the artist picks a photo. Its result says what was
    found: ``ready`` (bool); with ``ready`` false, ``problem`` (an ``error`` object: the mesh has no
    face, no UV map...), which the later ``generate`` reports again in full, so a client need not
    show it. A ``generate`` arriving while a ``prepare`` runs waits for it and then finds its work
    done; ``cancel`` stops it between detector views.
    """

    mesh: str
    """As ``GenerateParams.mesh``: a capture ``.npz`` or a mesh file."""
    size: int = 1024
    """The texture size the ``generate`` will ask for (its atlas and UV surface are built)."""
    uv_map: str = ""
    """As ``GenerateParams.uv_map``."""
    unwrap: bool = False
    """As ``GenerateParams.unwrap``."""
    facing: str = ""
    """As ``GenerateParams.facing``: part of what the head's landmarks depend on."""
    pins: dict[str, Any] = field(default_factory=dict)
    """As ``GenerateParams.pins``: part of what the head's landmarks depend on."""

    def __post_init__(self) -> None:
        _check_paths_given(self, mesh="the path of the head mesh (a capture .npz, .glb, .gltf, .obj or .ply)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrepareParams:
        """Validate and build from a request's ``params``; unknown keys are a ``bad_request``."""
        return cls(**_checked_params(cls, data, "prepare", "mesh is required."))

    def to_dict(self) -> dict[str, Any]:
        """The ``params`` object of a ``prepare`` request."""
        return dataclasses.asdict(self)


def _check_paths_given(params: Any, **meanings: str) -> None:
    """A ``bad_request`` for a path field of ``params`` that is empty (or blank): an empty ``out_dir``
    would write into the backend's working folder, an empty mesh or photo path fail with a message
    about a file named ``''`` or ``'.'``. ``meanings``: field name -> what the path names."""
    for name, meaning in meanings.items():
        if not str(getattr(params, name)).strip():
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"{name} is required: {meaning}; the request's is empty.",
                f'Send "{name}" as a full path.',
            )


def _is_png_file_name(name: str) -> bool:
    """Whether ``name`` is a file name (no folder, no drive, on POSIX and Windows alike) with
    something before its ``.png`` suffix (any case)."""
    return (
        name == PurePosixPath(name).name == PureWindowsPath(name).name
        and "\0" not in name
        and len(name) > len(".png")
        and name.lower().endswith(".png")
    )


def _number_text(value: Any) -> str:
    """``value`` for a message: a whole number of more than 20 digits (a request may carry hundreds)
    is shortened to its first digits and its length."""
    try:
        text = repr(value)
    except ValueError:  # beyond Python's limit on turning an int into text (4300 digits)
        return "(a number of more than 4300 digits)"
    digits = len(text.lstrip("-"))
    return f"{text[:8]}... ({digits} digits)" if isinstance(value, int) and digits > 20 else text


def _checked_params(cls: type, data: Any, method: str, required_hint: str) -> dict[str, Any]:
    """A request's ``params`` checked against the dataclass ``cls``'s fields (every key known,
    every required one present, each of its field's type): typed ``bad_request`` errors."""
    if not isinstance(data, dict):
        raise AvatarTexError(ErrorCode.BAD_REQUEST, f"{method} params must be a JSON object.", required_hint)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Unknown {method} parameter(s): {unknown}.",
            f"Known parameters: {sorted(names)}.",
        )
    missing = [
        n
        for n, f in names.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in data
    ]
    if missing:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST, f"Missing {method} parameter(s): {missing}.", required_hint
        )
    kwargs = {}
    for key, value in data.items():
        known = names[key]
        if known.default is not dataclasses.MISSING:
            expected = type(known.default)
        elif known.default_factory is not dataclasses.MISSING:
            expected = type(known.default_factory())
        else:
            expected = str
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # beyond any float: left an int, which the field's range refuses
                kwargs[key] = value
                continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"The {method} parameter {key!r} must be {expected.__name__}, got {value!r}.",
                "",
            )
        kwargs[key] = value
    return kwargs


@dataclass
class Progress:
    """A progress event of a running request."""

    stage: str
    """One of STAGES."""
    fraction: float
    """Progress of the whole request, 0 to 1."""
    message: str = ""


@dataclass
class Request:
    """A request line from the client."""

    id: int | str
    method: str
    params: dict[str, Any] = field(default_factory=dict)


def encode(message: dict[str, Any]) -> str:
    """One protocol line (no newline inside: JSON escapes them)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def decode_request(line: str) -> Request:
    """Parse one line from the client, raising a typed error for anything malformed (never another
    exception: the server answers it and keeps serving)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise AvatarTexError(
            ErrorCode.PARSE_ERROR,
            f"Not a JSON line: {exc.msg} at column {exc.colno}.",
            "Send one JSON object per line.",
        ) from None
    except ValueError:  # valid JSON, but an integer past Python's 4300-digit limit for reading one
        raise AvatarTexError(
            ErrorCode.PARSE_ERROR,
            "Not a JSON line the backend can read: a number in it has more than 4300 digits.",
            "Send one JSON object per line, with numbers of ordinary size.",
        ) from None
    except RecursionError:  # valid JSON, nested deeper than Python's reader recurses
        raise AvatarTexError(
            ErrorCode.PARSE_ERROR,
            "Not a JSON line the backend can read: its arrays or objects are nested too deeply.",
            "Send one JSON object per line, nested a few levels at most.",
        ) from None
    if not isinstance(data, dict):
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST, "A request must be a JSON object.", 'Send {"id": 1, "method": "hello"}.'
        )
    method = data.get("method")
    req_id = data.get("id")
    if not isinstance(method, str) or not isinstance(req_id, (int, str)) or isinstance(req_id, bool):
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            "A request needs an integer or string 'id' and a 'method'.",
            'Send {"id": 1, "method": "hello"}.',
        )
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise AvatarTexError(ErrorCode.BAD_REQUEST, "'params' must be a JSON object.", "")
    return Request(req_id, method, params)


def progress_message(req_id: int | str, progress: Progress) -> dict[str, Any]:
    """The ``event`` line of a progress update."""
    return {"id": req_id, "event": "progress", **dataclasses.asdict(progress)}


def result_message(req_id: int | str | None, result: dict[str, Any]) -> dict[str, Any]:
    """The final line of a successful request."""
    return {"id": req_id, "result": result}


def error_message(req_id: int | str | None, error: AvatarTexError) -> dict[str, Any]:
    """The final line of a failed request."""
    return {"id": req_id, "error": error.to_dict()}
