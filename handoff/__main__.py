"""``python -m handoff``: the same as the ``handoff`` command."""

from handoff.cli import entry

entry()
