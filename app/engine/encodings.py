"""A bounded cache of prompt texts' token ids.

The scheduler counts a prompt's tokens when a request arrives (to size batches within the token
budget) and the engine needs the same ids again when it runs the batch: tokenizing a long judge prompt
twice costs as much as the scheduler's whole bookkeeping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

# Prompts submitted but not yet run are the ones worth keeping: a few batches' worth.
DEFAULT_SIZE = 4096


class EncodingCache:
    """``cache(text)`` is ``encode(text)``, remembered for the ``size`` most recently used texts.
    Thread-safe: requests are counted on the scheduler's thread and run on the engine's."""

    def __init__(self, encode: Callable[[str], list[int]], size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._encode = encode
        self._size = size
        self._ids: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[int]:
        with self._lock:
            found = self._ids.get(text)
            if found is not None:
                self._ids.move_to_end(text)
                return list(found)
        ids = tuple(self._encode(text))
        with self._lock:
            self._ids[text] = ids
            self._ids.move_to_end(text)
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
        return list(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()
