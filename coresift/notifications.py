"""Bucket notifications from the three clouds, read into one shape: an object was created.

S3 sends event records through SQS, GCS sends OBJECT_FINALIZE messages through Pub/Sub, and
Azure Event Grid delivers BlobCreated events to a Storage Queue. Each parser returns the
created objects a message announces, [] for a well-formed message about something else
(a test event, a deletion), and raises NotificationError for anything it cannot read.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlparse

from coresift.errors import NotificationError


@dataclass(frozen=True)
class ObjectCreated:
    """An object that appeared in a bucket: its URL, and its version and size when known."""

    url: str
    version: str | None = None
    size: int | None = None


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NotificationError(f"not JSON: {error}") from None


def parse_s3(body: str) -> list[ObjectCreated]:
    """An SQS message body carrying S3 event records (keys arrive URL-encoded)."""
    message = _json(body)
    if not isinstance(message, dict):
        raise NotificationError("an S3 notification is a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise NotificationError("no Records in the S3 notification")
    created = []
    for record in records:
        try:
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            bucket = record["s3"]["bucket"]["name"]
            item = record["s3"]["object"]
            key = unquote_plus(item["key"])
        except (KeyError, TypeError) as error:
            raise NotificationError(f"S3 record without {error}") from None
        version = item.get("versionId") or item.get("eTag")
        created.append(ObjectCreated(f"s3://{bucket}/{key}", version, item.get("size")))
    return created


def parse_gcs(attributes: dict[str, str], data: bytes) -> list[ObjectCreated]:
    """A Pub/Sub message of a GCS bucket notification (JSON_API_V1 payload)."""
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        if "eventType" not in attributes:
            raise NotificationError("no eventType attribute: not a GCS notification")
        return []
    resource = _json(data) if data else {}
    bucket = attributes.get("bucketId") or resource.get("bucket")
    name = attributes.get("objectId") or resource.get("name")
    if not bucket or not name:
        raise NotificationError("GCS notification without bucketId/objectId")
    generation = attributes.get("objectGeneration") or resource.get("generation")
    size = resource.get("size")
    return [ObjectCreated(f"gs://{bucket}/{name}", generation, int(size) if size else None)]


def parse_event_grid(body: str) -> list[ObjectCreated]:
    """A Storage Queue message with Event Grid events (plain or base64 JSON, one or a list)."""
    try:
        message = _json(body)
    except NotificationError:
        try:
            message = _json(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            raise NotificationError("neither JSON nor base64-encoded JSON") from None
    events = message if isinstance(message, list) else [message]
    created = []
    for event in events:
        if not isinstance(event, dict):
            raise NotificationError("an Event Grid event is a JSON object")
        kind = event.get("eventType") or event.get("type")  # Event Grid or CloudEvents schema
        if kind is None:
            raise NotificationError("no eventType: not an Event Grid event")
        if kind != "Microsoft.Storage.BlobCreated":
            continue
        data = event.get("data") or {}
        url = data.get("url") if isinstance(data, dict) else None
        if not url:
            raise NotificationError("BlobCreated event without data.url")
        path = urlparse(url).path.lstrip("/")
        if urlparse(url).hostname in ("127.0.0.1", "localhost"):  # Azurite: /account/container/...
            path = path.split("/", 1)[1] if "/" in path else ""
        created.append(
            ObjectCreated(f"az://{unquote_plus(path)}", data.get("eTag"), data.get("contentLength"))
        )
    return created


def within(url: str, source: str) -> bool:
    """Whether an object URL lies under a source URL (the bridge ignores the rest)."""
    prefix = source.rstrip("/")
    return url == prefix or url.startswith(prefix + "/")
