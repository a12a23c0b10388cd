"""The engine tokenizes a prompt once: counted on arrival, encoded again when run."""

from __future__ import annotations

import pytest

from app.engine.encodings import EncodingCache


def test_a_text_is_encoded_once_and_callers_get_their_own_list() -> None:
    calls: list[str] = []

    def encode(text: str) -> list[int]:
        calls.append(text)
        return [ord(c) for c in text]

    cache = EncodingCache(encode)
    first = cache("ab")
    first.append(0)  # a caller's list is its own
    assert cache("ab") == [97, 98]
    assert calls == ["ab"]


def test_the_least_recently_used_text_leaves_first() -> None:
    calls: list[str] = []
    cache = EncodingCache(lambda text: calls.append(text) or [len(text)], size=2)
    cache("a")
    cache("bb")
    cache("a")  # "bb" is now the least recently used
    cache("ccc")
    assert len(cache) == 2
    cache("a")
    assert calls == ["a", "bb", "ccc"]
    cache("bb")
    assert calls == ["a", "bb", "ccc", "bb"]


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EncodingCache(lambda text: [], size=0)
