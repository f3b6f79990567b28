"""The tables of bad input that walk every door of the three command lines.

``tests/core/test_cli_doors.py`` (``thorn``), ``tests/flask/test_cli_doors.py``
(``flask thorn``) and ``tests/django/test_command_doors.py`` (``manage.py thorn_*``) each
hold a table ``{command: [Bad(...), ...]}`` and check it against the commands they find.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import click


class Bad(NamedTuple):
    """One bad invocation: the parameter it is about, the arguments, the exit code and the
    words the error line must hold."""

    param: str
    args: tuple[str, ...]
    exit_code: int
    words: tuple[str, ...]


def cases(table: Mapping[str, Sequence[Bad]]) -> list[tuple[str, Bad]]:
    """The table's cases as ``(command, case)`` pairs, for ``parametrize``."""
    return [(command, case) for command, bad in table.items() for case in bad]


def case_ids(table: Mapping[str, Sequence[Bad]]) -> list[str]:
    """Readable test ids for :func:`cases`: command, parameter, end of the arguments."""
    return [f"{command}-{case.param}-{' '.join(case.args)[-20:]}" for command, case in cases(table)]


def valued_params(command: click.Command) -> set[str]:
    """The parameters of a click command that take a value (flags take none)."""
    return {
        param.name
        for param in command.params
        if param.name is not None and not (isinstance(param, click.Option) and param.is_flag)
    }
