"""The options every job-creating request accepts: bounded metadata and an http(s) callback URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.errors import InvalidInput
from app.jobs.schemas import JobOptionsIn
from app.jobs.service import parse_metadata_filters


def _problem(**options: object) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as info:
        JobOptionsIn.model_validate(options)
    [error] = info.value.errors()
    return error["loc"], error["msg"]


def test_metadata_at_the_limits_is_accepted() -> None:
    metadata = {f"k{i}": "v" * 512 for i in range(31)} | {"a" * 64: ""}
    assert JobOptionsIn(metadata=metadata).metadata == metadata


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({f"k{i}": "v" for i in range(33)}, "33 keys; at most 32"),
        ({"a" * 65: "v"}, "1 to 64 characters"),
        ({"": "v"}, "1 to 64 characters"),
        ({"team:a": "v"}, "may hold only"),
        ({"-lead": "v"}, "starting with a letter or digit"),
        ({"k": "v" * 513}, "513 characters long; at most 512"),
    ],
)
def test_metadata_out_of_bounds_is_refused(metadata: dict[str, str], says: str) -> None:
    _, message = _problem(metadata=metadata)
    assert says in message


def test_metadata_values_must_be_strings() -> None:
    loc, _ = _problem(metadata={"run": 7})
    assert loc == ("metadata", "run")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://example.com/a/b?token=x", "https://[::1]:9/h"]
)
def test_callback_urls_that_are_accepted(url: str) -> None:
    assert JobOptionsIn(callback_url=url).callback_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https:///path", "no host"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/" + "a" * 2048, "at most 2048 characters"),
    ],
)
def test_callback_urls_that_are_refused(url: str, says: str) -> None:
    loc, message = _problem(callback_url=url)
    assert loc == ("callback_url",)
    assert says in message


def test_metadata_filters_parse_into_required_pairs() -> None:
    assert parse_metadata_filters(["team:a", "url:http://x:1", "team:a"]) == {
        "team": "a",
        "url": "http://x:1",
    }
    assert parse_metadata_filters(["empty:"]) == {"empty": ""}


@pytest.mark.parametrize(
    ("filters", "says"), [(["team"], "not `key:value`"), ([":a"], "1 to 64"), (["t:a", "t:b"], "twice")]
)
def test_malformed_metadata_filters_name_the_parameter(filters: list[str], says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_metadata_filters(filters)
    assert info.value.field == "metadata"
    assert says in info.value.message
