"""``python -m authgate``: the same as the ``authgate`` command."""

from .cli import main

main(prog_name="authgate")
