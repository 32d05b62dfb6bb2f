"""The delivery planner decides from stamps and the journal alone: which step runs, which
is kept, which is blocked, and why -- checked on real files and real journal records,
without running a step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from handoff.deliver.journal import Record, Stamp, Stamper, settings_digest
from handoff.deliver.plan import DeliverOptions, DeliveryPlan, StepPlan, plan_delivery


def _render(folder: Path, name: str, content: bytes = b"render bytes") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path.absolute()


def _plan(
    renders: list[Path], options: DeliverOptions, latest: dict[str, Record] | None = None
) -> DeliveryPlan:
    stamper = Stamper()
    return plan_delivery([(r, stamper.stamp(r)) for r in renders], options, latest or {})


def _finished(plan: DeliveryPlan, out: Path) -> dict[str, Record]:
    """What the journal holds after every step of the plan ran and made its file."""
    latest = {}
    for rp in plan.renders:
        assert rp.stamp is not None
        for sp in rp.steps:
            outputs: tuple[Stamp, ...] = ()
            if sp.step.dest is not None:
                sp.step.dest.parent.mkdir(parents=True, exist_ok=True)
                sp.step.dest.write_bytes(b"made from " + rp.render.name.encode())
                st = sp.step.dest.stat()
                outputs = (Stamp(str(sp.step.dest), st.st_size, st.st_mtime_ns, None),)
            latest[sp.step.key] = Record(sp.step.key, sp.step.kind, "done",
                                         settings_digest(sp.step.settings), (rp.stamp,),
                                         outputs)  # fmt: skip
    return latest


def _actions(plan: DeliveryPlan) -> dict[tuple[str, str], tuple[str, str]]:
    return {(Path(sp.step.render).name, sp.step.kind): (sp.action, sp.reason) for sp in plan.steps}


def _step(plan: DeliveryPlan, name: str, kind: str) -> StepPlan:
    return next(s for s in plan.steps if s.step.render.name == name and s.step.kind == kind)


@pytest.fixture
def batch(tmp_path: Path) -> tuple[list[Path], DeliverOptions]:
    renders = [_render(tmp_path / "renders", f"00{i}_take1.mp4", b"take %d" % i) for i in (1, 2)]
    return renders, DeliverOptions(out=tmp_path / "delivery", review="h264-review")


def test_a_new_batch_runs_every_step_in_dependency_order(
    batch: tuple[list[Path], DeliverOptions],
) -> None:
    renders, options = batch
    plan = _plan(renders, options)
    assert [(sp.step.kind, sp.action, sp.reason) for sp in plan.renders[0].steps] == [
        ("receive", "run", "new"),
        ("master", "run", "new"),
        ("review", "run", "new"),
    ]
    master = _step(plan, "001_take1.mp4", "master")
    assert master.step.needs == f"receive:{renders[0]}"
    assert master.step.dest == options.out / "masters" / "001_take1.mov"
    assert (
        _step(plan, "001_take1.mp4", "review").step.dest == options.out / "review" / "001_take1.mp4"
    )
    assert plan.to_json()["summary"] == {"renders": 2, "run": 6, "keep": 0, "blocked": 0}


def test_a_finished_batch_is_kept_without_reading_a_render(
    batch: tuple[list[Path], DeliverOptions],
) -> None:
    renders, options = batch
    latest = _finished(_plan(renders, options), options.out)
    stamper = Stamper([s for r in latest.values() for s in r.inputs])
    plan = plan_delivery([(r, stamper.stamp(r)) for r in renders], options, latest)
    assert {a for a, _ in _actions(plan).values()} == {"keep"}
    assert stamper.hashed == 0


def test_a_re_rendered_take_runs_again_and_only_it(
    batch: tuple[list[Path], DeliverOptions],
) -> None:
    renders, options = batch
    latest = _finished(_plan(renders, options), options.out)
    renders[1].write_bytes(b"take 2, rendered again")
    actions = _actions(_plan(renders, options, latest))
    assert actions[("002_take1.mp4", "receive")] == ("run", "its input changed")
    assert actions[("002_take1.mp4", "master")] == ("run", "its input changed")
    assert {actions[("001_take1.mp4", k)][0] for k in ("receive", "master", "review")} == {"keep"}


def test_a_touched_but_unchanged_render_is_kept(batch: tuple[list[Path], DeliverOptions]) -> None:
    renders, options = batch
    latest = _finished(_plan(renders, options), options.out)
    st = renders[0].stat()
    os.utime(renders[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    plan = _plan(renders, options, latest)
    assert {sp.action for sp in plan.steps} == {"keep"}


def test_changed_settings_a_failure_and_a_missing_output_run_again(
    batch: tuple[list[Path], DeliverOptions],
) -> None:
    renders, options = batch
    latest = _finished(_plan(renders, options), options.out)
    # Another review preset: the review steps run, the masters are kept.
    other = DeliverOptions(out=options.out, review="prores-proxy")
    actions = _actions(_plan(renders, other, latest))
    assert actions[("001_take1.mp4", "review")] == ("run", "the settings changed")
    assert actions[("001_take1.mp4", "master")][0] == "keep"
    # A step that failed runs again; one whose output was deleted too.
    key = f"master:{renders[0]}"
    latest[key] = Record(key, "master", "failed", latest[key].settings, latest[key].inputs, (),
                         reason="disk full")  # fmt: skip
    (options.out / "masters" / "002_take1.mov").unlink()
    actions = _actions(_plan(renders, options, latest))
    assert actions[("001_take1.mp4", "master")] == ("run", "it failed last time (disk full)")
    assert actions[("002_take1.mp4", "master")] == (
        "run",
        "an output it made is missing or was changed",
    )
    assert {a for a, _ in _actions(_plan(renders, DeliverOptions(out=options.out,
            review="h264-review", force=True), latest)).values()} == {"run"}  # fmt: skip


def test_an_unreadable_render_is_kept_as_an_error_and_blocks_its_exports(
    batch: tuple[list[Path], DeliverOptions],
) -> None:
    renders, options = batch
    plan = _plan(renders, options)
    latest = _finished(plan, options.out)
    key = f"receive:{renders[0]}"
    latest[key] = Record(key, "receive", "error", latest[key].settings, latest[key].inputs, (),
                         reason="not a media file FFmpeg can read")  # fmt: skip
    actions = _actions(_plan(renders, options, latest))
    assert actions[("001_take1.mp4", "receive")] == (
        "keep",
        "kept: the input could not be used (not a media file FFmpeg can read)",
    )
    assert actions[("001_take1.mp4", "master")] == (
        "blocked",
        "receive could not use the render: not a media file FFmpeg can read",
    )
    # A new render in its place is tried again.
    renders[0].write_bytes(b"a good render now")
    assert _actions(_plan(renders, options, latest))[("001_take1.mp4", "master")][0] == "run"


def test_two_renders_with_one_output_name_and_an_output_over_an_input(tmp_path: Path) -> None:
    a = _render(tmp_path / "a", "001_take1.mp4")
    b = _render(tmp_path / "b", "001_take1.mp4", b"other")
    options = DeliverOptions(out=tmp_path / "delivery")
    plan = _plan([a, b], options)
    assert plan.renders[0].problem is None
    assert plan.renders[1].problem == (
        f"same output name as {a} (001_take1.mov): rename one of them"
    )
    # A render already in the masters folder, delivered into that folder's parent.
    inside = _render(tmp_path / "delivery" / "masters", "003_take1.mov")
    plan = _plan([inside], options)
    assert plan.renders[0].problem is not None
    assert "would write over the input" in plan.renders[0].problem


def test_sync_runs_again_when_its_master_or_its_narration_changes(tmp_path: Path) -> None:
    import numpy as np

    from handoff.files.manifest import load_manifest
    from handoff.media.synth import babble, write_wav
    from handoff.prep import PrepOptions, prep_audio

    voice = babble(12.0, 48000, level=0.05, seed=5).astype(np.float32)
    source = write_wav(tmp_path / "narration.wav", np.stack([voice, voice]), 48000)
    manifest = load_manifest(
        prep_audio(source, tmp_path / "cond", PrepOptions(name="n")).manifest_path
    )
    reference = manifest.path.parent / manifest.segments[0].file
    render = _render(tmp_path / "renders", "001_take1.mp4")
    options = DeliverOptions(out=tmp_path / "delivery")
    stamper = Stamper()

    def plan(latest: dict[str, Record]) -> DeliveryPlan:
        references = {reference: stamper.stamp(reference)}
        stamped = [(render, stamper.stamp(render))]
        return plan_delivery(stamped, options, latest, manifest=manifest, references=references)

    first = plan({})
    sync = _step(first, "001_take1.mp4", "sync")
    assert (sync.action, sync.step.needs) == ("run", f"master:{render}")
    assert sync.step.sync is not None and sync.step.sync.reference == reference
    assert sync.step.sync.take == options.out / "masters" / "001_take1.mov"
    latest = _finished(first, options.out)
    made = latest[f"master:{render}"].outputs
    digest = settings_digest(sync.step.settings)
    inputs = (*made, stamper.stamp(reference))
    latest[sync.step.key] = Record(sync.step.key, "sync", "done", digest, inputs, ())
    assert {sp.action for sp in plan(latest).steps} == {"keep"}
    # The narration conditioned again: only sync runs.
    reference.write_bytes(reference.read_bytes()[:-2] + b"\x01\x02")
    assert [(sp.step.kind, sp.action) for sp in plan(latest).steps] == [
        ("receive", "keep"), ("master", "keep"), ("sync", "run"),
    ]  # fmt: skip
    # The master exported again (its step runs): sync runs after it.
    (options.out / "masters" / "001_take1.mov").write_bytes(b"changed by hand")
    again = plan(latest)
    assert _step(again, "001_take1.mp4", "master").action == "run"
    assert _step(again, "001_take1.mp4", "sync").reason == "master runs again"
