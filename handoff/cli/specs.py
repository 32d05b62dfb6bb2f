"""``handoff specs``: the built-in delivery specs, or one of them as TOML."""

from __future__ import annotations

import click

from handoff.cli.common import errors
from handoff.validate.spec import builtin_spec_names, builtin_spec_text, load_spec


@click.command("specs")
@click.argument("name", required=False)
def specs_cmd(name: str | None) -> None:
    """List the built-in delivery specs, or print one (NAME) as TOML to copy and edit."""
    with errors():
        if name:
            spec = load_spec(name)
            if name in builtin_spec_names():
                click.echo(builtin_spec_text(name), nl=False)
            else:
                click.echo(f"{spec.name}: {spec.description}")
            return
        for n in builtin_spec_names():
            spec = load_spec(n)
            click.echo(f"{n:15s} {spec.description}")
            for o in spec.options:
                click.echo(
                    f"{'':15s}   option {o.name} (default {str(o.default).lower()}): {o.help}"
                )
