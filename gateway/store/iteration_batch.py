"""Writes collected during one event-loop iteration and handed to the store in one call.

    batch = IterationBatch(lambda items, then: store.accept_many(items, then=then))
    batch.add(item, then)        # then(error, None) or then(None, result), once written

The first `add` of an iteration schedules `flush` with `call_soon`; a caller that must keep
another write behind these (order matters to the store) calls `flush` itself first. `write`
gets the items in order and a callback for their results, one per item; a result that is an
exception is that item's error. When `write` refuses at once (StoreError), or the write
fails, every item gets the error. A callback that raises is logged; the others still run.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from gateway.running_loop import running_loop
from gateway.store.sqlite_store import StoreError, Then

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[list[T], Then[list[Any]]], None]


class IterationBatch(Generic[T]):
    def __init__(self, write: Write[T]) -> None:
        self._write = write
        self._items: list[T] = []
        self._thens: list[Then[Any]] = []

    def add(self, item: T, then: Then[Any]) -> None:
        if not self._items:
            running_loop().call_soon(self.flush)
        self._items.append(item)
        self._thens.append(then)

    def flush(self) -> None:
        items, thens = self._items, self._thens
        if not items:
            return
        self._items, self._thens = [], []
        try:
            self._write(items, functools.partial(_deliver, thens))
        except StoreError as exc:
            _deliver(thens, exc, None)


def _deliver(thens: list[Then[Any]], error: BaseException | None, results: Any) -> None:
    for n, then in enumerate(thens):
        outcome = error if error is not None else results[n]
        try:
            if isinstance(outcome, BaseException):
                then(outcome, None)
            else:
                then(None, outcome)
        except Exception:  # one item's bug must not leave the others unanswered
            log.exception("store write callback failed")
