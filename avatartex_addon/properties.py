"""Properties: one root group on the Scene (``scene.avatartex``), one on each Object (``obj.avatartex``)."""

import bpy
from bpy.props import (
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    IntVectorProperty,
    PointerProperty,
    StringProperty,
)

from . import state
from .paths import protocol

DEFAULT_STYLES = (("photoreal", "Photoreal", "The photo, completed and de-lit"),)
"""Shown until the backend's ``hello`` has listed its styles."""

BLEND_RELATIVE = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (4, 5, 0) else set()
"""Options of a path property that may start with ``//`` (Blender 4.5+ warns and drops it otherwise)."""

PIN_COUNT = 8
"""Length of protocol.PIN_NAMES (checked at registration)."""

ENGINE_ITEMS = [
    ("auto", "Auto", "Neural where a GPU and the models are present, classic otherwise"),
    ("classic", "Classic", "Any CPU, no downloads"),
    ("neural", "Neural", "Diffusion models on the GPU"),
]

SCALP_ITEMS = [
    ("default", "Style Default", "What the style gives the scalp"),
    ("skin", "Skin", "A clean scalp of skin, for separate hair meshes or hair cards"),
    ("hair", "Hair", "The photo's hair continued over the scalp"),
]


def scalp_param(value: str) -> str:
    """The generate request's ``scalp`` for the ``scalp`` property: '' (the style decides), skin or hair."""
    return "" if value == "default" else value


WHITE_BALANCE_ITEMS = [
    (
        "auto",
        "Auto",
        "Take out the light's colour where the photo's eye whites show it (tungsten, a sunset, shade); "
        "brighten an underexposed photo and denoise a grainy one",
    ),
    (
        "eyes",
        "Eye Whites",
        "Always white-balance on the photo's eye whites, where they can be read (and correct exposure "
        "and grain as Auto does)",
    ),
    ("off", "Off", "Keep the photo's colours, exposure and grain as they are"),
]

SUBJECT_ITEMS = [
    ("auto", "Auto", "Decided from the photo: how much of its crease shading the head's own creases explain"),
    (
        "same",
        "This Person",
        "The photo shows the person this head was made from (a scan): its tones are kept",
    ),
    (
        "other",
        "Someone Else",
        "The head is sculpted, stylized or another person's: the photographed face's relief is taken "
        "off the skin",
    ),
]


def subject_param(value: str) -> str:
    """The generate request's ``subject`` for the ``subject`` property: '' (decided from the photo),
    same or other."""
    return "" if value == "auto" else value


FACING_ITEMS = [
    ("-Y", "-Y (Front view)", "The face looks towards -Y: it faces you in Blender's front view"),
    ("+Y", "+Y", "The face looks towards +Y"),
    ("-X", "-X", "The face looks towards -X"),
    ("+X", "+X", "The face looks towards +X"),
    ("+Z", "+Z", "The face looks up"),
    ("-Z", "-Z", "The face looks down"),
    ("AUTO", "Search", "Let the backend search the facing direction"),
]


def style_names() -> list[tuple[str, str, str]]:
    """(name, label, description) of the styles the backend offers, or the default list."""
    styles = (state.hello or {}).get("styles") or []
    items = [
        (s.get("name", ""), s.get("label", s.get("name", "")), s.get("description", ""))
        for s in styles
        if isinstance(s, dict) and s.get("name")
    ]
    return items or list(DEFAULT_STYLES)


def overridable(cls):
    """Mark every property of ``cls`` editable on a library override (a character linked from an asset
    file and overridden in a shot), its collections open to added items: Blender saves an add-on's
    properties on an override only where they say so, and the portrait, pins, verdict and texture set
    on one were back to the library's after the file was saved and opened again (the record of the
    add-on's own file gone with them, so the next Generate wrote ``<name>_001.png`` beside it)."""
    for name, prop in cls.__annotations__.items():
        flags = {"LIBRARY_OVERRIDABLE"}
        if prop.function is CollectionProperty:
            flags.add("USE_INSERTION")
        cls.__annotations__[name] = prop.function(**{**prop.keywords, "override": flags})
    return cls


def _search_styles(self, context, edit_text):
    return [name for name, _label, _desc in style_names() if edit_text.lower() in name.lower()]


@overridable
class AVATARTEX_PG_output(bpy.types.PropertyGroup):
    """A file this add-on wrote (a texture or an export), so that the next run replaces exactly it.

    ``owner`` is the object it was written for: a duplicate (Shift+D copies these properties) has
    another name and so writes its own file. ``stamp`` is the file's size and time when written: a
    file someone changed since is not ours to replace any more.
    """

    path: StringProperty(
        name="Path", default="", description="Blender path of the file (// relative to the .blend)"
    )
    stamp: StringProperty(name="Stamp", default="")
    owner: StringProperty(name="Owner", default="")


def _follow_settings(variant, _context) -> None:
    """A variant still named as Add Variant named it (``<style> <seed>``, any style's) is renamed
    after its new style or seed: its name is its files' name, and a toon texture in
    ``Head_photoreal_6.png`` misleads. A name the artist gave is kept."""
    style, _, seed = variant.name.rpartition(" ")
    automatic = seed.isdigit() and style in {name for name, _label, _desc in style_names()}
    if automatic:
        wanted = f"{variant.style} {variant.seed}"
        if variant.name != wanted:
            variant.name = wanted


@overridable
class AVATARTEX_PG_variant(bpy.types.PropertyGroup):
    """One stylized variant of an object's texture."""

    style: StringProperty(
        name="Style",
        default="photoreal",
        search=_search_styles,
        update=_follow_settings,
        description="Style preset of this variant",
    )
    seed: IntProperty(
        name="Seed", default=0, min=0, update=_follow_settings, description="Seed of this variant"
    )
    strength: FloatProperty(
        name="Strength",
        default=1.0,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="How strongly the style is applied (0: photo, 1: full style)",
    )
    image: PointerProperty(name="Image", type=bpy.types.Image, description="The generated texture")
    status: StringProperty(name="Status", default="")
    output: PointerProperty(type=AVATARTEX_PG_output, description="The texture file last written")
    export: PointerProperty(type=AVATARTEX_PG_output, description="The file last exported")
    body_image: PointerProperty(
        name="Body Image",
        type=bpy.types.Image,
        description="The body's image toned to this variant's face (a body that is an object of its own)",
    )
    body_object: StringProperty(name="Body", default="", description="The object body_image is for")
    body_output: PointerProperty(type=AVATARTEX_PG_output, description="The toned body file last written")


def _record(settings, name: str, saved_as: str):
    """The record ``name`` of ``settings.records``, added the first time: from the group ``saved_as``
    where a file saved before the records were a collection holds one (the next run then replaces
    that file, rather than writing ``<name>_001.png`` beside it), else empty."""
    record = settings.records.get(name)
    if record is None:
        record = settings.records.add()
        record.name = name
        before = settings.get(saved_as)
        for key in ("path", "stamp", "owner") if hasattr(before, "get") else ():
            setattr(record, key, str(before.get(key, "")))
    return record


@overridable
class AVATARTEX_PG_object(bpy.types.PropertyGroup):
    """Per-object AvatarTex settings: ``obj.avatartex``.

    The records of the files written for the object are items of a collection (``records``), not
    groups of their own: a library override keeps an item added to a collection, while a group the
    library's object never had is refused when the file is opened ("expected ID type") and lost."""

    portrait_path: StringProperty(
        name="Portrait",
        subtype="FILE_PATH",
        default="",
        options=BLEND_RELATIVE,
        description="Photo of this character's face (// is the folder of the .blend)",
    )
    status: StringProperty(name="Status", default="", description="Result of the last generation")
    error_code: StringProperty(
        name="Error Code",
        default="",
        description="Why the last generation failed, for scripts (portrait_missing, no_face_in_portrait, "
        "internal...); empty when it did not",
    )
    verdict: StringProperty(
        name="Verdict",
        default="",
        description="How far the last texture can be trusted: good, doubtful or failed (the backend's "
        "estimate of how well the photo's features landed on the mesh's)",
    )
    verdict_note: StringProperty(
        name="Why", default="", description="What the verdict rests on and what to try"
    )
    variants: CollectionProperty(type=AVATARTEX_PG_variant)
    active_variant_index: IntProperty(name="Active Variant", default=0, min=0)
    pins: IntVectorProperty(
        name="Pins",
        size=PIN_COUNT,
        default=(-1,) * PIN_COUNT,
        min=-1,
        description="Vertex index of each landmark pin, -1 where not set",
    )
    records: CollectionProperty(
        type=AVATARTEX_PG_output,
        description="The files last written for this object, by what they are (texture, body)",
    )
    texture: PointerProperty(
        name="Main Texture",
        type=bpy.types.Image,
        description="The texture Generate Texture made last: kept in the .blend while a variant is "
        "shown, and shown again by Main Texture",
    )
    body_texture: PointerProperty(
        name="Main Body Texture",
        type=bpy.types.Image,
        description="The body's image toned to the main texture's face (a body that is an object of its own)",
    )
    toned_body: StringProperty(
        name="Toned Body", default="", description="The body object last toned to this head's face"
    )
    body_object: PointerProperty(
        name="Body",
        type=bpy.types.Object,
        poll=lambda _settings, obj: obj.type == "MESH",
        description="The body this head sits on when it is an object of its own: its skin is matched "
        "to the face's across the neck (Body Tone) in a copy of its texture. Empty: the mesh object "
        "that meets the bottom of the head, if any",
    )

    @property
    def output(self):
        """The record of the texture file last written."""
        return _record(self, "texture", "output")

    @property
    def body_output(self):
        """The record of the toned copy of this object's image last written, as the body of a head."""
        return _record(self, "body", "body_output")


class AVATARTEX_PG_batch_item(bpy.types.PropertyGroup):
    """Per-object line of the last batch run (``name`` is the object's name)."""

    status: StringProperty(name="Status", default="queued")
    message: StringProperty(name="Message", default="")
    code: StringProperty(name="Error Code", default="", description="Why it failed, for scripts")


class AVATARTEX_PG_settings(bpy.types.PropertyGroup):
    """Scene-wide AvatarTex settings: ``scene.avatartex``."""

    style: StringProperty(
        name="Style",
        default="photoreal",
        search=_search_styles,
        description="Style preset (the backend lists them)",
    )
    scalp: EnumProperty(
        name="Scalp",
        items=SCALP_ITEMS,
        default="default",
        description="What the scalp gets: skin (a clean scalp, for separate hair meshes or hair cards) or "
        "hair (the photo's hair continued over the scalp); Style Default lets the style decide",
    )
    subject: EnumProperty(
        name="Photo Of",
        items=SUBJECT_ITEMS,
        default="auto",
        description="Whom the photo shows: the person this head was made from (its tones kept), or "
        "someone else (the photographed face's nose, socket and cheek shading taken off the skin, "
        "where the head's shape does not cast it); Auto decides from the photo",
    )
    white_balance: EnumProperty(
        name="White Balance",
        items=WHITE_BALANCE_ITEMS,
        default="auto",
        description="The photo's light colour, read on its eye whites: Auto takes it out where they show "
        "a coloured light, Eye Whites always balances on them; both also brighten an underexposed photo "
        "and denoise a grainy one. Off keeps the photo as it is",
    )
    prompt: StringProperty(
        name="Prompt", default="", description="Free text added to the style's prompt (neural engine)"
    )
    resolution: IntProperty(
        name="Resolution",
        default=1024,
        min=512,
        max=4096,
        description="Edge length of the square texture in pixels",
    )
    engine: EnumProperty(name="Engine", items=ENGINE_ITEMS, default="auto")
    seed: IntProperty(name="Seed", default=0, min=0, description="Same inputs and seed give the same texture")
    strength: FloatProperty(
        name="Strength",
        default=1.0,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="How strongly the style is applied",
    )
    uv_map: StringProperty(
        name="UV Map",
        default="",
        description="UV map to bake into; empty: the one the material's skin image reads (through a UV Map "
        "node), else the render-active one",
    )
    facing: EnumProperty(
        name="Facing",
        items=FACING_ITEMS,
        default="-Y",
        description="Which way the character's face looks in the scene (world axes, as in the 3D View), "
        "whatever the object's rotation, scale or parent",
    )
    tone_match: EnumProperty(
        name="Body Tone",
        items=(
            ("body_to_face", "Body to Face", "Full-body characters: the body's skin takes the face's tone"),
            ("face_to_body", "Face to Body", "Full-body characters: the face takes the body's skin tone"),
            ("none", "Keep Both", "Full-body characters: no tone matching across the neck"),
        ),
        default="body_to_face",
        description="On a full-body character only the head is textured; the body keeps the material's "
        "image, its skin tone matched across the neck this way (a body that is an object of its own "
        "gets a toned copy of its image with Body to Face)",
    )
    batch_collection: PointerProperty(
        name="Collection",
        type=bpy.types.Collection,
        description="Batch this collection instead of the selection",
    )
    batch: CollectionProperty(type=AVATARTEX_PG_batch_item)
    status: StringProperty(name="Status", default="")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")


CLASSES = (
    AVATARTEX_PG_output,
    AVATARTEX_PG_variant,
    AVATARTEX_PG_object,
    AVATARTEX_PG_batch_item,
    AVATARTEX_PG_settings,
)


def register_props() -> None:
    """Hang the root groups on Scene and Object."""
    assert len(protocol().PIN_NAMES) == PIN_COUNT, "PIN_COUNT out of date with protocol.PIN_NAMES"
    assert {scalp_param(item[0]) for item in SCALP_ITEMS} == set(protocol().SCALP_CHOICES), "SCALP_ITEMS"
    assert {subject_param(i[0]) for i in SUBJECT_ITEMS} == set(protocol().SUBJECT_CHOICES), "SUBJECT_ITEMS"
    assert {i[0] for i in WHITE_BALANCE_ITEMS} == set(protocol().WHITE_BALANCE_CHOICES), "WHITE_BALANCE_ITEMS"
    bpy.types.Scene.avatartex = PointerProperty(type=AVATARTEX_PG_settings)
    bpy.types.Object.avatartex = PointerProperty(type=AVATARTEX_PG_object, override={"LIBRARY_OVERRIDABLE"})


def unregister_props() -> None:
    """Remove the root groups."""
    del bpy.types.Object.avatartex
    del bpy.types.Scene.avatartex
