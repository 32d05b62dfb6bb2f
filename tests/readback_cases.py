"""The cases every format's exact read-back is held to: real media at five rates, with
and without source timecode, with and without a master; and what the model must say
for them (checked against the build's own placements and timecodes worked out by hand,
so that ``from_otio(build.timeline)`` can then stand for the intent)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from handoff.probe.reader import SourceTimecode, probe
from handoff.timeline import TimelineBuild, build_timeline, load_manifest, source_from_info
from handoff.timeline.model import SequenceSettings, Source
from handoff.timeline.timecode import parse_timecode
from tests.conftest import AWKWARD_DIR, TimelineProject
from tests.readback import ReadTimeline

__all__ = ["READ_FPS", "TIMECODES", "check_intent", "label_frames", "timecoded_build"]


READ_FPS = {
    "23.976": Fraction(24000, 1001),
    "24": Fraction(24),
    "25": Fraction(25),
    "29.97": Fraction(30000, 1001),
    "30": Fraction(30),
}
# The clips' own timecode (each clip a few frames on from the one before, as takes shot
# one after another are) and the sequence's start: none; the hour, as editors start a
# programme; an odd time of day on a sequence starting just before the hour.
TIMECODES = {
    "no-tc": (None, "00:00:00:00"),
    "tc-hour": ("01:00:00:00", "01:00:00:00"),
    "tc-odd": ("13:47:21:19", "00:59:50:00"),
}


def label_frames(label: str, rate: Fraction) -> int:
    """Frame count of a non-drop-frame label, counted by hand: frames of the timebase
    (24 at 23.976, 30 at 29.97) a second."""
    hh, mm, ss, ff = (int(x) for x in label.split(":"))
    timebase = -(-rate.numerator // rate.denominator)
    return ((hh * 60 + mm) * 60 + ss) * timebase + ff


def with_timecode(source: Source, frame: int, rate: Fraction) -> Source:
    """The source as the probe describes a file whose ``tmcd`` starts at ``frame``."""
    tc = SourceTimecode(
        label=f"frame {frame}", start=frame / rate, origin="tmcd", frame=frame, rate=rate
    )
    return replace(source, timecode=tc)


def timecoded_build(
    project: TimelineProject, tc_case: str, with_master: bool
) -> tuple[TimelineBuild, dict[Path, int]]:
    """The project's timeline, its clips (and master) carrying the case's timecode;
    and the timecode frame count each file should carry, worked out by hand."""
    rate = project.rate
    first, start = TIMECODES[tc_case]
    sources = [source_from_info(probe(c)) for c in project.clips]
    want: dict[Path, int] = {}
    for k, s in enumerate(sources):
        frame = 0 if first is None else label_frames(first, rate) + 7 * k
        if first is not None:
            sources[k] = with_timecode(s, frame, rate)
        want[s.path] = frame
    settings = SequenceSettings(start=parse_timecode(start))
    if not with_master:
        return build_timeline(sources, name="Clips & 'co'", settings=settings), want
    master = source_from_info(probe(project.master), audio_only=True)
    if first is not None:
        # A BWF master at the hour: 3600 s of samples since midnight, which lands on a
        # frame only at whole rates (at 23.976 it is frame 86313.686..., written 86314).
        samples = 3600 * 48000
        tc = SourceTimecode(label="01:00:00:00", start=Fraction(samples, 48000),
                            origin="bext", samples=samples)  # fmt: skip
        master = replace(master, timecode=tc)
        want[master.path] = round(3600 * rate)
    else:
        want[master.path] = 0
    manifest = load_manifest(project.manifest)
    build = build_timeline(sources, master=master, manifest=manifest, name="Déjà vu & #1",
                           settings=settings)  # fmt: skip
    return build, want


def check_intent(build: TimelineBuild, want_tc: dict[Path, int], meant: ReadTimeline) -> None:
    """The model (read by from_otio) against the build's own placements and the
    timecodes given: what every format must carry."""
    p = build.placements
    assert meant.rate == build.rate
    assert meant.start_frames == build.start_frame
    v1 = meant.on("V1")
    assert [(c.start, c.duration, c.source_in) for c in v1] == [
        (q.start, q.duration, q.source_start) for q in p
    ]
    assert [c.path for c in v1] == [q.source.path for q in p]
    for c in meant.clips:
        assert c.path.is_file()
        assert AWKWARD_DIR in c.path.parts
        assert c.timecode_frames == want_tc[c.path], c
    if build.master is not None:
        (m,) = meant.on("A1")
        assert (m.start, m.source_in, m.locked, m.enabled) == (build.master_start, 0, True, True)
        clip_audio = meant.on("A2")
        assert [c.enabled for c in clip_audio] == [False] * len(p)
        assert not any(c.locked for c in clip_audio)
    else:
        clip_audio = meant.on("A1")
        assert all(c.locked and c.enabled for c in clip_audio)
    assert [(c.start, c.source_in, c.path) for c in clip_audio] == [
        (q.start, q.source_start, q.source.path) for q in p
    ]
    assert all(c.enabled and not c.locked for c in v1)
