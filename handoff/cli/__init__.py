"""The ``handoff`` command: thin over the library -- parse, call, render.

One module per command (``probe``, ``validate``, ``export``, ``prep_audio``, ``specs``,
``timeline``, ``sync``, ``deliver``, ``report``, ``demo``), each parsing its options,
calling the library and rendering the result; what they share (errors to one line,
notes, JSON) is in :mod:`handoff.cli.common`. This module holds the group and the console script.

Exit codes (stable, documented in docs/reference/cli.md):
  0  everything read and passed
  1  a file failed its spec / a job failed
  2  a file could not be read, or the command was used wrongly
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from typing import Any

import click

from handoff import __version__
from handoff.cli import (
    deliver,
    demo,
    export,
    prep_audio,
    probe,
    report,
    specs,
    sync,
    timeline,
    validate,
)
from handoff.cli.common import EXIT_ERROR, EXIT_FAIL, EXIT_OK, die, interrupted
from handoff.jobs.processes import raise_on_sigterm

__all__ = ["EXIT_ERROR", "EXIT_FAIL", "EXIT_OK", "entry", "main"]


_NO_ARGS_IS_HELP: type[click.UsageError] | None = getattr(
    click.exceptions, "NoArgsIsHelpError", None
)


class _Handoff(click.Group):
    """The command group, with errors of usage in one line like every other error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        for stream in (sys.stdout, sys.stderr):
            # File names that are not UTF-8 are printed as the bytes they are, not as a
            # UnicodeEncodeError.
            with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
                stream.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
                # `handoff` alone: click 8.2+ raises its help text as a usage error; it is
                # the help the user asked for, shown as help.
                click.echo(exc.format_message())
                sys.exit(EXIT_OK)
            if exc.ctx is not None:
                where = exc.ctx.command_path
            else:  # the option parser raises without a context: name the command given
                given = sys.argv[1:] if args is None else list(args)
                named = next((a for a in given if a in self.commands), None)
                where = "handoff" + (f" {named}" if named else "")
            # click lays some messages over several lines (a Choice's "Choose from:\n\t
            # otio,\n\t..."): one line here, like every other error.
            said = " ".join(exc.format_message().split()).rstrip(".")
            die(f"{said} (see '{where} --help')", exc.exit_code)
        except click.ClickException as exc:
            die(exc.format_message(), exc.exit_code)
        except click.Abort as exc:
            cause = exc.__context__
            interrupted(cause if isinstance(cause, KeyboardInterrupt) else KeyboardInterrupt())
        except KeyboardInterrupt as exc:
            interrupted(exc)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def entry() -> None:
    """The ``handoff`` console script: SIGTERM unwinds like Ctrl-C, so partial files are
    removed and child encoders stopped before the process exits."""
    raise_on_sigterm()
    main()


@click.group("handoff", cls=_Handoff, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="handoff")
def main() -> None:
    """Carry AI-generated video from the generator to the editor.

    \b
    handoff probe FILE...            what a file is: streams, rates, CFR/VFR, GOPs
    handoff validate PATH... --spec  check files against a delivery spec
    handoff export INPUT... --preset editor-ready ProRes/MOV or H.264/MP4, CFR, 48 kHz
    handoff prep-audio IN --out DIR  narration at -16 LUFS / -3 dBTP, cut into segments
    handoff timeline CLIPS --format  Premiere/Resolve timeline, master narration locked
    handoff sync TAKES --manifest    each take's sync; --selects picks the best
    handoff deliver RENDERS --out    the whole batch: masters, picks, timelines, report
    handoff report DELIVERY          the batch's HTML page again (thumbnails, plots)
    handoff specs                    list the built-in delivery specs
    handoff demo OUTDIR              make sample media and run everything on it

    Exit codes: 0 all good, 1 a file failed its spec, 2 a file could not be read
    or the command was used wrongly.
    """


# In the order the group's help lists them.
for _command in (
    probe.probe_cmd,
    validate.validate_cmd,
    export.export_cmd,
    prep_audio.prep_audio_cmd,
    specs.specs_cmd,
    timeline.timeline_cmd,
    sync.sync_cmd,
    deliver.deliver_cmd,
    report.report_cmd,
    demo.demo_cmd,
):
    main.add_command(_command)
