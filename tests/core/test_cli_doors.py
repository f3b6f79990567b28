"""Every door of the ``thorn`` command line: each command and option refuses bad input with
one ``Error:`` line, a non-zero exit and no traceback.

The table below holds bad values for every command and every option that takes a value; a
command or an option added without an entry fails :class:`TestEveryDoorIsWalked`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from thorn_core.cli import main

from .._doors import Bad, case_ids, cases, valued_params
from .test_cli import assert_user_error, run

#: A receiver address nothing listens on; no case gets as far as sending to it.
URL = "http://127.0.0.1:9/hooks"
SECRET = "whsec_" + "ZGVtby1jcm0tc2VjcmV0LTAxMjM0NTY3ODk="


#: Bad input for every command of ``thorn``, by command name.
BAD: dict[str, list[Bad]] = {
    "demo": [
        Bad("(arguments)", ("surplus",), 2, ("unexpected extra argument",)),
    ],
    "listen": [
        Bad("host", ("--host", "192.0.2.1", "--port", "0"), 1, ("cannot listen", "192.0.2.1")),
        Bad("port", ("--port", "70000"), 2, ("--port", "70000")),
        Bad("port", ("--port", "http"), 2, ("--port", "not a valid integer")),
        Bad("secrets", ("--secret", "whsec_!!"), 2, ("--secret",)),
        Bad("forward", ("--forward", "ftp://x/"), 2, ("--forward", "http://")),
        Bad("forward", ("--forward", "http://"), 2, ("--forward", "no host")),
        Bad("tolerance", ("--tolerance", "-1"), 2, ("--tolerance", "'-1'", "0 or more")),
        Bad("tolerance", ("--tolerance", "nan"), 2, ("--tolerance", "'nan'", "0 or more")),
        Bad("timeout", ("--timeout", "0"), 2, ("--timeout", "'0'", "above 0")),
        Bad("timeout", ("--timeout", "nan"), 2, ("--timeout", "'nan'", "above 0")),
        Bad("count", ("--count", "0"), 2, ("--count", "0")),
    ],
    "send": [
        Bad("event", ("user..created", "--url", URL), 2, ("EVENT", "empty segment")),
        Bad("event", ("user.*", "--url", URL), 2, ("EVENT", "wildcard")),
        Bad("url", ("user.created",), 2, ("--url",)),
        Bad("url", ("user.created", "--url", "not a url"), 2, ("--url", "character ' '")),
        Bad("url", ("user.created", "--url", "example.com/hooks"), 2, ("--url", "no scheme")),
        Bad("secret", ("user.created", "--url", URL, "--secret", "whsec_!!"), 2, ("--secret",)),
        Bad("data_text", ("user.created", "--url", URL, "--data", "{nope"), 2, ("--data",)),
        Bad(
            "data_text",
            ("user.created", "--url", URL, "--data", "[" * 100_000),
            2,
            ("--data", "nests too deeply"),
        ),
        Bad(
            "data_file",
            ("user.created", "--url", URL, "--data-file", "{latin1}"),
            2,
            ("--data-file", "not UTF-8", "0xe9"),
        ),
        Bad(
            "data_file",
            ("user.created", "--url", URL, "--data-file", "{prose}"),
            2,
            ("--data-file", "not valid JSON"),
        ),
        Bad(
            "data_file",
            ("user.created", "--url", URL, "--data-file", "{missing}"),
            2,
            ("--data-file", "No such file"),
        ),
        Bad(
            "content_type",
            ("user.created", "--url", URL, "--content-type", "text/plain"),
            2,
            ("--content-type", "text/plain"),
        ),
        Bad("timeout", ("user.created", "--url", URL, "--timeout", "0"), 2, ("--timeout",)),
        Bad(
            "timeout",
            ("user.created", "--url", URL, "--timeout", "inf"),
            2,
            ("--timeout", "at most 86400"),
        ),
        Bad(
            "timeout",
            ("user.created", "--url", URL, "--timeout", "1e308"),
            2,
            ("--timeout", "at most 86400"),
        ),
        Bad(
            "networks",
            ("user.created", "--url", URL, "--allow-network", "10.0.0.0/33"),
            2,
            ("--allow-network",),
        ),
    ],
    "endpoints": [
        Bad("app_spec", ("--app", "nowhere_at_all:app"), 2, ("--app", "cannot import module")),
        Bad("app_spec", ("--app", "json:dumps"), 2, ("--app", "not a Thorn app")),
        Bad("health_url", ("--health-url", "ftp://x"), 2, ("--health-url", "redis://")),
        Bad("(both)", ("--app", "x:y", "--health-url", "redis://h/0"), 2, ("not both",)),
        Bad("targets", ("two words",), 2, ("URL_OR_ENDPOINT", "neither a URL nor an endpoint")),
        Bad("targets", ("http://",), 2, ("URL_OR_ENDPOINT", "not a URL with a host")),
    ],
    "catalog": [
        Bad("app_spec", (), 2, ("--app",)),
        Bad("app_spec", ("--app", "nowhere_at_all:app"), 2, ("--app", "cannot import module")),
        Bad("app_spec", ("--app", "string:digits"), 2, ("--app", "not a Thorn app")),
        Bad("fmt", ("--app", "x:y", "--format", "yaml"), 2, ("--format", "'yaml'")),
        Bad(
            "output",
            ("--app", "x:y", "-o", "/nonexistent-thorn-dir/out.json"),
            1,
            ("Could not open file", "No such file"),
        ),
    ],
    "verify": [
        Bad(
            "secrets",
            ("--secret", "whsec_!!", "--headers", "{headers}", "--body", "{body}"),
            2,
            ("--secret",),
        ),
        Bad(
            "headers_file",
            ("--secret", SECRET, "--headers", "{latin1}", "--body", "{body}"),
            2,
            ("--headers", "not UTF-8"),
        ),
        Bad(
            "headers_file",
            ("--secret", SECRET, "--headers", "{prose}", "--body", "{body}"),
            2,
            ("--headers", "line 2"),
        ),
        Bad(
            "headers_file",
            ("--secret", SECRET, "--headers", "{array}", "--body", "{body}"),
            2,
            ("--headers", "JSON object"),
        ),
        Bad(
            "body_file",
            ("--secret", SECRET, "--headers", "{headers}", "--body", "{missing}"),
            2,
            ("--body", "No such file"),
        ),
        Bad(
            "tolerance",
            ("--secret", SECRET, "--headers", "{headers}", "--body", "{body}", "--tolerance", "x"),
            2,
            ("--tolerance",),
        ),
        Bad(
            "tolerance",
            (
                "--secret",
                SECRET,
                "--headers",
                "{headers}",
                "--body",
                "{body}",
                "--tolerance",
                "inf",
            ),
            2,
            ("--tolerance", "0 or more"),
        ),
        Bad(
            "digest",
            ("--secret", SECRET, "--headers", "{headers}", "--body", "{body}", "--digest", "md5"),
            2,
            ("--digest", "md5"),
        ),
    ],
    "keys": [
        Bad("(arguments)", ("nope",), 2, ("No such command", "nope")),
        Bad("secret", ("public", "whsk_!!"), 2, ("SECRET", "base64")),
        Bad("secret", ("public", SECRET), 2, ("SECRET", "not a whsk_ signing key")),
        Bad("(arguments)", ("generate", "surplus"), 2, ("unexpected extra argument",)),
    ],
    "rotate-secret": [
        Bad("secret", ("--secret", "whsec_!!"), 2, ("--secret", "base64")),
        Bad("secret", ("--secret", ""), 2, ("--secret", "non-empty")),
        Bad("grace", ("--secret", SECRET, "--grace", "-1"), 2, ("--grace", "negative")),
        Bad("grace", ("--secret", SECRET, "--grace", "soon"), 2, ("--grace", "seconds")),
        Bad("grace", ("--secret", SECRET, "--grace", "9e9"), 2, ("--grace", "at most")),
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Files the cases name: Latin-1 text, prose, a JSON array, headers, a body, a missing one."""
    paths = {
        "latin1": tmp_path / "latin1.json",
        "prose": tmp_path / "prose.txt",
        "array": tmp_path / "array.json",
        "headers": tmp_path / "headers.txt",
        "body": tmp_path / "body.bin",
    }
    paths["latin1"].write_bytes('{"name": "José"}'.encode("latin-1"))
    paths["prose"].write_text("Dear receiver,\nthis is not JSON.\n")
    paths["array"].write_text("[1, 2]")
    paths["headers"].write_text("webhook-id: msg_1\r\nwebhook-signature: v1,AAAA\r\n")
    paths["body"].write_bytes(b"{}")
    return {**{name: str(path) for name, path in paths.items()}, "missing": str(tmp_path / "no")}


class TestEveryDoorIsWalked:
    """The table covers the command line as it is: every command, every option."""

    def test_every_command_has_bad_inputs(self) -> None:
        """Each command of ``thorn`` has an entry in the table, and each entry a command."""
        assert set(main.commands) == set(BAD)

    @pytest.mark.parametrize("name", sorted(BAD))
    def test_every_option_has_bad_values(self, name: str) -> None:
        """Every parameter that takes a value has at least one bad value in the table."""
        walked = {case.param for case in BAD[name]}
        assert valued_params(main.commands[name]) <= walked


class TestBadInput:
    """Bad input is one clear line and a non-zero exit, never a traceback."""

    @pytest.mark.parametrize(
        ("command", "case"),
        cases(BAD),
        ids=case_ids(BAD),
    )
    def test_refused_in_one_line(self, command: str, case: Bad, files: dict[str, str]) -> None:
        """The command exits with the case's code and one ``Error:`` line naming the problem."""
        args = [files.get(arg[1:-1], arg) if arg.startswith("{") else arg for arg in case.args]

        result = run(command, *args)

        assert_user_error(result, case.exit_code, *case.words)
