"""The delivery journal, file stamps and the folder lock: real files, real processes.

A torn line is written by hand as a power cut would leave it; the lock's holder is a
child process killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from handoff.deliver.journal import (
    JOURNAL_NAME,
    LOCK_NAME,
    SCHEMA,
    FolderLock,
    Journal,
    Record,
    Stamp,
    Stamper,
    fingerprint,
    outputs_intact,
    settings_digest,
)
from handoff.errors import DeliveryBusyError, UsageError

REPO = Path(__file__).resolve().parents[1]


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _record(
    key: str,
    stamper: Stamper,
    inputs: list[Path],
    *,
    status: str = "done",
    outputs: tuple[Stamp, ...] = (),
    reason: str | None = None,
    result: dict[str, Any] | None = None,
    seconds: float = 0.0,
    at: str = "",
    run: str = "",
) -> Record:
    return Record(
        key=key,
        step=key.partition(":")[0],
        status=status,
        settings=settings_digest({"fps": "24000/1001", "key": key}),
        inputs=tuple(stamper.stamp(p) for p in inputs),
        outputs=outputs,
        reason=reason,
        result=result,
        seconds=seconds,
        at=at,
        run=run,
    )


def test_append_then_reopen_gives_the_same_records(tmp_path: Path) -> None:
    delivery = tmp_path / "DELIVERY"
    render = _file(tmp_path / "001_a.mp4", b"\x00\x00\x00\x18ftypisom" * 100)
    master = _file(tmp_path / "001_a.mov", b"master")
    stamper = Stamper()
    written = []
    with Journal.open(delivery) as journal:
        assert (delivery / JOURNAL_NAME).is_file() and journal.latest == {}
        journal.event("run-started", renders=1)
        written.append(
            journal.append(
                _record(
                    f"master:{render}",
                    stamper,
                    [render],
                    outputs=(stamper.stamp(master, content=False),),
                    result={"name": "Szene — café", "frames": 48, "notes": [], "ok": True},
                    seconds=1.25,
                )
            )
        )
        written.append(
            journal.append(
                _record(
                    "timeline:batch",
                    stamper,
                    [master],
                    status="failed",
                    reason="no clip has a video stream",
                )
            )
        )
        # the same key again: the later record wins
        written.append(journal.append(_record("timeline:batch", stamper, [master])))
    assert all(r.at.endswith("Z") and r.run == journal.run_id for r in written)

    again = Journal.open(delivery)
    try:
        assert again.notes == []
        assert again.run_id != "" and list(again.latest) == [f"master:{render}", "timeline:batch"]
        assert again.latest[f"master:{render}"] == written[0]
        assert again.latest["timeline:batch"] == written[2]
        assert again.latest[f"master:{render}"].outputs[0].fingerprint is None
        assert outputs_intact(again.latest[f"master:{render}"])
    finally:
        again.close()

    lines = (delivery / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert json.loads(lines[0])["event"] == "run-started"
    assert all(json.loads(line)["schema"] == SCHEMA for line in lines[1:])
    assert "café" in lines[1]  # ensure_ascii=False: readable with tail -f
    assert Record.from_json(written[0].to_json()) == written[0]


def test_a_torn_last_line_costs_that_line_only(tmp_path: Path) -> None:
    src = _file(tmp_path / "a.mp4", b"render")
    stamper = Stamper()
    with Journal.open(tmp_path) as journal:
        first = journal.append(_record("master:a", stamper, [src]))
        second = journal.append(_record("review:a", stamper, [src]))
    # A power cut in the middle of the third line's write.
    whole = json.dumps({"schema": SCHEMA, "record": _record("sync:a", stamper, [src]).to_json()})
    with (tmp_path / JOURNAL_NAME).open("ab") as f:
        f.write(whole.encode()[: len(whole) // 2])

    with Journal.open(tmp_path) as journal:
        assert journal.notes == [
            f"{JOURNAL_NAME} line 3 was cut short (a write interrupted) and is ignored"
        ]
        assert journal.latest == {"master:a": first, "review:a": second}
        third = journal.append(_record("sync:a", stamper, [src]))

    with Journal.open(tmp_path) as journal:
        assert journal.latest == {"master:a": first, "review:a": second, "sync:a": third}
        assert journal.notes == [f"{JOURNAL_NAME} line 3 is not valid JSON and is ignored"]
    assert (tmp_path / JOURNAL_NAME).read_bytes().endswith(b"\n")


def test_lines_it_cannot_use_are_named_and_skipped(tmp_path: Path) -> None:
    src = _file(tmp_path / "a.mp4", b"render")
    good = _record("master:a", Stamper(), [src], at="2026-12-03T02:20:11Z", run="r1")
    later = {"schema": "handoff.journal/2", "record": {"key": "master:a"}}
    broken = {"schema": SCHEMA, "record": {**good.to_json(), "size": None, "inputs": [{}]}}
    text = "\n".join(
        [
            json.dumps({"schema": SCHEMA, "record": good.to_json()}),
            "\x00\x00\x00\x00",  # what some file systems leave after a power cut
            json.dumps(later),
            json.dumps(broken),
            json.dumps([1, 2]),
            "",
            json.dumps({"event": "run-stopped", "at": "", "run": "r1"}),
        ]
    )
    (tmp_path / JOURNAL_NAME).write_text(text + "\n", encoding="utf-8")
    with Journal.open(tmp_path) as journal:
        assert journal.latest == {"master:a": good}
        assert journal.notes[0] == f"{JOURNAL_NAME} line 2 is not valid JSON and is ignored"
        assert journal.notes[1].startswith(f'{JOURNAL_NAME} line 3 has schema "handoff.journal/2"')
        assert journal.notes[2].startswith(f"{JOURNAL_NAME} line 4 is not a {SCHEMA} record (")
        assert journal.notes[3] == (
            f"{JOURNAL_NAME} line 5 is not a journal record or event and is ignored"
        )
        assert len(journal.notes) == 4


def test_a_journal_refuses_nan_and_writes_nothing(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        with pytest.raises(ValueError):
            journal.append(_record("report:batch", Stamper(), [], result={"lufs": float("nan")}))
        assert journal.latest == {}
    assert (tmp_path / JOURNAL_NAME).read_bytes() == b""
    with pytest.raises(ValueError, match="closed"):
        journal.event("late")


def test_a_fingerprint_sees_one_byte_behind_the_same_size_and_time(tmp_path: Path) -> None:
    path = _file(tmp_path / "render.mp4", os.urandom(3 << 20))  # more than one 1 MiB read
    st = path.stat()
    before = fingerprint(path)
    assert before.startswith("blake2b-128:") and len(before) == len("blake2b-128:") + 32
    data = bytearray(path.read_bytes())
    data[(3 << 20) - 1] ^= 1  # the very last byte, in the last read
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert fingerprint(path) != before
    # by stat alone the two are the same file; by content they are not
    old = Stamp(str(path), st.st_size, st.st_mtime_ns, before)
    new = Stamper().stamp(path)
    assert not old.same_file(new)
    assert Stamp(old.path, old.size, old.mtime_ns, None).same_file(new)


def test_a_rerun_stamps_from_the_journal_without_reading_media(tmp_path: Path) -> None:
    renders = [_file(tmp_path / f"00{i}.mp4", os.urandom(1000 + i)) for i in range(4)]
    stamper = Stamper()
    with Journal.open(tmp_path / "out") as journal:
        for render in renders:
            journal.append(_record(f"master:{render}", stamper, [render]))
    assert stamper.hashed == 4
    first = {s.path: s for r in journal.latest.values() for s in r.inputs}

    with Journal.open(tmp_path / "out") as journal:
        known = journal.known_stamps()
    assert len(known) == 4
    again = Stamper(known)
    for render in renders:
        assert again.stamp(render) == first[str(render.absolute())]
    assert again.hashed == 0

    # touched (a copy, a restore from backup): new time, same bytes -> hashed, same file
    touched, rewritten = renders[0], renders[1]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    stamp = again.stamp(touched)
    assert again.hashed == 1
    assert stamp.mtime_ns != first[str(touched)].mtime_ns
    assert stamp.same_file(first[str(touched)])
    # re-rendered: new bytes
    rewritten.write_bytes(os.urandom(1001))
    assert not again.stamp(rewritten).same_file(first[str(rewritten)])
    assert again.hashed == 2
    # stamped once per run: the second stamp of an unchanged file reads nothing
    again.stamp(rewritten)
    assert again.hashed == 2


def test_stamps_keep_the_path_as_given_and_missing_files_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _file(tmp_path / "real.mp4", b"x")
    (tmp_path / "link.mp4").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    stamp = Stamper().stamp(Path("link.mp4"), content=False)
    assert stamp.path == str(tmp_path / "link.mp4") and stamp.fingerprint is None
    with pytest.raises(FileNotFoundError):
        Stamper().stamp(Path("gone.mp4"))


def test_outputs_intact_notices_a_changed_or_missing_output(tmp_path: Path) -> None:
    out = _file(tmp_path / "001_a.mov", b"master")
    stamper = Stamper()
    record = _record("master:a", stamper, [], outputs=(stamper.stamp(out, content=False),))
    assert outputs_intact(record)
    out.write_bytes(b"master, edited")
    assert not outputs_intact(record)
    out.unlink()
    assert not outputs_intact(record)


def test_settings_digest_ignores_order_and_sees_values() -> None:
    a = settings_digest({"fps": "24", "codec": {"name": "prores", "profile": 3}})
    b = settings_digest({"codec": {"profile": 3, "name": "prores"}, "fps": "24"})
    assert a == b and a.startswith("sha256:") and len(a) == len("sha256:") + 16
    assert settings_digest({"fps": "24", "codec": {"name": "prores", "profile": 2}}) != a
    assert settings_digest({"fps": 24, "codec": {"name": "prores", "profile": 3}}) != a


def test_a_journal_of_3000_records_reads_back(tmp_path: Path) -> None:
    # Written as lines directly: 3000 fsyncs would only test the disk.
    stamps = [
        Stamp(
            f"/renders/{i:03}_take.mp4",
            10_000_000 + i,
            1_700_000_000_000_000_000 + i,
            f"blake2b-128:{i:032x}",
        )
        for i in range(500)
    ]
    steps = ["receive", "master", "review", "sync", "selects", "timeline"]
    with (tmp_path / JOURNAL_NAME).open("w", encoding="utf-8") as f:
        for stamp in stamps:
            for step in steps:
                record = Record(
                    f"{step}:{stamp.path}",
                    step,
                    "done",
                    "sha256:0123456789abcdef",
                    (stamp,),
                    (),
                    result={"frames": 48},
                    seconds=0.5,
                    at="2026-12-03T02:20:11Z",
                    run="20261203T022011Z-1",
                )
                f.write(json.dumps({"schema": SCHEMA, "record": record.to_json()}) + "\n")
    with Journal.open(tmp_path) as journal:
        assert len(journal.latest) == 3000 and journal.notes == []
        assert len(journal.known_stamps()) == 3000


_HOLD = """
import sys, time
from pathlib import Path
from handoff.deliver.journal import FolderLock
with FolderLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""

_TRY = """
import sys
from pathlib import Path
from handoff.deliver.journal import FolderLock
from handoff.errors import DeliveryBusyError
try:
    with FolderLock(Path(sys.argv[1])):
        print("taken")
except DeliveryBusyError as exc:
    print(exc)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_the_folder_lock_refuses_a_second_run_until_its_holder_dies(tmp_path: Path) -> None:
    delivery = tmp_path / "DELIVERY"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(delivery)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = _python(_TRY, str(delivery)).stdout.strip()
        assert refused.startswith(f"another 'handoff deliver' (pid {holder.pid} on ")
        assert refused.endswith(f"is writing into {delivery}: wait for it to finish, or stop it")
        # in this process too, and the lock file still names the holder
        with pytest.raises(DeliveryBusyError, match=rf"\(pid {holder.pid} on .*, since 20"):
            FolderLock(delivery).__enter__()
        assert (delivery / LOCK_NAME).read_text().startswith(f"{holder.pid} ")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    # the kernel dropped the dead holder's flock: no waiting, no stale lock to clear
    assert _python(_TRY, str(delivery)).stdout.strip() == "taken"
    with FolderLock(delivery):
        assert (delivery / LOCK_NAME).read_text().startswith(f"{os.getpid()} ")
        with pytest.raises(DeliveryBusyError):
            FolderLock(delivery).__enter__()  # a second lock in the same process
    assert (delivery / LOCK_NAME).exists()  # never deleted
    assert _python(_TRY, str(delivery)).stdout.strip() == "taken"


def test_delivery_busy_is_a_usage_error() -> None:
    assert issubclass(DeliveryBusyError, UsageError)
