"""``manage.py authgate ...``: the ``authgate`` CLI on the project's own gate (its
settings, store, role policy and audit log)::

    python manage.py authgate users create alice --role operator
    python manage.py authgate sessions list alice
"""

from __future__ import annotations

import argparse
import sys
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import click
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from authgate.cli import CliState, bound_group
from authgate.errors import AuthGateError
from authgate.integrations.django import get_gate

#: Django's own options, which it has applied before the command runs.
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


class Command(BaseCommand):
    """Runs the authgate CLI's commands against ``get_gate()``."""

    help = "authgate: users, roles, groups, API keys and sessions of this project's store"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, help="an authgate command")

    def run_from_argv(self, argv: list[str]) -> None:
        # click parses the rest (and answers --help itself): argparse would take the
        # subcommands' options for its own.
        try:
            self._run(_without_django_options(argv[2:]), f"{argv[0]} {argv[1]}")
        except CommandError as err:
            self.stderr.write(f"Error: {err}")
            sys.exit(err.returncode)

    def handle(self, *args: Any, **options: Any) -> None:
        # call_command(..., stdout=...) captures what click writes
        with redirect_stdout(self.stdout), redirect_stderr(self.stderr):  # type: ignore[type-var]
            self._run(list(args), "manage.py authgate")

    def _run(self, args: list[str], prog_name: str) -> None:
        group = bound_group(_state)
        try:
            code = group.main(args=args, prog_name=prog_name, standalone_mode=False)
        except click.ClickException as err:
            raise CommandError(err.format_message(), returncode=err.exit_code) from None
        except click.exceptions.Abort:
            raise CommandError("aborted") from None
        if isinstance(code, int) and code:
            raise CommandError(f"exit status {code}", returncode=code)


def _state() -> CliState:
    try:
        return CliState(gate=get_gate())
    except (AuthGateError, ImproperlyConfigured) as err:
        raise click.ClickException(str(err)) from None


def _without_django_options(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True  # and its value
        elif not arg.startswith(tuple(f"{option}=" for option in _DJANGO_OPTIONS)):
            kept.append(arg)
    return kept
