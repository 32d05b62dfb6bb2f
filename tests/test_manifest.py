"""The prep-audio manifest reader: what prep writes reads back whole, and every
malformed variant the fuzzing campaign found is one line naming its field."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handoff.errors import ManifestError, UsageError
from handoff.files.manifest import (
    MAX_BYTES,
    SCHEMA,
    Manifest,
    dumps_manifest,
    load_manifest,
    parse_manifest,
    write_manifest,
)
from handoff.media.synth import speech_like, write_wav
from handoff.prep import PrepOptions, PrepResult, prep_audio
from tests.conftest import MakeDir

Doc = dict[str, Any]


def _prep(folder: Path, *, click: bool) -> PrepResult:
    narration = speech_like(14.0, pauses=[(6.0, 0.8)], seed=3)
    src = write_wav(folder / "vo.wav", narration, 48000)
    return prep_audio(
        src,
        folder / "cond",
        PrepOptions(max_seconds=9.0, segment_min=4.0, segment_max=8.0, click=click),
    )


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "click"])
def prepped(request: pytest.FixtureRequest, module_tmp: MakeDir) -> PrepResult:
    return _prep(module_tmp("prep"), click=request.param)


# ---------------------------------------------------------------- round trip


def test_prep_audio_manifest_reads_back_whole(prepped: PrepResult) -> None:
    """Writer and reader cannot drift: every key prep writes is a field of the reader's
    dataclasses, with the same value, and the reader has no field prep does not write."""
    written = json.loads(prepped.manifest_path.read_text(encoding="utf-8"))
    manifest = load_manifest(prepped.manifest_path)
    assert manifest.to_json() == written
    assert manifest.master_path == prepped.master.path
    assert manifest.master_path.is_file()
    assert manifest.sample_rate == 48000
    assert [manifest.segment_path(s) for s in manifest.segments] == [
        s.path for s in prepped.segments
    ]
    for ours, theirs in zip(manifest.segments, prepped.segments, strict=True):
        assert (ours.index, ours.source_in, ours.source_out, ours.preroll_end) == (
            theirs.index,
            theirs.source_in,
            theirs.source_out,
            theirs.preroll_end,
        )
        assert type(ours.source_in) is int and type(ours.preroll_end) is int
        assert (ours.click_start is None) is (not prepped.options.click)


def test_prep_audio_json_output_reads_too(prepped: PrepResult) -> None:
    """``prep-audio --json`` prints the manifest plus absolute paths: the extra keys
    are ignored."""
    manifest = parse_manifest(prepped.to_json(), prepped.manifest_path)
    assert manifest == load_manifest(prepped.manifest_path)


def test_write_then_read_is_the_same_manifest(prepped: PrepResult, tmp_path: Path) -> None:
    """One schema: what prep wrote is exactly what write_manifest writes of its reading,
    and writing then reading gives back an equal manifest."""
    manifest = load_manifest(prepped.manifest_path)
    assert dumps_manifest(manifest) == prepped.manifest_path.read_bytes()
    copy_path = tmp_path / "manifest.json"
    write_manifest(dataclasses.replace(manifest, path=copy_path), replace=False)
    again = load_manifest(copy_path)
    assert again == dataclasses.replace(manifest, path=copy_path)
    assert again.to_json()["schema"] == SCHEMA == "handoff.prep-audio/1"
    with pytest.raises(UsageError, match="exists"):  # never over an existing one unasked
        write_manifest(again, replace=False)


def test_a_missing_file_is_named_in_one_line(prepped: PrepResult, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(prepped.out_dir, folder)
    manifest = load_manifest(folder / "manifest.json")
    manifest.check_files()  # all there
    second = manifest.segment_path(manifest.segments[1])
    second.unlink()
    assert manifest.missing_files() == [("segments[1].file", second)]
    with pytest.raises(ManifestError) as info:
        manifest.check_files()
    text = str(info.value)
    assert "\n" not in text
    assert f"segments[1].file: {second.name} is not in the manifest's folder" in text
    manifest.master_path.unlink()
    with pytest.raises(ManifestError, match=r"master\.file: .* \(and 1 more\)"):
        manifest.check_files()


# ---------------------------------------------------------------- malformed


@pytest.fixture(scope="module")
def base(module_tmp: MakeDir) -> Doc:
    """A real manifest (three segments) to break one field at a time."""
    result = _prep(module_tmp("base"), click=False)
    doc: Doc = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert len(doc["segments"]) >= 2
    return doc


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """Set a field by its dotted path (``segments.1.source_in``)."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return mutate


def _dup_index(doc: Doc) -> None:
    doc["segments"][1]["index"] = doc["segments"][0]["index"]


def _raw(doc: Doc, mutate: Callable[[Doc], None] | None) -> str:
    doc = copy.deepcopy(doc)
    if mutate is not None:
        mutate(doc)
    return json.dumps(doc)


# (id, mutation of the real document, then a textual edit of its JSON, message parts)
CASES: list[tuple[str, Callable[[Doc], None] | None, Callable[[str], str] | None, list[str]]] = [
    # The ten that gave tracebacks.
    ("master-is-a-string", _set("master", "x.wav"), None,
     ["master: must be an object", '(got "x.wav")']),
    ("settings-is-an-array", _set("settings", [1]), None,
     ["settings: must be an object (got an array)"]),
    ("master-file-is-a-number", _set("master.file", 5), None,
     ["master.file: must be a file name (got 5)"]),
    ("sample-rate-0", _set("settings.sample_rate", 0), None,
     ["settings.sample_rate: must be a sample rate in Hz from 8000 to 384000 (got 0)"]),
    ("infinity", _set("segments.1.source_in", 12345), lambda t: t.replace("12345", "Infinity"),
     ["segments[1].source_in: Infinity is not a number JSON can hold"]),
    ("nan", _set("master.gain_db", 1.25), lambda t: t.replace("1.25", "NaN"),
     ["master.gain_db: NaN is not a number JSON can hold"]),
    ("minus-infinity-elsewhere", _set("extra", 1.25), lambda t: t.replace("1.25", "-Infinity"),
     ["extra: -Infinity is not a number"]),
    ("float-overflow", _set("master.gain_db", 1.25), lambda t: t.replace("1.25", "1e999"),
     ["master.gain_db: 1e999 is not a number JSON can hold"]),
    ("5000-digit-integer", _set("segments.0.source_out", 12345),
     lambda t: t.replace("12345", "9" * 5000),
     ["segments[0].source_out: an integer of 5000 digits is not a number JSON can hold"]),
    ("sample-rate-is-a-string", _set("settings.sample_rate", "48000"), None,
     ['settings.sample_rate: must be a sample rate in Hz from 8000 to 384000 (got "48000")']),
    # Values that passed unchecked.
    ("negative-sample-rate", _set("settings.sample_rate", -48000), None,
     ["settings.sample_rate: must be a sample rate in Hz", "(got -48000)"]),
    ("source-in-10^18", _set("segments.1.source_in", 10**18), None,
     ["segments[1].source_in: must be a whole number of samples from 0 to master.samples (",
      "(got 1000000000000000000)"]),
    ("source-out-before-in", _set("segments.1.source_out", 0), None,
     ["segments[1].source_out: must be a whole number of samples from source_in (",
      "(got 0)"]),
    ("preroll-end-past-the-file", _set("segments.0.preroll_end", 10**9), None,
     ["segments[0].preroll_end: must be a whole number of samples from preroll_start (",
      "to samples ("]),
    ("preroll-end-before-start", _set("segments.0.preroll_start", 9000), None,
     ["segments[0].preroll_end:", "from preroll_start (9000)"]),
    ("master-outside-parent", _set("master.file", "../vo_master.wav"), None,
     ["master.file: must be a plain file name in the manifest's folder"]),
    ("master-absolute", _set("master.file", "/etc/passwd"), None,
     ["master.file: must be a plain file name"]),
    ("master-in-subfolder", _set("master.file", "sub/vo.wav"), None,
     ["master.file: must be a plain file name"]),
    ("master-backslash", _set("master.file", "..\\vo.wav"), None,
     ["master.file: must be a plain file name"]),
    ("master-dotdot", _set("master.file", ".."), None, ["master.file: must be a plain"]),
    ("master-empty", _set("master.file", ""), None, ["master.file: must be a plain"]),
    ("master-nul", _set("master.file", "vo\x00.wav"), None, ["master.file: must be a plain"]),
    ("segment-file-outside", _set("segments.1.file", "../../x.wav"), None,
     ["segments[1].file: must be a plain file name"]),
    ("index-true", _set("segments.0.index", True), None,
     ["segments[0].index: must be a whole number of 1 or more (got true)"]),
    ("index-zero", _set("segments.0.index", 0), None, ["segments[0].index:", "(got 0)"]),
    ("source-in-float", _set("segments.0.source_in", 5.0), None,
     ["segments[0].source_in: must be a whole number of samples", "(got 5.0)"]),
    ("duplicate-index", _dup_index, None,
     ["segments[1].index: 1 is also the index of segments[0]"]),
    ("no-segments", _set("segments", []), None, ["segments: must list at least one segment"]),
    ("segments-object", _set("segments", {}), None, ["segments: must be an array (got an object)"]),
    ("segment-not-object", _set("segments.0", 7), None, ["segments[0]: must be an object (got 7)"]),
    ("missing-preroll-end", _delete("segments.0.preroll_end"), None,
     ["segments[0].preroll_end: missing"]),
    ("missing-master", _delete("master"), None, ["master: missing"]),
    ("missing-warnings", _delete("warnings"), None, ["warnings: missing"]),
    ("warning-not-string", _set("warnings", [3]), None, ["warnings[0]: must be a string"]),
    ("click-bool-as-string", _set("settings.click", "no"), None,
     ['settings.click: must be true or false (got "no")']),
    ("kind-unknown", _set("settings.kind", "podcast"), None,
     ["settings.kind: must be one of voice, music"]),
    ("bit-depth-32", _set("settings.bit_depth", 32), None,
     ["settings.bit_depth: must be 16 or 24"]),
    ("cut-kind-unknown", _set("segments.0.cut_in.kind", "cut"), None,
     ["segments[0].cut_in.kind: must be one of start, end, pause"]),
    ("cut-past-master", _set("segments.0.cut_out.position", 10**12), None,
     ["segments[0].cut_out.position: must be a whole number of samples"]),
    ("click-half-set", _set("segments.0.click_start", 0), None,
     ["segments[0].click_end: click_start and click_end are both null or both set"]),
    ("master-25-hours", _set("master.samples", 48000 * 3600 * 25), None,
     ["master.samples: must be a whole number of samples from 1 to 24 hours"]),
    ("lufs-string", _set("master.integrated_lufs", "-16"), None,
     ['master.integrated_lufs: must be null or a finite number (got "-16")']),
    ("sha-not-hex", _set("source.sha256", "xyz"), None, ["source.sha256: must be 64"]),
    ("name-not-a-string", _set("settings.name", 7), None,
     ["settings.name: must be a non-empty string (got 7)"]),
    ("long-value-shortened", _set("master.file", "../" * 300 + "x.wav"), None,
     ["master.file: must be a plain file name",
      '(got "../../../../../../../../../../../../....")']),
    ("other-schema-version", _set("schema", "handoff.prep-audio/2"), None,
     ['schema: "handoff.prep-audio/2" is a version this handoff does not read']),
    ("other-schema", _set("schema", "something/1"), None,
     [f'not a prep-audio manifest (expected "schema": "{SCHEMA}", got "something/1")']),
    ("no-schema", _delete("schema"), None, ["not a prep-audio manifest", "got none"]),
    ("not-an-object", None, lambda t: "[1, 2]", ["not a prep-audio manifest", "got an array"]),
    ("truncated", None, lambda t: t[: len(t) // 2], ["not valid JSON (", "line 1 column"]),
    ("deep-nesting", _set("extra", 1.25),
     lambda t: t.replace("1.25", "[" * 200_000 + "]" * 200_000),
     ["nested too deeply"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "edit", "parts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_manifest_is_one_line_naming_the_field(
    base: Doc,
    tmp_path: Path,
    mutate: Callable[[Doc], None] | None,
    edit: Callable[[str], str] | None,
    parts: list[str],
) -> None:
    text = _raw(base, mutate)
    if edit is not None:
        text = edit(text)
    path = tmp_path / "manifest.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert isinstance(info.value, UsageError)
    assert "\n" not in message and len(message) < 400, message
    assert message.startswith(f"{path}: "), message
    for part in parts:
        assert part in message


def test_the_base_document_itself_reads(base: Doc, tmp_path: Path) -> None:
    """The cases above break one thing each: the document they start from is good."""
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(base), encoding="utf-8")
    assert isinstance(load_manifest(path), Manifest)


def test_file_names_that_are_not_utf8_survive(base: Doc, tmp_path: Path) -> None:
    """A file name's bytes that are not UTF-8 travel as JSON ``\\udcXX`` escapes (what
    Python's json writes for them): read back, they name the same bytes on disk."""
    doc = copy.deepcopy(base)
    name = os.fsdecode(b"vo caf\xe9_master.wav")
    doc["master"]["file"] = name
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc), encoding="utf-8")  # ensure_ascii: "\udce9"
    manifest = load_manifest(path)
    assert os.fsencode(manifest.master_path.name) == b"vo caf\xe9_master.wav"


def test_file_level_problems(tmp_path: Path) -> None:
    def message(path: Path) -> str:
        with pytest.raises(ManifestError) as info:
            load_manifest(path)
        text = str(info.value)
        assert "\n" not in text
        return text

    assert "manifest not found" in message(tmp_path / "nope.json")
    assert "is a folder" in message(tmp_path)
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: nothing to write
    assert "larger than any manifest (16 MiB at most)" in message(big)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"schema": "caf\xe9"}')
    assert "not UTF-8 text (byte 15)" in message(latin)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.json"
        os.mkfifo(fifo)
        assert "not a regular file" in message(fifo)  # and it did not wait for a writer


def test_parsed_documents_are_checked_the_same(base: Doc) -> None:
    """parse_manifest takes a document from elsewhere (not json.loads): an infinite
    float or an integer of any size is still refused by its field."""
    doc = copy.deepcopy(base)
    doc["master"]["gain_db"] = float("inf")
    with pytest.raises(ManifestError, match=r"master\.gain_db: must be a finite number"):
        parse_manifest(doc, "manifest.json")
    doc = copy.deepcopy(base)
    doc["segments"][0]["source_out"] = 10**400
    with pytest.raises(ManifestError, match=r"segments\[0\]\.source_out: must be a whole"):
        parse_manifest(doc, "manifest.json")
