"""The timeline model, the OTIO flavours and the ``timeline`` command, on real media."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import unquote

import av
import opentimelineio as otio
import pytest
from click.testing import CliRunner, Result
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import etree

from handoff.cli import main
from handoff.media.synth import ClipSpec, speech_like, vfr_times, write_clip, write_wav
from handoff.prep import PrepOptions, prep_audio
from handoff.probe.reader import probe
from handoff.timeline import build_timeline, load_manifest, render, source_from_info
from handoff.timeline.paths import file_url, path_from_url, premiere_pathurl
from tests.conftest import NLE, MakeDir, TimelineProject, make_timeline_project, project_timeline
from tests.readback import from_otio
from tests.readback_cases import READ_FPS, TIMECODES, check_intent, timecoded_build


@pytest.fixture(scope="module")
def project(module_tmp: MakeDir) -> TimelineProject:
    return make_timeline_project(module_tmp("tl"))


def _items(track: otio.schema.Track) -> list[tuple[int, int, otio.core.Item]]:
    """(timeline start, duration, item) of every clip, as OTIO itself computes them."""
    out = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Clip):
            r = track.range_of_child_at_index(i)
            out.append((round(r.start_time.value), round(r.duration.value), item))
    return out


def _timeline(*args: object) -> Result:
    """``handoff timeline ARGS...`` as a user runs it."""
    return CliRunner().invoke(main, ["timeline", *map(str, args)])


def _no_overlap(track: otio.schema.Track) -> None:
    spans = [(s, s + d) for s, d, _ in _items(track)]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end


# ---------------------------------------------------------------- layout


def test_layout_follows_the_manifest(project: TimelineProject) -> None:
    build = project_timeline(project)
    tl = build.timeline
    rate = Fraction(24000, 1001)
    v1, a1, a2 = tl.tracks
    assert [t.name for t in tl.tracks] == ["V1", "A1", "A2"]
    assert a1.metadata["handoff"]["locked"] is True
    assert v1.metadata["handoff"]["locked"] is False
    assert a2.metadata["handoff"]["locked"] is False
    manifest = json.loads(project.manifest.read_text(encoding="utf-8"))
    ((m_start, m_dur, master),) = _items(a1)
    assert Path(master.metadata["handoff"]["path"]) == project.master.resolve()
    assert m_dur == int(Fraction(manifest["master"]["samples"], 48000) * rate)

    clips = _items(v1)
    assert [Path(c.metadata["handoff"]["path"]).name for _, _, c in clips] == [
        p.name for p in project.clips
    ]
    for (start, dur, clip), seg in zip(clips, manifest["segments"], strict=True):
        src = clip.source_range
        first = round(src.start_time.value)
        # Every frame used sits within half a frame of the narration it was made for:
        # clip time t is segment time t, which is master sample source_in + t*sr - preroll.
        for k in (first, first + dur - 1):
            on_timeline = Fraction(start + k - first) / rate
            master_time = (
                Fraction(m_start) / rate
                + Fraction(seg["source_in"] - seg["preroll_end"], 48000)
                + Fraction(k) / rate
            )
            assert abs(on_timeline - master_time) <= Fraction(1, 2) / rate
        assert first + dur <= round(clip.media_reference.available_range.duration.value)
    _no_overlap(v1)
    # A2: the clips' own sound at the same places, each disabled.
    assert [(s, d) for s, d, _ in _items(a2)] == [(s, d) for s, d, _ in clips]
    assert all(not c.enabled for _, _, c in _items(a2))
    assert all(c.enabled for _, _, c in clips)


def test_back_to_back_without_master(project: TimelineProject) -> None:
    build = project_timeline(project, with_master=False)
    v1, a1 = build.timeline.tracks
    starts = [s for s, _, _ in _items(v1)]
    durs = [d for _, d, _ in _items(v1)]
    assert starts == [0, durs[0], durs[0] + durs[1]]
    assert durs == [probe(c).video.frames for c in project.clips]  # type: ignore[union-attr]
    assert a1.metadata["handoff"] == {"role": "clip-audio", "locked": True, "channels": 2}
    assert [(s, d) for s, d, _ in _items(a1)] == [(s, d) for s, d, _ in _items(v1)]
    assert all(c.enabled for _, _, c in _items(a1))


def test_real_prep_audio_manifest(tmp_path: Path) -> None:
    """prep-audio's own manifest: clips as long as their segment files line up."""
    narration = speech_like(21.0, pauses=[(6.0, 0.8), (13.0, 0.8)], seed=5)
    src = write_wav(tmp_path / "vo.wav", narration, 48000)
    result = prep_audio(
        src,
        tmp_path / "cond",
        PrepOptions(max_seconds=9.0, segment_min=4.0, segment_max=8.0),
    )
    assert len(result.segments) >= 3
    renders = tmp_path / "renders"
    renders.mkdir()
    for seg in result.segments:
        seconds = seg.samples / 48000
        write_clip(
            renders / f"{seg.index:03d}_render.mp4",
            ClipSpec(
                fps=Fraction(24),
                seconds=seconds,
                width=64,
                height=64,
                video_options={"preset": "ultrafast"},
            ),
        )
    out = tmp_path / "edit.otio"
    r = CliRunner().invoke(
        main,
        [
            "timeline",
            str(renders),
            "--manifest",
            str(result.manifest_path),
            "--format",
            "otio",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    tl = otio.adapters.read_from_file(str(out))
    v1, a1, _ = tl.tracks
    ((m_start, _, master),) = _items(a1)
    assert Path(path_from_url(master.media_reference.target_url)) == result.master.path
    for (start, _, clip), seg in zip(_items(v1), result.segments, strict=True):
        speech_starts = (
            start
            + Fraction(seg.preroll_end, 48000) * 24
            - round(clip.source_range.start_time.value)
        )
        assert abs(speech_starts - (m_start + Fraction(seg.source_in, 48000) * 24)) <= Fraction(
            1, 2
        )
    _no_overlap(v1)


def test_mixed_rates_are_refused_by_name(tmp_path: Path) -> None:
    a = write_clip(tmp_path / "001_a.mp4", ClipSpec(fps=Fraction(24), seconds=1.0))
    b = write_clip(tmp_path / "002_b.mp4", ClipSpec(fps=Fraction(30000, 1001), seconds=1.0))
    r = CliRunner().invoke(
        main, ["timeline", str(a), str(b), "--format", "otio", "--out", str(tmp_path / "x.otio")]
    )
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "001_a.mp4" in line and "002_b.mp4" in line
    assert "24 fps" in line and "29.97 fps" in line
    assert not (tmp_path / "x.otio").exists()


def test_vfr_and_unreadable_clips_are_refused_together(tmp_path: Path) -> None:
    vfr = write_clip(tmp_path / "vfr.mp4", ClipSpec(frame_times=vfr_times(2.0, 30, 0.4)))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a movie at all" * 10)
    good = write_clip(tmp_path / "good.mp4", ClipSpec(fps=Fraction(24), seconds=1.0))
    r = CliRunner().invoke(
        main,
        [
            "timeline",
            str(good),
            str(vfr),
            str(junk),
            "--format",
            "otio",
            "--out",
            str(tmp_path / "t.otio"),
        ],
    )
    assert r.exit_code == 2
    assert "2 of 3 clips" in r.output
    assert "vfr.mp4" in r.output and "variable frame rate" in r.output
    assert "junk.mp4" in r.output


def test_master_must_have_sound(project: TimelineProject) -> None:
    r = CliRunner().invoke(
        main,
        [
            "timeline",
            str(project.clips[0]),
            "--master",
            str(project.clips[1].with_name("nope.wav")),
            "--format",
            "otio",
        ],
    )
    assert r.exit_code == 2
    assert "nope.wav" in r.output


def test_manifest_with_more_clips_than_segments_is_refused(
    project: TimelineProject, tmp_path: Path
) -> None:
    extra = write_clip(tmp_path / "zz_extra.mp4", ClipSpec(fps=Fraction(24000, 1001), seconds=1.0))
    sources = [source_from_info(probe(c)) for c in [*project.clips, extra]]
    with pytest.raises(Exception, match="4 clips but the manifest has 3 segments"):
        build_timeline(sources, manifest=load_manifest(project.manifest))


# ---------------------------------------------------------------- OTIO flavours


def _read(data: bytes) -> Any:
    return otio.adapters.read_from_string(data.decode("utf-8"), "otio_json")


@pytest.mark.parametrize("flavour", ["otio", "premiere-otio", "resolve-otio"])
def test_otio_flavours_read_back(project: TimelineProject, flavour: str) -> None:
    build = project_timeline(project)
    tl = _read(render(build.timeline, flavour))
    assert tl.name == "Déjà vu & 'co' #1"
    v1, a1, a2 = tl.tracks
    for track in tl.tracks:
        for _, _, clip in _items(track):
            url = clip.media_reference.target_url
            if flavour == "resolve-otio":
                assert url.startswith("/")  # a bare path, as Resolve writes it
            else:
                assert url.startswith("file:///") and " " not in url
            assert Path(path_from_url(url)).is_file()
    assert [Path(path_from_url(c.media_reference.target_url)) for _, _, c in _items(v1)] == [
        p.resolve() for p in project.clips
    ]
    rate = v1[0].source_range.duration.rate
    assert rate == pytest.approx(24000 / 1001, abs=1e-9)
    # What was meant: the model's own layout, frame for frame.
    original = build.timeline.tracks
    for ours, theirs in zip(original, tl.tracks, strict=True):
        assert [(s, d) for s, d, _ in _items(ours)] == [(s, d) for s, d, _ in _items(theirs)]
    assert a1.metadata["handoff"]["locked"] is True
    if flavour == "resolve-otio":
        assert dict(a1.metadata["Resolve_OTIO"]) == {
            "Locked": True,
            "Audio Type": "Mono",
            "SoloOn": False,
        }
        assert v1.metadata["Resolve_OTIO"]["Locked"] is False
        assert a2.metadata["Resolve_OTIO"]["Locked"] is False
    if flavour == "premiere-otio":
        settings = tl.tracks.metadata["PremierePro_OTIO"]
        assert settings["VideoResolution"]["width"] == 160
        assert settings["AudioFrameRate"] == 48000.0
        links = [[c.metadata["PremierePro_OTIO"]["LinkID"] for _, _, c in _items(t)]
                 for t in (v1, a2)]  # fmt: skip
        assert links[0] == links[1] == ["1", "2", "3"]
        assert _items(a1)[0][2].metadata["PremierePro_OTIO"]["LinkID"] == "4"


@pytest.mark.parametrize("with_master", [True, False], ids=["master", "clips-only"])
def test_premiere_otio_link_ids_and_channels(project: TimelineProject, with_master: bool) -> None:
    """Read back by otio_json: every clip has a LinkID; a clip's picture and its own
    sound share one and nothing else does (Premiere fuses clips whose LinkIDs match);
    audio clips carry Premiere's channel metadata for their file's channels."""
    build = project_timeline(project, with_master=with_master)
    tl = _read(render(build.timeline, "premiere-otio"))
    clips = list(tl.find_clips())
    pp = [c.metadata["PremierePro_OTIO"] for c in clips]
    ids = [m["LinkID"] for m in pp]
    assert all(isinstance(i, str) and i for i in ids)
    by_id: dict[str, list[Any]] = {}
    for c, i in zip(clips, ids, strict=True):
        by_id.setdefault(i, []).append(c)
    for group in by_id.values():
        roles = sorted(c.metadata["handoff"]["role"] for c in group)
        if len(group) == 1:
            assert roles[0] in ("master", "picture"), roles
            continue
        # Exactly a picture and its own sound: the same file at the same place.
        assert roles == ["clip-audio", "picture"]
        (pic,) = (c for c in group if c.metadata["handoff"]["role"] == "picture")
        (snd,) = (c for c in group if c is not pic)
        assert path_from_url(pic.media_reference.target_url) == path_from_url(
            snd.media_reference.target_url
        )
        assert pic.range_in_parent().start_time == snd.range_in_parent().start_time
    masters = [
        i for c, i in zip(clips, ids, strict=True) if c.metadata["handoff"]["role"] == "master"
    ]
    assert len(masters) == (1 if with_master else 0)
    for i in masters:
        assert ids.count(i) == 1
    assert len(by_id) == len(build.placements) + len(masters)
    for c, m in zip(clips, pp, strict=True):
        assert (m["SourceClipIndex"], m["OriginalChannelGroupIndex"]) == (0, 0)
        audio = c.parent().kind == otio.schema.TrackKind.Audio
        assert ("AudioChannels" in m) == audio
        if audio:
            path = Path(path_from_url(c.media_reference.target_url))
            with av.open(str(path)) as f:
                channels = f.streams.audio[0].codec_context.channels
            assert m["AudioChannels"]["ChannelType"] == ("Mono" if channels == 1 else "Stereo")
            assert [
                a["SecondaryChannelIndex"] for a in m["AudioChannels"]["SecondaryAssignments"]
            ] == list(range(channels))


@pytest.fixture(scope="module", params=list(READ_FPS))
def read_project(request: pytest.FixtureRequest, module_tmp: MakeDir) -> TimelineProject:
    root = module_tmp(f"otio-read-{request.param}")
    return make_timeline_project(root, fps=READ_FPS[request.param], clip_seconds=(1.5, 1.0, 2.0))


@pytest.mark.parametrize("with_master", [True, False], ids=["master", "clips-only"])
@pytest.mark.parametrize("tc_case", list(TIMECODES))
def test_otio_flavours_read_back_exactly(
    read_project: TimelineProject, tc_case: str, with_master: bool
) -> None:
    """otio, premiere-otio and resolve-otio, read by otio_json, are the model frame for
    frame, clips with timecode included: the media's available range starts at the
    file's timecode, the source range at timecode + in point."""
    build, want_tc = timecoded_build(read_project, tc_case, with_master)
    meant = from_otio(build.timeline)
    check_intent(build, want_tc, meant)
    for flavour in ("otio", "premiere-otio", "resolve-otio"):
        read = _read(render(build.timeline, flavour))
        assert from_otio(read) == meant, flavour
        for clip in read.find_clips():
            avail = clip.media_reference.available_range
            assert (
                round(avail.start_time.value)
                == want_tc[Path(path_from_url(clip.media_reference.target_url))]
            )
            assert clip.source_range.start_time.value >= avail.start_time.value


def test_relative_paths_resolve_from_the_timeline_file(
    project: TimelineProject, tmp_path: Path
) -> None:
    out_dir = tmp_path / "edit folder"
    r = _timeline(project.folder, "--manifest", project.manifest, "--format", "otio",
                  "--format", "resolve-otio", "--out", out_dir, "--relative")  # fmt: skip
    assert r.exit_code == 0, r.output
    files = sorted(out_dir.iterdir())
    assert len(files) == 2
    for f in files:
        tl = otio.adapters.read_from_file(str(f))
        for track in tl.tracks:
            for _, _, clip in _items(track):
                url = clip.media_reference.target_url
                assert not url.startswith(("/", "file:"))
                # Resolve writes plain paths; OTIO's convention is an encoded URL.
                rel = url if f.name.endswith(".resolve.otio") else unquote(url)
                assert (out_dir / rel).resolve() == Path(clip.metadata["handoff"]["path"])
                assert (out_dir / rel).is_file()


# ---------------------------------------------------------------- the command


def test_all_formats_in_one_go(project: TimelineProject, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "timeline",
        str(project.folder),
        "--manifest",
        str(project.manifest),
        "--format",
        "all",
        "--out",
        str(out),
        "--name",
        "Ep 1 & 'final'",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"Ep 1 & 'final'{s}"
        for s in (".otio", ".premiere.xml", ".premiere.otio", ".resolve.otio", ".fcpxml")
    )
    assert "FCPXML has no track lock" in r.output
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # A second run does not overwrite without being asked: it skips each file, saying
    # which, and exits 0 (docs/reference/cli.md, Re-runs).
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("exists (use --overwrite to replace it)") == 5
    assert "wrote" not in again.output
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0


def test_relative_refused_for_absolute_only_formats(project: TimelineProject) -> None:
    r = CliRunner().invoke(
        main, ["timeline", str(project.folder), "--format", "premiere-xml", "--relative"]
    )
    assert r.exit_code == 2
    assert "premiere-xml" in r.output and "absolute" in r.output


def test_json_summary(project: TimelineProject, tmp_path: Path) -> None:
    r = _timeline(project.folder, "--manifest", project.manifest, "--format", "otio",
                  "--out", tmp_path / "t.otio", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["rate"] == "24000/1001"
    assert [c["segment"] for c in data["clips"]] == [1, 2, 3]
    assert data["files"][0]["format"] == "otio"
    assert all(abs(c["rounding_ms"]) <= 500 / (24000 / 1001) for c in data["clips"])


# ---------------------------------------------------------------- paths


def test_premiere_pathurl_forms() -> None:
    assert (
        premiere_pathurl(PureWindowsPath("D:\\Media\\a b.mov"))
        == "file://localhost/D%3a/Media/a%20b.mov"
    )
    assert (
        premiere_pathurl(PurePosixPath("/Volumes/Raid/Ep 1 & #2/é'%.mov"))
        == "file://localhost/Volumes/Raid/Ep%201%20%26%20%232/%C3%A9%27%25.mov"
    )
    assert file_url(PureWindowsPath("C:\\x y\\z.wav")) == "file:///C:/x%20y/z.wav"


@given(
    st.lists(
        st.text(min_size=1, max_size=12).filter(
            lambda s: "/" not in s and "\x00" not in s and s not in (".", "..")
        ),
        min_size=1,
        max_size=4,
    )
)
def test_file_urls_round_trip(parts: list[str]) -> None:
    # A top-level "D:" folder reads as a Windows drive: file URLs cannot tell them apart.
    assume(not (len(parts) > 1 and len(parts[0]) == 2 and parts[0][1] == ":"))
    path = PurePosixPath("/", *parts)
    assert path_from_url(file_url(path)) == str(path)
    assert path_from_url(premiere_pathurl(path)) == str(path)


def test_clip_sound_shorter_than_picture_is_not_stretched(tmp_path: Path) -> None:
    clip = write_clip(
        tmp_path / "001_short_sound.mp4",
        ClipSpec(fps=Fraction(24), seconds=3.0, audio_seconds=2.0, width=64, height=64),
    )
    v1, a1 = build_timeline([source_from_info(probe(clip))]).timeline.tracks
    ((_, picture, _),) = _items(v1)
    ((_, sound, _),) = _items(a1)
    assert picture == 72
    assert sound == 48


def test_tails_are_cut_where_the_next_segment_begins(tmp_path: Path) -> None:
    """Clips a second longer than their segment: each tail is cut at the next segment's
    first sound, never before, and no two clips overlap."""
    project = make_timeline_project(tmp_path, fps=Fraction(24), clip_seconds=(3.0, 3.0, 3.0))
    manifest = json.loads(project.manifest.read_text(encoding="utf-8"))
    long_clips = []
    for clip in project.clips:
        long_clips.append(
            write_clip(
                clip.with_name("long " + clip.name),
                ClipSpec(fps=Fraction(24), seconds=4.0, width=64, height=64,
                         video_options={"preset": "ultrafast"}),
            )
        )  # fmt: skip
    build = build_timeline(
        [source_from_info(probe(c)) for c in long_clips],
        master=source_from_info(probe(project.master), audio_only=True),
        manifest=load_manifest(project.manifest),
    )
    clips = build.summary()["clips"]
    m0 = build.master_start
    for c, nxt, seg in zip(clips, clips[1:], manifest["segments"][1:], strict=False):
        speech_starts = m0 + round(Fraction(seg["source_in"], 48000) * 24)
        assert c["end"] == nxt["start"] == speech_starts
        assert c["trimmed_tail"] == 96 - c["source_out"]
        assert c["trimmed_tail"] > 0
    assert clips[-1]["trimmed_tail"] == 0
    _no_overlap(build.timeline.tracks[0])
    _no_overlap(build.timeline.tracks[2])
    assert any("overlaps between neighbours" in n for n in build.notes)


@pytest.mark.parametrize("version", ["1.9", "1.11"])
def test_fcpxml_version_option(project: TimelineProject, tmp_path: Path, version: str) -> None:
    out = tmp_path / "cut.fcpxml"
    r = _timeline(project.folder, "--manifest", project.manifest, "--format", "fcpxml",
                  "--fcpxml-version", version, "--out", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "FCPXML has no track lock" in r.output
    root = etree.parse(str(out))
    assert root.getroot().get("version") == version
    dtd_path = NLE / f"FCPXMLv{version.replace('.', '_')}.dtd"
    if not dtd_path.exists():
        pytest.skip(f"Apple's FCPXML {version} DTD not present: {dtd_path}")
    assert etree.DTD(str(dtd_path)).validate(root)


# ---------------------------------------------------------------- bad inputs, one line


def _edited(key_path: str, value: object) -> Any:
    def edit(doc: Any) -> str:
        *parents, last = key_path.split(".")
        node = doc
        for k in parents:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[int(last) if isinstance(node, list) else last] = value
        return json.dumps(doc)

    return edit


def _literal(key_path: str, literal: str) -> Any:
    """Put a literal the json module would not write (NaN, a 5000-digit number) in a field."""
    marker = 123456789.25

    def edit(doc: Any) -> str:
        return str(_edited(key_path, marker)(doc)).replace(str(marker), literal)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_edited("master", "x.wav"), "master: must be an object"),
        (_edited("settings", [1]), "settings: must be an object (got an array)"),
        (_edited("master.file", 5), "master.file: must be a file name (got 5)"),
        (_edited("settings.sample_rate", 0), "settings.sample_rate: must be a sample rate"),
        (_edited("settings.sample_rate", -48000), "(got -48000)"),
        (_literal("segments.0.source_in", "Infinity"), "segments[0].source_in: Infinity"),
        (_literal("segments.0.source_in", "9" * 5000), "an integer of 5000 digits"),
        (_literal("warnings", "[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (
            _edited("segments.2.source_in", 10**18),
            "segments[2].source_in: must be a whole number of samples from 0 to master.samples",
        ),
        (_edited("master.file", "../elsewhere.wav"), "master.file: must be a plain file name"),
        (_edited("segments.1.file", "/tmp/x.wav"), "segments[1].file: must be a plain file"),
    ],
    ids=[
        "master-string",
        "settings-array",
        "master-file-5",
        "rate-0",
        "rate-negative",
        "infinity",
        "5000-digits",
        "deep",
        "source-in-1e18",
        "master-outside",
        "segment-absolute",
    ],
)
def test_malformed_manifest_is_refused_in_one_line(
    project: TimelineProject, tmp_path: Path, edit: Any, expected: str
) -> None:
    """Cases from the fuzzing campaign: each was a traceback or a timeline built from
    nonsense; now the command names the field and writes nothing."""
    bad = tmp_path / "manifest.json"
    bad.write_text(edit(json.loads(project.manifest.read_text(encoding="utf-8"))))
    out = tmp_path / "t.otio"
    r = _timeline(project.folder, "--manifest", bad, "--format", "otio", "--out", out)
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"handoff: error: {bad}: ")
    assert expected in line
    assert not out.exists()


def test_unusable_folders_are_reported_with_the_clips(
    project: TimelineProject, tmp_path: Path
) -> None:
    """A folder with no media is one of the inputs that cannot go on the timeline,
    reported beside an unreadable clip, not a crash."""
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a movie" * 10)
    r = _timeline(project.clips[0], empty, junk, "--format", "otio", "--out", tmp_path / "t.otio")
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "2 of 3 clips cannot go on a timeline" in line
    assert f"{empty}: folder holds no media files" in line
    assert "junk.mp4" in line
    assert not (tmp_path / "t.otio").exists()
