"""The report page: one self-contained HTML file built with lxml (which escapes every
name and message for us), CSS inline, images as data: URIs, no script, no URL outside
the delivery folder.

The markup is a contract the browser tests read (docs/reference/cli.md, report): the
``#summary`` section and its ``data-*`` counts, ``ul#next-steps``, one
``section.segment`` per segment (the renders with none last, ``data-segment=""``), one
``article.take`` per render, the pick first, its verdicts in words (``PICK``, ``OUT OF
SYNC``, ``FAILS <spec>`` with ``ul.failed-rules``), ``img.thumb`` x3, ``img.waveform``,
``img.sync-plot``, ``p.problem`` for a take that could not be read, ``a.file`` links
relative to the page, ``details.probe`` tables.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lxml import etree
from lxml.html.builder import E

from handoff.files.names import shown_lines
from handoff.report.assets import TakeAssets
from handoff.report.model import BatchReport, FileFacts, SegmentView, TakeView
from handoff.sync.align import DRIFT_MIN_TAKE_S
from handoff.timeline.paths import relative_url

__all__ = ["CSS", "render_page"]

CSS = """
:root{--ok:#1d6b2c;--ok-bg:#e3f3e5;--bad:#a61b1b;--bad-bg:#fbe4e4;--muted:#555;
--line:#d0d0d0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111}
body{margin:0 auto;padding:1rem;max-width:1600px}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.25rem;margin:1.6rem 0 .5rem}
h3{font-size:1rem;margin:.2rem 0;overflow-wrap:anywhere}
.meta{color:var(--muted);margin:.2rem 0 1rem;overflow-wrap:anywhere}
#summary{border:1px solid var(--line);border-radius:6px;padding:.6rem 1rem}
#summary p{margin:.3rem 0}
.takes{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr))}
.take{border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem;min-width:0}
.take.pick{border:3px solid var(--ok)}
.take.not-delivered{border:2px dashed var(--bad)}
.badge{display:inline-block;font-weight:700;font-size:.8rem;letter-spacing:.03em;
padding:.05rem .4rem;border-radius:3px;margin-right:.3rem;border:1px solid currentColor}
.ok{color:var(--ok);background:var(--ok-bg)}.bad{color:var(--bad);background:var(--bad-bg)}
.neutral{color:var(--muted);background:#f2f2f2}
.verdicts{margin:.3rem 0}
.failed-rules{color:var(--bad);margin:.2rem 0 .4rem;padding-left:1.2rem}
.problem{color:var(--bad);font-weight:600;overflow-wrap:anywhere}
.thumbs{display:grid;grid-template-columns:repeat(3,1fr);gap:4px;margin:.4rem 0}
img{max-width:100%;height:auto;display:block}
.thumbs figure,.plot{margin:0}.thumbs figcaption{font-size:.75rem;color:var(--muted)}
.plot{margin:.3rem 0}.plot figcaption{font-size:.8rem;color:var(--muted)}
.figures{font-size:.9rem;margin:.3rem 0}
.links a{margin-right:.8rem;overflow-wrap:anywhere}
details{margin:.3rem 0;font-size:.9rem}summary{cursor:pointer}
table{border-collapse:collapse;margin:.3rem 0}
th,td{text-align:left;padding:.1rem .5rem .1rem 0;vertical-align:top;overflow-wrap:anywhere}
th{font-weight:600;color:var(--muted)}
@media (max-width:600px){body{padding:.5rem}.thumbs{grid-template-columns:repeat(3,1fr)}}
"""


def render_page(report: BatchReport, assets: Mapping[str, TakeAssets], out: Path) -> bytes:
    """The page for ``report``, its links relative to ``out``'s folder, as UTF-8 bytes.

    ``assets`` maps a take's key (:func:`take_key`) to what was read of its media; a take
    without an entry is shown without pictures.
    """
    base = out.parent
    title = f"Delivery report: {_t(report.folder.name or str(report.folder))}"
    body: list[Any] = [
        E.h1(title),
        E.p({"class": "meta"}, *_meta(report)),
        _summary(report),
    ]
    for segment in report.segments:
        body.append(_segment(segment, assets, base))
    page = E.html(
        {"lang": "en"},
        E.head(
            E.meta(charset="utf-8"),
            E.meta(name="viewport", content="width=device-width, initial-scale=1"),
            E.title(title),
            E.style(CSS),
        ),
        E.body(*body),
    )
    html: bytes = etree.tostring(page, method="html", encoding="utf-8", doctype="<!DOCTYPE html>")
    return html + b"\n"


def take_key(take: TakeView) -> str:
    return str(take.render)


def _t(text: str) -> str:
    """Text safe in XML: no control character, no lone surrogate (a non-UTF-8 byte)."""
    return shown_lines(text)


def _meta(report: BatchReport) -> list[str]:
    parts = [f"folder {_t(str(report.folder))}"]
    if report.preset:
        parts.append(f"masters: {_t(report.preset)}")
    if report.review:
        parts.append(f"review copies: {_t(report.review)}")
    parts.append(
        "manifest: none" if report.manifest is None else f"manifest: {_t(str(report.manifest))}"
    )
    return ["; ".join(parts)]


def _summary(report: BatchReport) -> Any:
    n_takes = len(report.takes)
    counts = {
        "data-segments": report.segment_count,
        "data-takes": n_takes,
        "data-picks": report.picks,
        "data-passes": report.passes,
        "data-failures": report.failures,
    }
    words = (
        f"{report.segment_count} segment(s), {n_takes} take(s): {report.picks} pick(s), "
        f"{report.passes} pass(es), {report.failures} failure(s) (not delivered)"
        + (f", {report.out_of_sync} out of sync" if report.out_of_sync else "")
        + "."
    )
    children: list[Any] = [E.h2("Summary"), E.p({"class": "counts"}, words)]
    regenerate = bool(report.to_regenerate)
    children.append(E.h3("Next steps"))
    children.append(
        E.ul(
            {"id": "next-steps"},
            *(E.li({"class": "bad" if regenerate else "ok"}, _t(s)) for s in report.next_steps()),
        )
    )
    failed = [t for t in report.takes if not t.delivered]
    if failed:
        children.append(E.h3("Not delivered"))
        children.append(
            E.ul(
                {"id": "failures"},
                *(
                    E.li(E.strong(_t(t.name)), f": {_t(t.problem or 'not delivered')}")
                    for t in failed
                ),
            )
        )
    return E.section({"id": "summary", **{k: str(v) for k, v in counts.items()}}, *children)


def _segment(segment: SegmentView, assets: Mapping[str, TakeAssets], base: Path) -> Any:
    heading: list[Any] = [segment.label.capitalize()]
    if segment.segment is None:
        heading = ["Renders with no segment"]
    elif segment.regenerate:
        at = "" if segment.recut_at_s is None else f" from {segment.recut_at_s:.2f} s"
        heading += [" ", _badge(f"REGENERATE{at}", "bad")]
    elif segment.pick is not None:
        heading += [" ", _badge(f"picked: {_t(segment.pick.name)}", "ok")]
    data = "" if segment.segment is None else str(segment.segment)
    return E.section(
        {"class": "segment", "data-segment": data},
        E.h2(*heading),
        E.div(
            {"class": "takes"}, *(_take(t, assets.get(take_key(t)), base) for t in segment.takes)
        ),
    )


def _badge(text: str, kind: str) -> Any:
    return E.span({"class": f"badge {kind}"}, text)


def _take(take: TakeView, found: TakeAssets | None, base: Path) -> Any:
    classes = ["take"]
    if take.picked:
        classes.append("pick")
    if not take.delivered:
        classes.append("not-delivered")
    children: list[Any] = []
    title: list[Any] = []
    if take.picked:
        title += [_badge("PICK", "ok"), " "]
    title.append(_t(take.name))
    children.append(E.h3(*title))

    verdicts: list[Any] = []
    detail = take.sync_detail
    if take.sync == "in":
        verdicts.append(_badge("IN SYNC", "ok"))
    elif take.sync == "out":
        verdicts.append(_badge("OUT OF SYNC", "bad"))
    else:
        verdicts.append(_badge("SYNC NOT MEASURED", "neutral"))
    spec = _t(take.spec_name or "its spec")
    if take.spec == "pass":
        verdicts.append(_badge(f"PASSES {spec}", "ok"))
    elif take.spec == "fail":
        verdicts.append(_badge(f"FAILS {spec}", "bad"))
    elif take.spec == "error":
        verdicts.append(_badge(f"NOT CHECKED against {spec}", "bad"))
    if detail is not None and detail.score is not None:
        verdicts.append(f"score {detail.score:.1f}")
    spaced: list[Any] = []
    for v in verdicts:  # words apart in the text a screen reader or a search reads too
        spaced += [v, " "] if v is not verdicts[-1] else [v]
    children.append(E.p({"class": "verdicts"}, *spaced))
    if take.spec == "fail":
        rules = take.failed_rules or ("(the validation named no rule)",)
        children.append(E.ul({"class": "failed-rules"}, *(E.li(_t(r)) for r in rules)))

    problem = take.problem or (found.problem if found is not None else None)
    if problem is not None:
        children.append(E.p({"class": "problem"}, _t(problem)))
    elif found is not None:
        children += _pictures(take, found)
    if detail is not None:
        children.append(E.p({"class": "sync-words"}, _t(_sync_words(take))))
    children.append(_links(take, base))
    if take.made:
        children.append(
            E.div(
                {"class": "made"},
                E.p("How the master was made:"),
                E.ul(*(E.li(_t(line)) for line in take.made)),
            )
        )
    if take.received == "fail" and take.received_rules:
        children.append(
            E.details(
                {"class": "received"},
                E.summary(
                    f"As received: needed the export ({len(take.received_rules)} rule(s) "
                    f"of {spec} not met)"
                ),
                E.ul(*(E.li(_t(r)) for r in take.received_rules)),
            )
        )
    facts: list[FileFacts] = []
    if found is not None and found.facts is not None:
        facts.append(found.facts)
    facts += take.facts
    for f in facts:
        children.append(_facts(f))
    return E.article(
        {
            "class": " ".join(classes),
            "data-take": _t(take.name),
            "data-pick": "true" if take.picked else "false",
            "data-sync": take.sync,
            "data-spec": take.spec,
        },
        *children,
    )


def _pictures(take: TakeView, found: TakeAssets) -> list[Any]:
    out: list[Any] = []
    if found.thumbnails:
        figures = []
        for label, thumb in zip(("first", "middle", "last"), found.thumbnails, strict=False):
            figures.append(
                E.figure(
                    _img(
                        "thumb",
                        "image/jpeg",
                        thumb.jpeg,
                        f"{label} frame of {_t(take.name)} at {thumb.at_s:.2f} s",
                        thumb.width,
                        thumb.height,
                    ),
                    E.figcaption(f"{label} ({thumb.at_s:.2f} s)"),
                )
            )
        out.append(E.div({"class": "thumbs"}, *figures))
    if found.waveform_png is not None:
        out.append(
            E.figure(
                {"class": "plot"},
                _img(
                    "waveform",
                    "image/png",
                    found.waveform_png,
                    f"waveform of the sound of {_t(take.name)} (above) over its segment's "
                    "narration (below)",
                ),
            )
        )
    if found.sync_png is not None:
        out.append(
            E.figure(
                {"class": "plot"},
                _img(
                    "sync-plot",
                    "image/png",
                    found.sync_png,
                    f"picture sync error of {_t(take.name)} over time against the tolerance "
                    "band" + _marked(take),
                ),
            )
        )
    levels = []
    if found.loudness_lufs is not None:
        levels.append(f"loudness {found.loudness_lufs:.1f} LUFS")
    if found.true_peak_dbtp is not None:
        levels.append(f"true peak {found.true_peak_dbtp:.1f} dBTP")
    if found.sound is not None:
        levels.append(f"sound not measured: {_t(found.sound)}")
    elif not levels:
        levels.append("sound is silent")
    out.append(E.p({"class": "figures"}, "; ".join(levels)))
    return out


def _marked(take: TakeView) -> str:
    d = take.sync_detail
    if d is None:
        return ""
    said = ""
    if d.exceeds_at_s is not None:
        said += f"; out of tolerance from {d.exceeds_at_s:.2f} s, marked"
    if d.recut_at_s is not None:
        said += f"; re-cut point {d.recut_at_s:.2f} s marked"
    return said


def _drift_unmeasured(duration_s: float | None) -> str:
    if duration_s is not None and duration_s < DRIFT_MIN_TAKE_S:
        return f"drift not measured (take shorter than {DRIFT_MIN_TAKE_S:g} s)"
    return "drift not measured"


def _sync_words(take: TakeView) -> str:
    d = take.sync_detail
    assert d is not None
    parts = []
    if d.picture_offset_ms is not None:
        late = "late" if d.picture_offset_ms >= 0 else "early"
        parts.append(f"picture {abs(d.picture_offset_ms):.1f} ms {late}")
    if d.drift_ms_per_min is not None:
        parts.append(f"drifting {d.drift_ms_per_min:+.1f} ms a minute")
    elif d.picture_offset_ms is not None and not d.series:
        parts.append(_drift_unmeasured(d.duration_s))
    if d.tolerance_ms is not None:
        parts.append(f"tolerance ±{d.tolerance_ms:.1f} ms")
    # The sync measurement's own notes say where a take leaves the band and what to
    # regenerate; the figures are added only when no note says it already.
    said = any(note.startswith("out of tolerance") for note in d.notes)
    if d.exceeds_at_s is not None and not said:
        parts.append(f"out of tolerance from {d.exceeds_at_s:.2f} s")
    if d.recut_at_s is not None and not said:
        parts.append(f"usable up to {d.recut_at_s:.2f} s (re-cut there)")
    text = "Sync: " + ", ".join(parts) if parts else "Sync: not measured"
    return " ".join([text + ".", *(_sentence(note) for note in d.notes)])


def _sentence(note: str) -> str:
    note = note.strip()
    if not note:
        return ""
    return note[0].upper() + note[1:] + ("" if note.endswith((".", "!", "?")) else ".")


def _img(
    kind: str,
    mime: str,
    data: bytes,
    alt: str,
    width: int | None = None,
    height: int | None = None,
) -> Any:
    attrs = {
        "class": kind,
        "alt": alt,
        "src": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}",
        "loading": "lazy",
        "decoding": "async",
    }
    if width is not None and height is not None:
        attrs |= {"width": str(width), "height": str(height)}
    return E.img(attrs)


def _links(take: TakeView, base: Path) -> Any:
    links: list[Any] = []
    for label, path in (
        ("master", take.master),
        ("review copy", take.review),
        ("render", take.render),
    ):
        if path is None:
            continue
        if links:
            links.append(" ")
        # Relative to the page's folder and percent-encoded, so a name with #, ?, % or a
        # space still names the file.
        link = E.a({"class": "file", "href": relative_url(path, base)}, f"{label}: {_t(path.name)}")
        links.append(link)
    return E.p({"class": "links"}, *links)


def _facts(facts: FileFacts) -> Any:
    label = "master" if facts.role == "master" else "render as received"
    rows = [E.tr(E.th(_t(k)), E.td(_t(v))) for k, v in facts.rows]
    return E.details(
        {"class": "probe"},
        E.summary(f"File facts: {label} ({_t(facts.path.name)})"),
        E.table(*rows),
    )
