"""Ordered parallel production: decode objects in threads, consume their items in input order.

Each object yields any number of items (one per image, one per sampled video frame). Workers
claim objects strictly in input order and push items into a small queue per object; the
consumer drains the queues in input order. Claiming in order means the object the consumer
waits on always has a worker, so bounded queues cannot deadlock. Memory is bounded by
`lookahead` buffered objects plus `queue_size` items per busy worker, however long a video is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class _Stopped(Exception):
    """Raised inside a worker when the consumer has gone away."""


class OrderedProducer(Generic[T, R]):
    """Runs produce(item) for each input in worker threads; iterate to get results in order."""

    def __init__(
        self,
        inputs: Sequence[T],
        produce: Callable[[T], Iterator[R]],
        workers: int,
        lookahead: int,
        queue_size: int,
    ):
        self._inputs = inputs
        self._produce = produce
        self._queues: list[queue.Queue[object]] = [queue.Queue(maxsize=queue_size) for _ in inputs]
        self._lookahead = max(lookahead, workers)
        self._next_claim = 0
        self._consumed = 0
        self._condition = threading.Condition()
        self._stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, name=f"coresift-read-{i}", daemon=True)
            for i in range(min(workers, len(inputs)))
        ]

    def _claim(self) -> int | None:
        with self._condition:
            while not self._stopped.is_set():
                if self._next_claim >= len(self._inputs):
                    return None
                if self._next_claim < self._consumed + self._lookahead:
                    self._next_claim += 1
                    return self._next_claim - 1
                self._condition.wait(timeout=0.5)
            return None

    def _put(self, index: int, item: object) -> None:
        while True:
            if self._stopped.is_set():
                raise _Stopped
            try:
                self._queues[index].put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        while (index := self._claim()) is not None:
            try:
                for result in self._produce(self._inputs[index]):
                    self._put(index, result)
                self._put(index, _DONE)
            except _Stopped:
                return
            except BaseException as error:  # handed to the consumer, which re-raises it
                try:
                    self._put(index, _Failure(error))
                except _Stopped:
                    return

    def __iter__(self) -> Generator[R, None, None]:
        for thread in self.threads:
            thread.start()
        try:
            for index in range(len(self._inputs)):
                while (item := self._queues[index].get()) is not _DONE:
                    if isinstance(item, _Failure):
                        raise item.error
                    yield item  # type: ignore[misc]
                with self._condition:
                    self._consumed = index + 1
                    self._queues[index] = queue.Queue()  # drop the spent queue's memory
                    self._condition.notify_all()
        finally:
            self._stopped.set()
            with self._condition:
                self._condition.notify_all()
            for thread in self.threads:
                thread.join()
