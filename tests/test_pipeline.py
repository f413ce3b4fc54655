"""The ordered producer: input order, bounded memory, errors surface, no deadlock."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest

from coresift.pipeline import OrderedProducer


def _work(units: int) -> None:
    """Real CPU work of a given size, so workers finish out of order."""
    hashlib.sha256(bytes(20_000 * units)).digest()


def test_items_come_in_input_order_whatever_the_timing() -> None:
    def produce(n: int) -> Iterator[tuple[int, int]]:
        for i in range(n % 5):
            _work((n * 7 + i) % 3)
            yield (n, i)

    inputs = list(range(40))
    out = list(OrderedProducer(inputs, produce, workers=3, lookahead=4, queue_size=2))
    assert out == [(n, i) for n in inputs for i in range(n % 5)]


def test_a_long_stream_is_held_to_its_queue_size() -> None:
    buffered = []
    produced = 0
    lock = threading.Lock()

    def produce(n: int) -> Iterator[int]:
        nonlocal produced
        for i in range(200 if n == 0 else 1):
            with lock:
                produced += 1
            yield i

    consumed = 0
    for _ in OrderedProducer(list(range(6)), produce, workers=2, lookahead=3, queue_size=4):
        consumed += 1
        _work(1)  # a slow consumer: producers run ahead as far as the bounds let them
        with lock:
            buffered.append(produced - consumed)
    assert consumed == 205
    assert max(buffered) <= 4 + 1 + 3 + 1  # own queue, one in hand, other objects, slack


def test_an_error_in_a_worker_reaches_the_consumer() -> None:
    def produce(n: int) -> Iterator[int]:
        if n == 3:
            raise ConnectionError("network down")
        yield n

    results = []
    with pytest.raises(ConnectionError, match="network down"):
        for item in OrderedProducer(list(range(10)), produce, workers=2, lookahead=4, queue_size=1):
            results.append(item)
    assert results == [0, 1, 2]


def test_stopping_early_ends_the_workers() -> None:
    def produce(n: int) -> Iterator[int]:
        yield from range(1000)

    producer = OrderedProducer(list(range(5)), produce, workers=2, lookahead=2, queue_size=2)
    items = iter(producer)
    for item in items:
        if item == 10:
            break
    items.close()  # what dropping the iterator does: its cleanup joins the workers
    assert producer.threads and not any(thread.is_alive() for thread in producer.threads)
