"""Spec files: parsing, clear errors, options, exact rate comparison."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from handoff.errors import SpecError
from handoff.validate.spec import FACTS, builtin_spec_names, load_spec, parse_spec


def test_builtins_load_and_only_name_known_facts() -> None:
    names = builtin_spec_names()
    assert {"prores-master", "h264-review", "ltx2-audio"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.name == name
        assert spec.rules
        assert all(r.fact in FACTS for r in spec.rules)


def test_frame_rates_are_exact_fractions() -> None:
    spec = load_spec("h264-review")
    strict = {r.id: r for r in spec.active_rules({"allow_ntsc": False})}
    assert strict["frame-rate-24-30"].value == (Fraction(24), Fraction(30))
    assert "frame-rate" not in strict
    default = {r.id: r for r in spec.active_rules(spec.resolve_options({}))}
    assert Fraction(24000, 1001) in default["frame-rate"].value  # type: ignore[operator]
    assert "frame-rate-24-30" not in default


def test_user_spec_file(tmp_path: Path) -> None:
    p = tmp_path / "mine.toml"
    p.write_text(
        'name = "mine"\n[[rules]]\nid = "rate"\n'
        'fact = "audio.sample_rate"\nop = "eq"\nvalue = 44100\n'
    )
    spec = load_spec(p)
    assert spec.name == "mine" and spec.rules[0].value == 44100


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name = 'x'", "no [[rules]]"),
        ("[[rules]]\nid='a'\nfact='container'\nop='eq'\nvalue='mp4'", "missing top-level 'name'"),
        ("name='x'\n[[rules]]\nid='a'\nfact='video.fpz'\nop='eq'\nvalue='24'", "unknown fact"),
        ("name='x'\n[[rules]]\nid='a'\nfact='container'\nop='approx'\nvalue='x'", "unknown op"),
        ("name='x'\n[[rules]]\nid='a'\nfact='video.fps'\nop='eq'\nvalue='24/x'", "not a fraction"),
        ("name='x'\n[[rules]]\nid='a'\nfact='container'\nop='le'\nvalue='x'", "numeric fact"),
        ("name='x'\n[[rules]]\nid='a'\nfact='container'\nop='eq'", "missing 'value'"),
        (
            "name='x'\n[[rules]]\nid='a'\nfact='container'\nop='eq'\nvalue='a'\nwhen='nope'",
            "names no option",
        ),
        (
            "name='x'\n[[rules]]\nid='a'\nfact='container'\nop='eq'\nvalue='a'\nseverity='fatal'",
            "severity",
        ),
        (
            "name='x'\n[[rules]]\nid='a'\nfact='container'\nop='eq'\nvalue='a'\ncolour=1",
            "unknown key",
        ),
        (
            "name='x'\n[[rules]]\nid='a'\nfact='container'\nop='eq'\nvalue='a'\n[[rules]]\nid='a'\nfact='container'\nop='eq'\nvalue='b'",
            "duplicate",
        ),
        ("name = [", "not valid TOML"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(text, "test.toml")


def test_unknown_spec_name_lists_the_builtins() -> None:
    with pytest.raises(SpecError, match="h264-review"):
        load_spec("h264-reveiw")


def test_unknown_option_is_refused() -> None:
    with pytest.raises(SpecError, match="no option"):
        load_spec("h264-review").resolve_options({"allow_pal": True})


def test_extends_replaces_rules_by_id_and_merges_export(tmp_path: Path) -> None:
    p = tmp_path / "pal.toml"
    p.write_text(
        'extends = "h264-review"\nname = "pal-review"\n'
        '[[rules]]\nid = "frame-rate"\nfact = "video.fps"\nop = "in"\nvalue = ["25"]\n'
        '[export.video_options]\ncrf = "23"\n'
    )
    spec = load_spec(p)
    base = load_spec("h264-review")
    rules = {r.id: r for r in spec.rules}
    assert rules["frame-rate"].value == (Fraction(25),)
    assert rules["frame-rate"].when is None
    assert len(spec.rules) == len(base.rules)
    assert spec.export["video_options"]["crf"] == "23"
    assert spec.export["video_options"]["preset"] == base.export["video_options"]["preset"]


def test_prores_family_differs_only_in_profile() -> None:
    master = load_spec("prores-master")
    for name, profile in (
        ("prores-proxy", "Proxy"),
        ("prores-lt", "LT"),
        ("prores-422", "Standard"),
    ):
        spec = load_spec(name)
        assert {r.id: r.value for r in spec.rules}["prores-profile"] == profile
        assert [r.id for r in spec.rules] == [r.id for r in master.rules]


def test_extends_must_name_a_builtin() -> None:
    with pytest.raises(SpecError, match="extends"):
        parse_spec('extends = "nope"\nname = "x"', "x.toml")
