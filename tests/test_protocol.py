"""The wire contract: parsing, typed errors, parameter validation."""

import json

import pytest
from avatartex.protocol import (
    AvatarTexError,
    ErrorCode,
    GenerateParams,
    PrepareParams,
    Progress,
    decode_request,
    encode,
    error_message,
    progress_message,
)


def test_decode_valid_request():
    request = decode_request('{"id": 7, "method": "generate", "params": {"a": 1}}')
    assert (request.id, request.method, request.params) == (7, "generate", {"a": 1})


@pytest.mark.parametrize(
    "line,code",
    [
        ("not json", ErrorCode.PARSE_ERROR),
        ("[1, 2]", ErrorCode.BAD_REQUEST),
        ('{"method": "hello"}', ErrorCode.BAD_REQUEST),
        ('{"id": true, "method": "hello"}', ErrorCode.BAD_REQUEST),
        ('{"id": 1, "method": 5}', ErrorCode.BAD_REQUEST),
        ('{"id": 1, "method": "hello", "params": []}', ErrorCode.BAD_REQUEST),
    ],
)
def test_malformed_lines_are_typed_errors(line, code):
    with pytest.raises(AvatarTexError) as info:
        decode_request(line)
    assert info.value.code == code
    assert info.value.message


def test_generate_params_validation():
    params = GenerateParams.from_dict(
        {"mesh": "m.glb", "portrait": "p.jpg", "out_dir": "o", "size": 2048, "strength": 1}
    )
    assert params.size == 2048 and params.strength == 1.0 and params.style == "photoreal"
    for bad in (
        {"mesh": "m"},
        {"mesh": "m", "portrait": "p", "out_dir": "o", "colour": 1},
        {"mesh": "m", "portrait": "p", "out_dir": "o", "size": "big"},
        {"mesh": "m", "portrait": "p", "out_dir": "o", "size": True},
    ):
        with pytest.raises(AvatarTexError) as info:
            GenerateParams.from_dict(bad)
        assert info.value.code == ErrorCode.BAD_REQUEST


def test_prepare_params_validation():
    params = PrepareParams.from_dict({"mesh": "m.npz", "size": 2048, "facing": "+z"})
    assert (params.mesh, params.size, params.facing, params.uv_map, params.unwrap) == (
        "m.npz",
        2048,
        "+z",
        "",
        False,
    )
    assert PrepareParams.from_dict(params.to_dict()) == params
    for bad in ({}, {"mesh": "m", "portrait": "p"}, {"mesh": "m", "size": "big"}, {"mesh": 3}, []):
        with pytest.raises(AvatarTexError) as info:
            PrepareParams.from_dict(bad)
        assert info.value.code == ErrorCode.BAD_REQUEST and "prepare" in info.value.message


def test_messages_are_single_json_lines():
    line = encode(progress_message(3, Progress("inpaint", 0.5, "a\nb")))
    assert "\n" not in line and json.loads(line)["stage"] == "inpaint"
    error = json.loads(encode(error_message(3, AvatarTexError("x", "msg", "hint"))))
    assert error == {"id": 3, "error": {"code": "x", "message": "msg", "hint": "hint"}}
    assert AvatarTexError.from_dict(error["error"]).hint == "hint"


def test_the_subject_is_the_same_person_another_or_left_to_the_photo():
    base = {"mesh": "m.glb", "portrait": "p.jpg", "out_dir": "o"}
    assert GenerateParams.from_dict(base).subject == ""
    for value in ("", "same", "other"):
        assert GenerateParams.from_dict({**base, "subject": value}).subject == value
    for bad in ("Same", "scan", 0):
        with pytest.raises(AvatarTexError) as info:
            GenerateParams.from_dict({**base, "subject": bad})
        assert info.value.code == ErrorCode.BAD_REQUEST
        if isinstance(bad, str):
            assert (
                repr(bad) in info.value.message
                and '"same"' in info.value.hint
                and '"other"' in info.value.hint
            )


def test_scalp_is_skin_hair_or_the_styles_choice():
    base = {"mesh": "m.glb", "portrait": "p.jpg", "out_dir": "o"}
    assert GenerateParams.from_dict(base).scalp == ""  # the style decides
    for value in ("", "skin", "hair"):
        assert GenerateParams.from_dict({**base, "scalp": value}).scalp == value
    for bad in ("Hair", "wig", "bald"):
        with pytest.raises(AvatarTexError) as info:
            GenerateParams.from_dict({**base, "scalp": bad})
        error = info.value
        assert error.code == ErrorCode.BAD_REQUEST
        assert repr(bad) in error.message and "skin or hair" in error.message
        assert '"skin"' in error.hint and '"hair"' in error.hint
    with pytest.raises(AvatarTexError):  # the Python API is held to the same contract
        GenerateParams("m", "p", "o", scalp="wig")
    with pytest.raises(AvatarTexError) as info:
        GenerateParams.from_dict({**base, "scalp": 1})
    assert info.value.code == ErrorCode.BAD_REQUEST


# -- lines and values that Python's json reads badly or not at all -------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"id": ' + "9" * 5000 + ', "method": "hello"}',  # past Python's 4300-digit int limit
        '{"id": 1, "method": "hello", "params": {"a": ' + "[" * 200_000 + "]" * 200_000 + "}}",
    ],
    ids=["huge-integer", "deep-nesting"],
)
def test_a_line_json_cannot_hold_is_a_parse_error(line):
    with pytest.raises(AvatarTexError) as info:
        decode_request(line)
    assert info.value.code == ErrorCode.PARSE_ERROR
    assert info.value.message.startswith("Not a JSON line")
    assert "set_int_max_str_digits" not in str(info.value)  # Python's advice, not the client's


BASE = {"mesh": "m.glb", "portrait": "p.jpg", "out_dir": "o"}


@pytest.mark.parametrize(
    "name",
    ["../../escaped_texture.png", "sub/texture.png", "sub\\texture.png", "C:texture.png", "/tmp/t.png"]
    + ["tex.jpg", "texture", "", ".", "..", ".png", "texture.png\x00"],
)
def test_a_texture_name_that_is_not_a_plain_png_file_name_is_a_bad_request(name):
    with pytest.raises(AvatarTexError) as info:
        GenerateParams.from_dict({**BASE, "texture_name": name})
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert "texture_name must be a plain file name ending in .png" in info.value.message
    assert repr(name) in info.value.message and "out_dir" in info.value.hint


def test_plain_png_texture_names_are_taken():
    assert GenerateParams.from_dict(BASE).texture_name == "texture.png"  # what the add-on sends
    for name in ("texture.png", "Head.PNG", "head_001.png", "Tête 頭.png", "a..png"):
        assert GenerateParams.from_dict({**BASE, "texture_name": name}).texture_name == name


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_a_strength_too_large_for_a_float_is_a_bad_request_naming_the_range(value):
    with pytest.raises(AvatarTexError) as info:
        GenerateParams.from_dict({**BASE, "strength": value})
    error = info.value
    assert error.code == ErrorCode.BAD_REQUEST
    assert "(401 digits)" in error.message and "0 to 1" in error.message and len(error.message) < 120


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("out_dir", "out_dir is required: the folder to write the texture into"),
        ("mesh", "mesh is required: the path of the head mesh"),
        ("portrait", "portrait is required: the path of the photo"),
    ],
)
def test_an_empty_path_is_a_bad_request_saying_what_is_missing(key, words):
    for empty in ("", "  "):
        with pytest.raises(AvatarTexError) as info:
            GenerateParams.from_dict({**BASE, key: empty})
        assert info.value.code == ErrorCode.BAD_REQUEST and words in info.value.message
    if key == "mesh":
        with pytest.raises(AvatarTexError) as info:
            PrepareParams.from_dict({"mesh": ""})
        assert info.value.code == ErrorCode.BAD_REQUEST and words in info.value.message
