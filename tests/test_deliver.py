"""``handoff deliver`` end to end on the process pool, checked by independent readers:
PyAV and ``handoff validate`` on the masters, OpenTimelineIO and lxml on the timelines,
json on the selects, the report and the journal.

One batch (three takes of one segment and a broken file) is made and delivered once per
module. The journal keys every step by absolute paths (renders and outputs), so a test
that changes the workspace gets it back *at the same path* (``workspace``: the pristine
copy restored with its modification times), never a copy elsewhere, which would be a
different batch to the journal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import opentimelineio as otio
import pytest
from lxml import etree

from handoff.files.manifest import load_manifest
from handoff.media.audio import decode_audio
from handoff.media.synth import TakeSpec, babble, write_take, write_wav
from handoff.prep import PrepOptions, prep_audio
from tests.conftest import REPO, MakeDir, run_handoff

GOOD = ("001_take1.mp4", "001_take2.mp4", "001_take3.mp4")
BROKEN = "002_broken.mp4"
MASTERS = tuple(n.replace(".mp4", ".mov") for n in GOOD)
TIMELINE_SUFFIXES = (".otio", ".premiere.xml", ".premiere.otio", ".resolve.otio", ".fcpxml")


# --------------------------------------------------------------------- helpers


def make_batch(
    root: Path,
    takes: Sequence[tuple[str, TakeSpec]],
    *,
    seconds: float,
    size: tuple[int, int],
) -> Path:
    """A narration conditioned by prep-audio into one segment (``root/cond``) and takes
    of its first ``seconds`` (``root/renders``). Returns the manifest."""
    rate = 48000
    voice = babble(seconds + 6.0, rate, level=0.05, seed=3)
    narration = write_wav(root / "narr.wav", np.stack([voice, voice]).astype(np.float32), rate)
    prepped = prep_audio(narration, root / "cond", PrepOptions(name="narration", overwrite=True))
    manifest = load_manifest(prepped.manifest_path)
    segment = decode_audio(manifest.path.parent / manifest.segments[0].file)
    head = segment.samples[:, : round(seconds * segment.sample_rate)]
    (root / "renders").mkdir(parents=True, exist_ok=True)
    for name, spec in takes:
        write_take(root / "renders" / name, head, segment.sample_rate,
                   replace(spec, width=size[0], height=size[1], audio_channels=1))  # fmt: skip
    return prepped.manifest_path


def handoff_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "handoff", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@dataclass(frozen=True)
class JournalLines:
    records: list[dict[str, Any]]
    events: list[dict[str, Any]]
    torn: bool


def read_journal(path: Path, start: int = 0) -> JournalLines:
    """The journal's lines from line ``start`` (0-based): records and events; a torn last
    line (a kill mid-write) is allowed and skipped, any other bad line fails the test."""
    lines = path.read_bytes().split(b"\n")
    last_complete = lines[-1] == b""
    if last_complete:
        lines.pop()
    records, events, torn = [], [], False
    for number, raw in enumerate(lines):
        try:
            obj = json.loads(raw)
        except ValueError:
            assert number == len(lines) - 1 and not last_complete, f"line {number + 1}: {raw!r}"
            torn = True
            continue
        if number < start:
            continue
        if "record" in obj:
            assert obj["schema"] == "handoff.journal/1"
            records.append(obj["record"])
        else:
            assert "event" in obj, obj
            events.append(obj)
    return JournalLines(records, events, torn)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def tree_state(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every file and folder under ``folder``: (size, mtime_ns) for files, None for folders;
    not the lock file, which each run rewrites with its holder's pid."""
    state: dict[str, tuple[int, int] | None] = {}
    for path in sorted(folder.rglob("*")):
        if path.name == ".deliver.lock":
            continue
        st = path.stat()
        state[str(path.relative_to(folder))] = (
            None if path.is_dir() else (st.st_size, st.st_mtime_ns)
        )
    return state


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def assert_masters_pass(folder: Path, names: Sequence[str], spec: str = "prores-master") -> None:
    """Each file is there, PyAV reads every frame of it, and ``handoff validate`` passes it."""
    files = [folder / n for n in names]
    for path in files:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            assert frames > 0, path
            if spec == "prores-master":
                assert stream.codec_context.name == "prores", path
    checked = run_handoff("validate", *map(str, files), "--spec", spec)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def final_names(folder: Path) -> list[str]:
    """Files with a final name (not a ``.name.<pid>.<random>.part.ext`` being written)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def session_processes(session: int) -> list[str]:
    """Live (not zombie) processes of a session, from /proc: ``pid cmdline``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append(f"{entry.name} {cmd}")
    return found


def wait_gone(session: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def wait_for(predicate: Any, proc: subprocess.Popen[Any], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the deliver ended before the point to stop it at"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def record_lines(journal: Path) -> int:
    if not journal.exists():
        return 0
    return journal.read_bytes().count(b'{"record": ')


# --------------------------------------------------------------------- the batch


@dataclass(frozen=True)
class Batch:
    root: Path
    renders: Path
    manifest: Path
    out: Path
    first: subprocess.CompletedProcess[str]

    def deliver(self, *extra: str, out: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The batch's command, run from its folder with relative paths."""
        target = self.out if out is None else out
        return run_handoff(
            "deliver", "renders", "--manifest", "cond/manifest.json",
            "--out", os.path.relpath(target, self.root), "--jobs", "2", *extra,
            cwd=self.root,
        )  # fmt: skip


@pytest.fixture(scope="module")
def pristine(module_tmp: MakeDir) -> Iterator[tuple[Path, Path, Any]]:
    base = module_tmp("deliver")
    root = base / "batch"
    root.mkdir()
    make_batch(
        root,
        [
            (GOOD[0], TakeSpec()),
            (GOOD[1], TakeSpec(picture_delay_s=2 / 24)),
            (GOOD[2], TakeSpec(picture_stretch=1.01)),
        ],
        seconds=10.0,
        size=(320, 180),
    )
    (root / "renders" / BROKEN).write_bytes(b"\0" * 48)
    first = run_handoff(
        "deliver", "renders", "--manifest", "cond/manifest.json", "--out", "delivery",
        "--jobs", "2", cwd=root,
    )  # fmt: skip
    saved = base / "pristine"
    shutil.copytree(root, saved, symlinks=True)
    yield root, saved, first


@pytest.fixture
def batch(pristine: tuple[Path, Path, Any]) -> Batch:
    """The batch as the first delivery left it, at its own path (mtimes kept)."""
    root, saved, first = pristine
    shutil.rmtree(root)
    shutil.copytree(saved, root, symlinks=True)
    return Batch(root, root / "renders", root / "cond" / "manifest.json", root / "delivery",
                 first)  # fmt: skip


# --------------------------------------------------------------------- 1. first run


def test_first_run_delivers_the_good_renders_and_reports_the_broken_one(batch: Batch) -> None:
    first, out = batch.first, batch.out
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stderr

    assert final_names(out / "masters") == sorted(MASTERS)
    assert_masters_pass(out / "masters", MASTERS)

    selects = json.loads((out / "selects.json").read_text())
    assert selects["schema"] == "handoff.selects/1"
    [segment] = selects["segments"]
    assert segment["segment"] == 1
    assert segment["pick"] == "masters/001_take1.mov"
    assert sorted(segment["alternates"]) == ["masters/001_take2.mov", "masters/001_take3.mov"]
    assert segment["regenerate"] is False
    verdicts = {Path(t["path"]).name: t["verdict"] for t in segment["takes"]}
    assert verdicts == {"001_take1.mov": "in", "001_take2.mov": "out", "001_take3.mov": "out"}

    timeline = sorted((out / "timeline").iterdir())
    assert sorted(p.name for p in timeline) == sorted("narration" + s for s in TIMELINE_SUFFIXES)
    for path in timeline:
        if path.suffix == ".otio":
            # The pick on the enabled video track; the alternates on disabled ones.
            read = otio.adapters.read_from_file(str(path))
            shown_clips = [
                Path(c.media_reference.target_url).name
                for track in read.video_tracks()
                if track.enabled
                for c in track.find_clips()
            ]
            assert shown_clips == ["001_take1.mov"], (path, shown_clips)
        else:
            # The alternates are there too (an FCP audition; Premiere clips named
            # "alt N"): the pick is the audition's first clip, the one clip named "pick".
            tree = etree.parse(str(path))
            if path.suffix == ".fcpxml":
                head = tree.xpath("//audition/clip[1]/@name")
                assert isinstance(head, list) and str(head[0]).startswith("001_take1 (pick")
                names = [str(n) for n in tree.xpath("//audition/clip/@name")]  # type: ignore[union-attr]
            else:
                names = [str(n) for n in tree.xpath("//clipitem/name/text()")]  # type: ignore[union-attr]
            picks = {n for n in names if "(pick" in n}
            assert picks == {n for n in names if n.startswith("001_take1 (pick")} != set(), path

    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == "handoff.delivery-report/1"
    rows = {Path(r["render"]).name: r for r in report["renders"]}
    assert sorted(rows) == sorted((*GOOD, BROKEN))
    assert rows[BROKEN]["state"] == "failed" and rows[BROKEN]["reason"]
    assert [n for n, r in rows.items() if r["picked"]] == [GOOD[0]]
    html = (out / "report.html").read_text()
    for name in (*GOOD, BROKEN):
        assert name in html

    # The broken render's row of the summary says why, in words, on its own line.
    [row] = [line for line in first.stdout.splitlines() if BROKEN in line]
    assert "FAILED" in row and "not a media file" in row, row
    assert "4 render(s): 3 delivered, 1 failed" in first.stdout


# --------------------------------------------------------------------- 2. re-run


def test_second_run_does_nothing_and_reads_no_media(batch: Batch) -> None:
    journal = batch.out / "journal.jsonl"
    before = tree_state(batch.out)
    lines = line_count(journal)

    again = batch.deliver()

    assert again.returncode == 1, again.stdout + again.stderr
    assert "Nothing to do" in again.stdout
    assert "0 file(s) fingerprinted" in again.stdout
    after = tree_state(batch.out)
    del before["journal.jsonl"], after["journal.jsonl"]
    assert after == before
    new = read_journal(journal, start=lines)
    assert new.records == []
    assert [e["event"] for e in new.events] == ["run-started", "run-finished"]


# --------------------------------------------------------------------- 3. changed input


def test_a_rerendered_take_reruns_only_its_own_steps(batch: Batch) -> None:
    journal = batch.out / "journal.jsonl"
    before = tree_state(batch.out)
    lines = line_count(journal)
    changed = batch.renders / GOOD[2]
    old_master = (batch.out / "masters" / MASTERS[2]).read_bytes()
    # Re-rendered: now in sync (it was drifting). Same name, new content.
    manifest = load_manifest(batch.manifest)
    segment = decode_audio(manifest.path.parent / manifest.segments[0].file)
    write_take(changed, segment.samples[:, : 10 * segment.sample_rate], segment.sample_rate,
               TakeSpec(width=320, height=180, audio_channels=1, picture_noise=2.0))  # fmt: skip

    again = batch.deliver()

    assert again.returncode == 1, again.stdout + again.stderr  # the broken render still is
    new = read_journal(journal, start=lines)
    render = str(changed)
    assert sorted(r["key"] for r in new.records) == sorted(
        [f"receive:{render}", f"master:{render}", f"sync:{render}",
         "selects:batch", "timeline:batch", "report:batch"]
    )  # fmt: skip
    assert all(r["status"] == "done" for r in new.records)
    after = tree_state(batch.out)
    master = f"masters/{MASTERS[2]}"
    assert after[master] != before[master]
    assert (batch.out / master).read_bytes() != old_master
    rewritten = {master, "selects.json", "report.json", "report.html", "journal.jsonl",
                 *(f"timeline/narration{s}" for s in TIMELINE_SUFFIXES)}  # fmt: skip
    for name in rewritten - {"journal.jsonl"}:
        assert after[name] != before[name], name
    assert {k: v for k, v in after.items() if k not in rewritten} == {
        k: v for k, v in before.items() if k not in rewritten
    }
    assert_masters_pass(batch.out / "masters", [MASTERS[2]])
    # The re-rendered take is in sync now: two takes in, the pick stays the best one.
    selects = json.loads((batch.out / "selects.json").read_text())
    verdicts = {Path(t["path"]).name: t["verdict"] for t in selects["segments"][0]["takes"]}
    assert verdicts[MASTERS[2]] == "in"


def test_a_touched_but_unchanged_render_runs_nothing(batch: Batch) -> None:
    journal = batch.out / "journal.jsonl"
    lines = line_count(journal)
    before = tree_state(batch.out)
    touched = batch.renders / GOOD[1]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    again = batch.deliver()

    assert again.returncode == 1
    assert "Nothing to do" in again.stdout
    assert "1 file(s) fingerprinted" in again.stdout
    assert read_journal(journal, start=lines).records == []
    after = tree_state(batch.out)
    del before["journal.jsonl"], after["journal.jsonl"]
    assert after == before


# --------------------------------------------------------------------- 4. --force


def test_force_runs_every_step_again(batch: Batch) -> None:
    journal = batch.out / "journal.jsonl"
    every = {r["key"] for r in read_journal(journal).records}
    lines = line_count(journal)

    again = batch.deliver("--force")

    assert again.returncode == 1, again.stdout + again.stderr
    new = read_journal(journal, start=lines)
    assert sorted(r["key"] for r in new.records) == sorted(every)
    assert "Nothing to do" not in again.stdout
    assert "0 kept from the journal" in again.stdout
    assert_masters_pass(batch.out / "masters", MASTERS)


# --------------------------------------------------------------------- 5. --dry-run


def test_dry_run_on_a_finished_folder_keeps_everything_and_writes_nothing(batch: Batch) -> None:
    before = tree_state(batch.out)

    shown = batch.deliver("--dry-run")
    as_json = batch.deliver("--dry-run", "--json")

    assert shown.returncode == 0, shown.stderr
    assert as_json.returncode == 0, as_json.stderr
    assert tree_state(batch.out) == before
    plan = json.loads(as_json.stdout)
    assert plan["schema"] == "handoff.deliver-plan/1"
    assert plan["summary"]["run"] == 0
    for rp in plan["renders"]:
        actions = [(s["step"], s["action"]) for s in rp["steps"]]
        if Path(rp["render"]).name == BROKEN:
            # Its receive is kept with its error (the same bytes would fail again).
            assert actions == [("receive", "keep"), ("master", "blocked"), ("sync", "blocked")]
        else:
            assert actions == [("receive", "keep"), ("master", "keep"), ("sync", "keep")]
    assert not [line for line in shown.stdout.splitlines() if line.startswith("  run ")]
    assert "0 step(s) would run" in shown.stdout


def test_dry_run_of_a_new_folder_creates_nothing(batch: Batch) -> None:
    listing = sorted(p.name for p in batch.root.iterdir())
    planned = batch.deliver("--dry-run", "--json", out=batch.root / "new-delivery")
    assert planned.returncode == 0, planned.stderr
    assert sorted(p.name for p in batch.root.iterdir()) == listing
    plan = json.loads(planned.stdout)
    actions = {(Path(r["render"]).name, s["step"]): s["action"]
               for r in plan["renders"] for s in r["steps"]}  # fmt: skip
    # The broken file's name says segment 2, which the manifest lacks: nothing to sync to.
    assert actions.pop((BROKEN, "sync")) == "blocked"
    assert set(actions.values()) == {"run"}


# --------------------------------------------------------------------- 6. --json


def test_json_events_are_one_object_a_line(batch: Batch) -> None:
    run = batch.deliver("--json", "--force")

    events = [json.loads(line) for line in run.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"plan", "started", "done", "failed", "finished"} <= kinds
    assert events[0]["event"] == "plan" and events[-1]["event"] == "finished"
    finished = events[-1]
    assert finished["exit_code"] == run.returncode == 1
    [failed] = [e for e in events if e["event"] == "failed"]
    assert Path(failed["render"]).name == BROKEN and failed["step"] == "receive"
    assert failed["reason"]
    for e in events[1:-1]:
        assert {"event", "key", "step", "render"} <= set(e), e
    assert finished["summary"]["failed"] == 1 and finished["summary"]["delivered"] == 3
    assert "Traceback" not in run.stderr


# --------------------------------------------------------------------- 7. the lock


def test_a_second_deliver_into_a_busy_folder_is_refused_until_the_first_dies(
    batch: Batch,
) -> None:
    out = batch.root / "busy"
    first = subprocess.Popen(
        handoff_argv(
            "deliver", "renders", "--manifest", "cond/manifest.json", "--out", "busy", "--jobs", "2"
        ),
        cwd=batch.root,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (out / "journal.jsonl").exists(), first)
        second = batch.deliver(out=out)
        line = assert_one_line_error(second, f"pid {first.pid}")
        assert "busy" in line
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert not wait_gone(first.pid)

    third = batch.deliver(out=out)

    assert third.returncode == 1, third.stdout + third.stderr  # the broken render
    assert "another 'handoff deliver'" not in third.stderr
    assert final_names(out / "masters") == sorted(MASTERS)
    assert_masters_pass(out / "masters", MASTERS)


# --------------------------------------------------------------------- 8. --config


def _steps(plan_text: str) -> list[Any]:
    plan = json.loads(plan_text)
    return [(r["render"], r["steps"]) for r in plan["renders"]]


def test_a_batch_file_gives_the_same_plan_as_the_flags(batch: Batch) -> None:
    config = batch.root / "config" / "batch.toml"
    config.parent.mkdir()
    config.write_text(
        'renders = ["../renders"]\nmanifest = "../cond/manifest.json"\n'
        'out = "../delivery"\njobs = 2\npreset = "prores-lt"\nformat = ["otio", "fcpxml"]\n'
    )
    elsewhere = batch.root / "elsewhere"
    elsewhere.mkdir()
    by_flags = batch.deliver("--dry-run", "--json", "--format", "otio", "--format", "fcpxml")
    assert by_flags.returncode == 0, by_flags.stderr

    by_file = run_handoff("deliver", "--config", "../config/batch.toml", "--preset",
                          "prores-master", "--dry-run", "--json", cwd=elsewhere)  # fmt: skip
    assert by_file.returncode == 0, by_file.stderr
    assert _steps(by_file.stdout) == _steps(by_flags.stdout)
    options = json.loads(by_file.stdout)["options"]
    assert options == json.loads(by_flags.stdout)["options"]
    assert options["formats"] == ["otio", "fcpxml"] and options["preset"] == "prores-master"
    assert options["out"] == str(batch.out)
    assert json.loads(by_file.stdout)["summary"]["run"] == 0

    # The file's own preset (no flag over it) changes the masters' settings.
    file_only = run_handoff("deliver", "--config", "../config/batch.toml", "--dry-run",
                            "--json", cwd=elsewhere)  # fmt: skip
    assert file_only.returncode == 0, file_only.stderr
    masters = [s for _, steps in _steps(file_only.stdout) for s in steps if s["step"] == "master"]
    assert {(s["spec"], s["action"]) for s in masters if s["action"] != "blocked"} == {
        ("prores-lt", "run")
    }

    config.write_text('renders = ["../renders"]\nout = "../delivery"\nworkers = 4\n')
    refused = run_handoff("deliver", "--config", "../config/batch.toml", cwd=elsewhere)
    assert_one_line_error(refused, "unknown key 'workers'")


# --------------------------------------------------------------------- 9. no manifest


def test_without_a_manifest_every_master_is_on_the_timeline_in_name_order(batch: Batch) -> None:
    out = batch.root / "plain"
    run = run_handoff("deliver", "renders", "--out", "plain", "--jobs", "2", cwd=batch.root)

    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert not (out / "selects.json").exists()
    assert final_names(out / "masters") == sorted(MASTERS)
    assert_masters_pass(out / "masters", MASTERS)
    [otio_file] = [p for p in (out / "timeline").iterdir() if p.name.endswith(".otio")
                   and p.name.count(".") == 1]  # fmt: skip
    read = otio.adapters.read_from_file(str(otio_file))
    names = [Path(c.media_reference.target_url).name for c in read.find_clips()]
    assert list(dict.fromkeys(names)) == list(MASTERS)  # each in picture and sound
    report = json.loads((out / "report.json").read_text())
    assert report["selects"] is None

    good = run_handoff("deliver", *(f"renders/{n}" for n in GOOD), "--out", "plain",
                       "--jobs", "2", cwd=batch.root)  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr


# --------------------------------------------------------------------- 10. bad input


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["renders"], ["--out"]),
        (["--out", "d"], ["renders"]),
        (["renders", "--out", "afile"], ["afile"]),
        (["renders", "--out", "d", "--manifest", "notjson.json"], ["notjson.json", "JSON"]),
        (["renders", "--out", "d", "--preset", "nosuch"], ["nosuch"]),
        (["renders", "--out", "d", "--path-map", "/a=/b"], ["--path-map", "--cluster"]),
    ],
    ids=[
        "no-out",
        "no-renders",
        "out-is-a-file",
        "manifest-not-json",
        "no-such-preset",
        "path-map-without-cluster",
    ],
)
def test_bad_input_is_one_line_and_exit_2(batch: Batch, args: list[str], words: list[str]) -> None:
    (batch.root / "afile").write_text("not a folder\n")
    (batch.root / "notjson.json").write_text("{ this is not json\n")
    proc = run_handoff("deliver", *args, cwd=batch.root)
    assert_one_line_error(proc, *words)
    assert not (batch.root / "d").exists()


# --------------------------------------------------------------------- 11. a cut-short render


def test_a_cut_render_is_refused_in_flags_and_delivered_when_allowed(batch: Batch) -> None:
    """A render cut short (a queue killed mid-write) is refused the way `export` refuses
    it, its advice named as deliver's own flag in the display and the journal; with that
    flag the next run exports it (the settings changed) and keeps the rest."""
    cut_dir = batch.root / "cut"
    cut_dir.mkdir()
    whole = (batch.renders / GOOD[0]).read_bytes()
    (cut_dir / "003_cut.mp4").write_bytes(whole[: len(whole) // 2])
    shutil.copy2(batch.renders / GOOD[1], cut_dir / GOOD[1])
    args = ("deliver", "cut", "--out", "cutout", "--jobs", "2")

    refused = run_handoff(*args, cwd=batch.root)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    said = refused.stdout + refused.stderr
    assert "incomplete source" in said and "--allow-truncated" in said
    assert "allow_truncated=True" not in said
    journal = read_journal(batch.root / "cutout" / "journal.jsonl")
    [master] = [r for r in journal.records if r["key"] == f"master:{cut_dir / '003_cut.mp4'}"]
    assert master["status"] == "error" and "--allow-truncated" in master["reason"]
    assert final_names(batch.root / "cutout" / "masters") == [MASTERS[1]]

    allowed = run_handoff(*args, "--allow-truncated", "--dry-run", cwd=batch.root)
    assert allowed.returncode == 0 and "the settings changed" in allowed.stdout, allowed.stdout
    allowed = run_handoff(*args, "--allow-truncated", cwd=batch.root)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert final_names(batch.root / "cutout" / "masters") == sorted(["003_cut.mov", MASTERS[1]])
    assert_masters_pass(batch.root / "cutout" / "masters", ["003_cut.mov"])
    with av.open(str(batch.root / "cutout" / "masters" / "003_cut.mov")) as made:
        assert made.duration is not None and made.duration / av.time_base < 10.0 * 0.75
