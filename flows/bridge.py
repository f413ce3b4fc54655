"""Notification bridges: bucket notifications in, Prefect events out.

`coresift bridge s3|gcs|azure` is a small long-running process. It receives messages from an
SQS queue (S3), a Pub/Sub subscription (GCS) or a Storage Queue (Azure Event Grid), turns each
object-created notification under its source into a `coresift.object.created` event, and
acknowledges a message only after its events are sent. Malformed or foreign messages are
logged, counted and acknowledged, never fatal; duplicates are harmless because a curate run
skips what the datapool has already.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

from coresift.errors import ConfigError, NotificationError
from coresift.notifications import (
    ObjectCreated,
    parse_event_grid,
    parse_gcs,
    parse_s3,
    within,
)

EVENT_NAME = "coresift.object.created"
WAIT_SECONDS = 5

logger = logging.getLogger("coresift.bridge")


@dataclass
class Message:
    body: bytes
    attributes: dict[str, str]
    handle: Any


@dataclass
class BridgeStats:
    received: int = 0
    emitted: int = 0
    ignored: int = 0
    malformed: int = 0


def _optional(module: str, package: str, cloud: str) -> Any:
    """An SDK that only one bridge needs, with an install hint when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"the {cloud} bridge needs {package}: pip install 'coresift[bridges]'"
        ) from None


class Queue(Protocol):
    async def receive(self) -> list[Message]: ...

    async def ack(self, message: Message) -> None: ...

    async def close(self) -> None: ...


class SqsQueue:
    """An SQS queue (S3 notifications), through aiobotocore, which s3fs already brings."""

    def __init__(self, queue_url: str):
        self.queue_url = queue_url
        self._client: Any = None

    async def _sqs(self) -> Any:
        if self._client is None:
            from aiobotocore.session import get_session

            self._client = (
                await get_session().create_client("sqs", region_name=self._region()).__aenter__()
            )
        return self._client

    def _region(self) -> str | None:
        """AWS_REGION or AWS_DEFAULT_REGION, else the region in an AWS queue URL."""
        host = urlparse(self.queue_url).hostname or ""
        from_url = host.split(".")[1] if host.startswith("sqs.") else None
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or from_url

    async def receive(self) -> list[Message]:
        client = await self._sqs()
        reply = await client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=WAIT_SECONDS
        )
        return [
            Message(m["Body"].encode(), {}, m["ReceiptHandle"]) for m in reply.get("Messages", [])
        ]

    async def ack(self, message: Message) -> None:
        client = await self._sqs()
        await client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.handle)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)


class PubSubQueue:
    """A Pub/Sub subscription (GCS notifications); honours PUBSUB_EMULATOR_HOST."""

    def __init__(self, subscription: str):
        pubsub_v1 = _optional("google.cloud.pubsub_v1", "google-cloud-pubsub", "gcs")
        self.subscription = subscription
        self._client = pubsub_v1.SubscriberClient()

    async def receive(self) -> list[Message]:
        from google.api_core.exceptions import DeadlineExceeded

        def pull() -> list[Message]:
            try:
                reply = self._client.pull(
                    request={"subscription": self.subscription, "max_messages": 10},
                    timeout=WAIT_SECONDS,
                )
            except DeadlineExceeded:
                return []
            return [
                Message(m.message.data, dict(m.message.attributes), m.ack_id)
                for m in reply.received_messages
            ]

        return await asyncio.to_thread(pull)

    async def ack(self, message: Message) -> None:
        await asyncio.to_thread(
            self._client.acknowledge,
            request={"subscription": self.subscription, "ack_ids": [message.handle]},
        )

    async def close(self) -> None:
        self._client.close()


class StorageQueue:
    """An Azure Storage Queue fed by Event Grid; AZURE_STORAGE_CONNECTION_STRING locates it."""

    def __init__(self, queue_name: str):
        queues = _optional("azure.storage.queue", "azure-storage-queue", "azure")
        self._client = queues.QueueClient.from_connection_string(
            os.environ["AZURE_STORAGE_CONNECTION_STRING"], queue_name
        )

    async def receive(self) -> list[Message]:
        def pull() -> list[Message]:
            return [
                Message(str(m.content).encode(), {}, m)
                for m in self._client.receive_messages(max_messages=10, visibility_timeout=60)
            ]

        messages = await asyncio.to_thread(pull)
        if not messages:
            await asyncio.sleep(1)
        return messages

    async def ack(self, message: Message) -> None:
        await asyncio.to_thread(self._client.delete_message, message.handle)

    async def close(self) -> None:
        self._client.close()


PARSERS: dict[str, Callable[[Message], list[ObjectCreated]]] = {
    "s3": lambda m: parse_s3(m.body.decode("utf-8", "replace")),
    "gcs": lambda m: parse_gcs(m.attributes, m.body),
    "azure": lambda m: parse_event_grid(m.body.decode("utf-8", "replace")),
}


def object_created_event(source: str, datapool: str, created: ObjectCreated) -> Any:
    """The Prefect event for one new object under a source (the resource names the source;
    the payload also names the datapool that the triggered run curates into)."""
    from prefect.events import Event

    key = created.url[len(source.rstrip("/")) + 1 :]
    return Event(
        event=EVENT_NAME,
        resource={
            "prefect.resource.id": f"coresift.source.{source}",
            "prefect.resource.name": source,
        },
        payload={
            "source": source,
            "datapool": datapool,
            "url": created.url,
            "key": key,
            "version": created.version,
            "size": created.size,
        },
    )


async def run_bridge(
    kind: str, queue: Queue, source: str, datapool: str, stop: asyncio.Event
) -> BridgeStats:
    """Forward notifications until stop is set; returns the counts."""
    from prefect.events.clients import get_events_client

    parse = PARSERS[kind]
    stats = BridgeStats()
    async with get_events_client() as events:
        logger.info("bridge %s -> %s events for %s: running", kind, EVENT_NAME, source)
        try:
            await _forward(parse, queue, (source, datapool), events, stats, stop)
        finally:
            await queue.close()
    logger.info("bridge stopped: %s", asdict(stats))
    return stats


async def _forward(
    parse: Callable[[Message], list[ObjectCreated]],
    queue: Queue,
    target: tuple[str, str],
    events: Any,
    stats: BridgeStats,
    stop: asyncio.Event,
) -> None:
    source, datapool = target
    while not stop.is_set():
        for message in await queue.receive():
            stats.received += 1
            try:
                created = [c for c in parse(message) if within(c.url, source)]
            except NotificationError as error:
                stats.malformed += 1
                logger.warning(
                    "malformed message acknowledged and dropped: %s %s", error, asdict(stats)
                )
                await queue.ack(message)
                continue
            for item in created:
                await events.emit(object_created_event(source, datapool, item))
                logger.info("object created: %s", item.url)
            stats.emitted += len(created)
            stats.ignored += not created
            await queue.ack(message)


def serve(kind: str, queue: Queue, source: str, datapool: str) -> BridgeStats:
    """Run a bridge in the foreground until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> BridgeStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_bridge(kind, queue, source, datapool, stop)

    return asyncio.run(main())
