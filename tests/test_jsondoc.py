"""handoff.files.jsondoc: the one reader of the manifest and the selects file, with either
error class; and what the selects file gained from it (numbers JSON has no room for)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handoff.errors import HandoffError, ManifestError, SelectsError
from handoff.files.jsondoc import Fields, got
from handoff.sync.selects import MAX_BYTES, load_selects


@pytest.mark.parametrize("error", [ManifestError, SelectsError])
def test_fields_raise_the_documents_error(error: type[HandoffError]) -> None:
    r = Fields(error, Path("doc.json"))
    with pytest.raises(error) as info:
        r.integer({"b": "7"}, "b", "a", 1)
    assert str(info.value) == 'doc.json: a.b: must be a whole number of 1 or more (got "7")'
    named = Fields(error, "sync result")
    with pytest.raises(error) as info:
        named.opt_number({"x": [1]}, "x", "")
    assert info.value.path is None
    assert str(info.value) == "sync result: x: must be null or a finite number (got an array)"


def test_a_writer_writes_every_key() -> None:
    """Left out, a key that may be null is null in a document a person writes, and
    missing in one a program writes whole."""
    assert Fields(SelectsError, Path("s.json")).opt_number({}, "score", "takes[0]") is None
    assert Fields(SelectsError, Path("s.json")).boolean({}, "regenerate", "", False) is False
    with pytest.raises(ManifestError, match=r"master\.integrated_lufs: missing \(prep-audio"):
        Fields(ManifestError, Path("m.json"), writer="prep-audio").opt_number(
            {}, "integrated_lufs", "master"
        )


def test_values_beyond_a_float_are_shown_short() -> None:
    huge = 10**5000  # str() refuses it (more than 4300 digits)
    assert got(huge) == "an integer of 5001 digits"
    assert got(-(10**30)) == "an integer of 31 digits"
    assert got(10**30 - 1) == str(10**30 - 1)
    with pytest.raises(
        SelectsError, match=r"^doc: score: must be a finite number \(got an integer"
    ):
        Fields(SelectsError, "doc").number({"score": 10**400}, "score", "")


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("9" * 5000, "must be null or a finite number (got an integer of 5000 digits)"),
        ("9" * 400, "must be null or a finite number (got an integer of 400 digits)"),
        ("1e999", "must be null or a finite number (got 1e999)"),
        ("-Infinity", "must be null or a finite number (got -Infinity)"),
    ],
)
def test_selects_numbers_json_has_no_room_for(tmp_path: Path, literal: str, message: str) -> None:
    """Each names its field (a 5000-digit integer was a ValueError from the json module,
    a 400-digit one an OverflowError)."""
    doc = {"schema": "handoff.selects/1", "segments": [{"segment": 1, "pick": "a.mp4"}]}
    text = json.dumps(doc).replace('"a.mp4"', f'"a.mp4", "recut_at_s": {literal}')
    path = tmp_path / "selects.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SelectsError) as info:
        load_selects(path)
    assert info.value.message == f"segments[0].recut_at_s: {message}"


def test_a_selects_file_too_large_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: nothing to write
    with pytest.raises(SelectsError, match=r"larger than any selects file \(16 MiB at most\)$"):
        load_selects(big)
