"""``handoff demo``: sample media made with PyAV, and every command run on it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from handoff.cli.common import EXIT_FAIL, EXIT_OK, errors


@click.command("demo")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
def demo_cmd(outdir: Path) -> None:
    """Make small sample media in OUTDIR and run every capability on it.

    Nothing is downloaded: the clips and the narration are synthesised with PyAV.
    Prints what it made and what each step found; exits non-zero if a step did not
    give the verdict it should. Run again into the same OUTDIR, it makes its media
    anew and replaces its own earlier outputs (partial files a killed run left there
    are removed first).
    """
    from handoff.demo import run_demo

    with errors():
        ok = run_demo(outdir, echo=click.echo)
    sys.exit(EXIT_OK if ok else EXIT_FAIL)
