"""The code blocks of documentation pages, and a page's example project run as a reader would.

Blocks are marked ``<!-- not-runnable: reason -->`` or ``<!-- pytest-file: NAME -->`` (see
``tests/core/test_docs.py``), or as parts of the page's example project.

A page marks what belongs to its project with a comment on the line before a fenced block:

- ``<!-- project-file: PATH -->``: the block is the file PATH of the project (it replaces a
  file an earlier command made); ``<!-- project-file: PATH, appended -->`` adds the block
  to the end of PATH (a settings module that ``startproject`` wrote).
- ``<!-- project-run: FLOW -->``: a console block whose ``$`` lines are commands of the flow
  FLOW, run in the project's folder; the other lines show their output and are not read.
- ``<!-- project-input: FLOW -->``: the block is what the reader types into the last command
  of FLOW (``python manage.py shell``).

Files belong to every flow of the page and are written where they stand on the page,
between the commands around them. Commands run with this interpreter: ``python``,
``flask``, ``celery`` (``python -m ...``) and ``django-admin`` (``python -m django``);
``export`` sets variables for the commands after it; a command commented
``# in another terminal`` keeps running in the background until :meth:`PageProject.stop`;
``pip install`` is skipped (the test environment has the packages) and so is
``thorn listen``, whose place the test's own receiver takes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from thorn_core.receiver import WebhookReceiver

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PROJECT_FILE = re.compile(r"<!-- project-file: ([\w./-]+)(, appended)? -->")
PROJECT_RUN = re.compile(r"<!-- project-run: ([\w-]+) -->")
PROJECT_INPUT = re.compile(r"<!-- project-input: ([\w-]+) -->")
#: The port ``thorn listen`` listens on by default, which the pages' receivers use.
LISTEN_PORT = 8765
#: What the commands of a page start with, and how this interpreter runs them.
PROGRAMS = {
    "python": [sys.executable],
    "flask": [sys.executable, "-m", "flask"],
    "django-admin": [sys.executable, "-m", "django"],
    "celery": [sys.executable, "-m", "celery"],
}
#: The comment of a command that keeps running (a worker) while the reader goes on.
IN_ANOTHER_TERMINAL = "# in another terminal"
#: Variables of the test run that would change how a reader's commands behave.
_UNSET = ("DJANGO_SETTINGS_MODULE", "FLASK_APP", "FLASK_DEBUG", "PYTHONSTARTUP")


NOT_RUNNABLE = "<!-- not-runnable"
#: ``<!-- pytest-file: NAME -->`` before a block: the block is a file of a pytest project
#: (a test module or a conftest.py); the page's files are run together with pytest.
PYTEST_FILE = re.compile(r"<!-- pytest-file: ([\w.]+) -->")


@attrs.frozen
class Block:
    """One fenced code block of a page and the marker comment on the line before it."""

    line: int
    language: str
    code: str
    marker: str

    @property
    def not_runnable(self) -> bool:
        """Marked ``<!-- not-runnable: reason -->``."""
        return self.marker.startswith(NOT_RUNNABLE)

    @property
    def pytest_file(self) -> str | None:
        """The file name of a ``<!-- pytest-file: NAME -->`` block, else None."""
        found = PYTEST_FILE.fullmatch(self.marker)
        return found.group(1) if found else None

    @property
    def in_project(self) -> bool:
        """The block belongs to the page's example project (a file, commands or their input)."""
        return any(p.fullmatch(self.marker) for p in (PROJECT_FILE, PROJECT_RUN, PROJECT_INPUT))


def code_blocks(text: str) -> list[Block]:
    """Every fenced code block of a page, in order."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(Block(line, match.group(1), match.group(2), before))
    return blocks


@attrs.frozen
class WriteFile:
    """Write (or append to) a file of the project."""

    path: str
    text: str
    append: bool


@attrs.frozen
class Command:
    """One ``$`` line of a console block, with what the reader types into it."""

    line: str
    stdin: str | None = None


def flows(page: Path) -> set[str]:
    """The names of the flows a page's console blocks belong to."""
    return {
        m.group(1)
        for b in code_blocks(page.read_text())
        if (m := PROJECT_RUN.fullmatch(b.marker)) is not None
    }


def steps(page: Path, flow: str) -> list[WriteFile | Command]:
    """The files and commands of ``flow``, in the page's order."""
    found: list[WriteFile | Command] = []
    for block in code_blocks(page.read_text()):
        if (file := PROJECT_FILE.fullmatch(block.marker)) is not None:
            found.append(WriteFile(file.group(1), block.code, file.group(2) is not None))
        elif (run := PROJECT_RUN.fullmatch(block.marker)) is not None and run.group(1) == flow:
            found.extend(
                Command(line.removeprefix("$ "))
                for line in block.code.splitlines()
                if line.startswith("$ ")
            )
        elif (typed := PROJECT_INPUT.fullmatch(block.marker)) is not None and (
            typed.group(1) == flow
        ):
            last = max(i for i, step in enumerate(found) if isinstance(step, Command))
            found[last] = attrs.evolve(found[last], stdin=block.code)
    if not any(isinstance(step, Command) for step in found):
        raise ValueError(f"{page.name} has no commands of the flow {flow!r}")
    return found


class CommandFailed(AssertionError):
    """A command of the page exited with an error."""


@attrs.define
class PageProject:
    """The example project of one page in ``directory``; :meth:`run` plays a flow.

    ``replace`` maps text of the page to what the test needs instead (the receiver's port
    when 8765 is taken); ``appended`` holds text the test adds to a file after the page's
    last block of it (a test database's settings).
    """

    page: Path
    directory: Path
    env: dict[str, str] = attrs.field(factory=dict)
    replace: Mapping[str, str] = attrs.field(factory=dict)
    appended: Mapping[str, str] = attrs.field(factory=dict)
    #: The output (stdout and stderr) of each command run, by its line on the page.
    outputs: dict[str, str] = attrs.field(factory=dict, init=False)
    #: The commands run "in another terminal", until :meth:`stop`.
    background: list[subprocess.Popen[str]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if k not in _UNSET}, **self.env}

    def run(self, flow: str) -> dict[str, str]:
        """Write the files and run the commands of ``flow``; return :attr:`outputs`.

        Raises:
            CommandFailed: a command exited with an error (its output is in the message).
        """
        planned = steps(self.page, flow)
        last_write = {s.path: i for i, s in enumerate(planned) if isinstance(s, WriteFile)}
        for index, step in enumerate(planned):
            if isinstance(step, Command):
                done = self.command(step.line, stdin=step.stdin)
                if done is not None and done.returncode != 0:
                    raise CommandFailed(
                        f"{self.page.name}: `{step.line}` exited {done.returncode}\n"
                        f"{done.stdout}\n{done.stderr}"
                    )
                continue
            self._write(step)
            if last_write[step.path] == index and step.path in self.appended:
                with (self.directory / step.path).open("a") as file:
                    file.write("\n" + self.appended[step.path])
        return self.outputs

    def command(
        self, line: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str] | None:
        """Run one command line in the project, as the page's are; None for one skipped.

        Variables exported by the flows run so far apply.
        """
        argv = shlex.split(self._substitute(line), comments=True)
        if argv[0] == "export":
            self.env.update(a.split("=", 1) for a in argv[1:])  # type: ignore[misc]
            return None
        if argv[0] == "pip" or argv[:2] == ["thorn", "listen"]:
            return None
        if argv[0] not in PROGRAMS:
            raise ValueError(f"{self.page.name}: no way to run {line!r}")
        if IN_ANOTHER_TERMINAL in line:
            self.background.append(
                subprocess.Popen(  # noqa: S603 -- the page's own command, this interpreter
                    [*PROGRAMS[argv[0]], *argv[1:]],
                    cwd=self.directory,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            return None
        typed = os.devnull
        if stdin is not None:
            # A file, not a pipe: ``manage.py shell`` reads stdin only if it is ready at once.
            typed = str(self.directory / f".stdin-{len(self.outputs)}.py")
            Path(typed).write_text(self._substitute(stdin))
        with open(typed) as stdin_file:
            done = subprocess.run(  # noqa: S603 -- the page's own commands, this interpreter
                [*PROGRAMS[argv[0]], *argv[1:]],
                cwd=self.directory,
                env=self.env,
                stdin=stdin_file,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        self.outputs[line] = done.stdout + done.stderr
        return done

    def stop(self) -> list[str]:
        """Stop the commands running in another terminal (SIGTERM, as Ctrl+C would, then
        SIGKILL after 20 s); return what each printed."""
        printed = []
        for process in self.background:
            process.terminate()
            try:
                out, _ = process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            printed.append(out)
        self.background.clear()
        return printed

    def _substitute(self, text: str) -> str:
        for old, new in self.replace.items():
            text = text.replace(old, new)
        return text

    def _write(self, step: WriteFile) -> None:
        target = self.directory / step.path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = self._substitute(step.text)
        if step.append:
            text = target.read_text() + "\n\n" + text
        target.write_text(text)


def listening_receiver() -> tuple[WebhookReceiver, dict[str, str]]:
    """A receiver standing in for ``thorn listen``: on its port 8765 when that is free, else
    on a free port, with the replacement that points the page's project at it."""
    try:
        receiver = WebhookReceiver(port=LISTEN_PORT).start()
    except OSError:
        receiver = WebhookReceiver().start()
        return receiver, {str(LISTEN_PORT): str(receiver.port)}
    return receiver, {}


#: The PostgreSQL server of the tests (a superuser, trust authentication).
POSTGRES_URL = os.environ.get(
    "THORN_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new database of our own on the test server, dropped afterwards; yields its name.

    Skips when the server cannot be reached, and fails instead when ``CI=true``.
    """
    psycopg = pytest.importorskip("psycopg")
    name = f"thorn_gs_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable on CI: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
