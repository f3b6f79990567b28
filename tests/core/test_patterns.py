"""Tests for event names, subscription patterns and candidate-pattern lookup."""

from __future__ import annotations

import pytest

from thorn_core.exceptions import InvalidEventName, InvalidPattern
from thorn_core.patterns import (
    candidate_patterns,
    matches,
    validate_event_name,
    validate_pattern,
)

MATCH_TABLE = [
    # exact
    ("user.created", "user.created", True),
    ("user.created", "user.updated", False),
    ("user.created", "user.created.v2", False),
    ("user.created", "user", False),
    ("ping", "ping", True),
    ("ping", "pong", False),
    ("a.b.c.d", "a.b.c.d", True),
    # prefix, one level
    ("user.*", "user.created", True),
    ("user.*", "user.profile.updated", True),
    ("user.*", "user", False),
    ("user.*", "users.created", False),
    ("user.*", "superuser.created", False),
    ("user.*", "article.user.created", False),
    # prefix, two levels
    ("user.profile.*", "user.profile.updated", True),
    ("user.profile.*", "user.profile.photo.changed", True),
    ("user.profile.*", "user.profile", False),
    ("user.profile.*", "user.created", False),
    ("user.profile.*", "user.profiles.updated", False),
    # suffix, one level
    ("*.created", "user.created", True),
    ("*.created", "a.b.created", True),
    ("*.created", "created", False),
    ("*.created", "user.created.v2", False),
    ("*.created", "user.precreated", False),
    ("*.created", "user.created_at", False),
    # suffix, two levels
    ("*.profile.created", "user.profile.created", True),
    ("*.profile.created", "a.user.profile.created", True),
    ("*.profile.created", "profile.created", False),
    ("*.profile.created", "user.created", False),
    # everything
    ("*", "user.created", True),
    ("*", "ping", True),
    ("*", "a.b.c.d.e", True),
]


class TestMatches:
    """A pattern matches exactly the names its form describes."""

    @pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_TABLE)
    def test_match_table(self, pattern: str, name: str, expected: bool) -> None:
        """Each pattern/name pair matches or not as the table says."""
        assert matches(pattern, name) is expected

    @pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_TABLE)
    def test_agrees_with_candidates(self, pattern: str, name: str, expected: bool) -> None:
        """A pattern matches a name exactly when it is among the name's candidates."""
        assert (pattern in candidate_patterns(name)) is expected

    def test_matches_refuses_bad_pattern(self) -> None:
        """A malformed pattern raises instead of silently not matching."""
        with pytest.raises(InvalidPattern):
            matches("us*er.x", "user.x")

    def test_matches_refuses_bad_name(self) -> None:
        """A malformed event name raises instead of silently not matching."""
        with pytest.raises(InvalidEventName):
            matches("*", "user..created")


class TestCandidatePatterns:
    """candidate_patterns lists every matching pattern, once, in a fixed order."""

    def test_three_segments(self) -> None:
        """A three-segment name yields exact, '*', two prefixes and two suffixes."""
        assert candidate_patterns("user.profile.updated") == (
            "user.profile.updated",
            "*",
            "user.*",
            "user.profile.*",
            "*.profile.updated",
            "*.updated",
        )

    def test_one_segment(self) -> None:
        """A one-segment name yields only itself and '*'."""
        assert candidate_patterns("ping") == ("ping", "*")

    @pytest.mark.parametrize("name", ["a", "a.b", "a.b.c", "a.b.c.d.e.f"])
    def test_count_and_uniqueness(self, name: str) -> None:
        """An n-segment name yields 2n distinct patterns, each of them valid."""
        candidates = candidate_patterns(name)
        assert len(candidates) == 2 * len(name.split("."))
        assert len(set(candidates)) == len(candidates)
        for candidate in candidates:
            assert validate_pattern(candidate) == candidate

    def test_repeated_segments(self) -> None:
        """Repeated segments still produce distinct patterns."""
        candidates = candidate_patterns("a.a.a")
        assert len(set(candidates)) == len(candidates) == 6

    def test_cached(self) -> None:
        """The same name returns the same cached tuple."""
        assert candidate_patterns("cache.me") is candidate_patterns("cache.me")

    @pytest.mark.parametrize("name", ["", "a..b", "a.*", "*", "a b", None, ["a"], 3])
    def test_refuses_invalid_names(self, name: object) -> None:
        """An invalid name, hashable or not, raises InvalidEventName, never an answer."""
        with pytest.raises(InvalidEventName):
            candidate_patterns(name)  # type: ignore[arg-type]


BAD_NAMES = [
    ("", "is empty"),
    ("a..b", "empty segment"),
    (".a", "empty segment"),
    ("a.", "empty segment"),
    (".", "empty segment"),
    ("user created", "whitespace"),
    ("user.created ", "whitespace"),
    ("user.\tcreated", "whitespace"),
    ("user.\u00a0created", "whitespace"),
    ("user.cre\x00ated", "control character"),
    ("user.cre\x7fated", "control character"),
    ("user.*", "wildcard"),
    ("*", "wildcard"),
    ("us*er.created", "wildcard"),
]


class TestValidateEventName:
    """validate_event_name accepts dotted names and refuses malformed ones with a reason."""

    @pytest.mark.parametrize(
        "name", ["user.created", "ping", "a.b.c.d", "Ärger.ünterwegs", "v1-x_y"]
    )
    def test_accepts(self, name: str) -> None:
        """A well-formed name is returned unchanged."""
        assert validate_event_name(name) == name

    @pytest.mark.parametrize(("name", "reason"), BAD_NAMES)
    def test_refuses(self, name: str, reason: str) -> None:
        """A malformed name raises InvalidEventName saying what is wrong and quoting it."""
        with pytest.raises(InvalidEventName, match=reason) as info:
            validate_event_name(name)
        assert repr(name) in str(info.value)

    @pytest.mark.parametrize("name", [None, 1, b"user.created", ["user"]])
    def test_refuses_non_str(self, name: object) -> None:
        """A non-str name raises InvalidEventName naming its type."""
        with pytest.raises(InvalidEventName, match=type(name).__name__):
            validate_event_name(name)


BAD_PATTERNS = [
    ("", "is empty"),
    ("us*er.x", "inside the segment"),
    ("user.cr*", "inside the segment"),
    ("**", "inside the segment"),
    ("*user.created", "inside the segment"),
    ("*.user.*", "both a leading and a trailing wildcard"),
    ("*.*", "both a leading and a trailing wildcard"),
    ("user.*.created", "middle segment"),
    ("*.a.*.b", "middle segment"),
    ("a.*.*", "middle segment"),
    ("a..b", "empty segment"),
    (".a", "empty segment"),
    ("a.", "empty segment"),
    ("*.", "empty segment"),
    (".*", "empty segment"),
    ("user.*.", "empty segment"),
    ("user .*", "whitespace"),
    (" *", "whitespace"),
    ("user.\ncreated", "whitespace"),
    ("user.\x01", "control character"),
]


class TestValidatePattern:
    """validate_pattern accepts the four pattern forms and refuses everything else."""

    @pytest.mark.parametrize(
        "pattern",
        ["*", "user.created", "ping", "user.*", "user.profile.*", "*.created", "*.profile.created"],
    )
    def test_accepts(self, pattern: str) -> None:
        """A well-formed pattern is returned unchanged."""
        assert validate_pattern(pattern) == pattern

    @pytest.mark.parametrize(("pattern", "reason"), BAD_PATTERNS)
    def test_refuses(self, pattern: str, reason: str) -> None:
        """A malformed pattern raises InvalidPattern saying what is wrong and quoting it."""
        with pytest.raises(InvalidPattern, match=reason) as info:
            validate_pattern(pattern)
        assert repr(pattern) in str(info.value)

    @pytest.mark.parametrize("pattern", [None, 1, b"*", ("user.*",)])
    def test_refuses_non_str(self, pattern: object) -> None:
        """A non-str pattern raises InvalidPattern naming its type."""
        with pytest.raises(InvalidPattern, match=type(pattern).__name__):
            validate_pattern(pattern)
