"""``manage.py authgate ...``: the ``authgate`` CLI on the project's own gate (its
settings, store, role policy and audit log)::

    python manage.py authgate users create alice --role operator
    python manage.py authgate sessions list alice
"""

from __future__ import annotations

import argparse
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError, CommandParser

from authgate.cli import CliState, bound_group
from authgate.integrations.django import get_gate


class Command(BaseCommand):
    """Runs the authgate CLI's commands against ``get_gate()``."""

    help = "authgate: users, roles, groups, API keys and sessions of this project's store"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, help="an authgate command")

    def run_from_argv(self, argv: list[str]) -> None:
        # click parses the rest (and answers --help itself): argparse would take
        # the subcommands' options for its own.
        self._run(argv[2:], f"{argv[0]} {argv[1]}")

    def handle(self, *args: Any, **options: Any) -> None:
        self._run(list(args), "manage.py authgate")

    def _run(self, args: list[str], prog_name: str) -> None:
        group = bound_group(lambda: CliState(gate=get_gate()))
        try:
            group.main(args=args, prog_name=prog_name, standalone_mode=False)
        except click.exceptions.Exit as done:
            if done.exit_code:
                raise CommandError(f"exit status {done.exit_code}") from None
        except click.ClickException as err:
            raise CommandError(err.format_message()) from err
        except click.exceptions.Abort:
            raise CommandError("aborted") from None
