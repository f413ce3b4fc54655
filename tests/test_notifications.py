"""Reading the clouds' notification messages: created objects, ignorable ones, malformed ones."""

from __future__ import annotations

import base64
import json

import pytest

from coresift.errors import NotificationError
from coresift.notifications import (
    ObjectCreated,
    parse_event_grid,
    parse_gcs,
    parse_s3,
    within,
)


def _s3_record(key: str, event: str = "ObjectCreated:Put") -> dict[str, object]:
    return {
        "eventName": event,
        "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 7, "eTag": "e1"}},
    }


def test_s3_records_with_url_encoded_keys() -> None:
    body = json.dumps(
        {"Records": [_s3_record("dir/a+b%C3%A9.jpg"), _s3_record("x.jpg", "ObjectRemoved:Delete")]}
    )
    assert parse_s3(body) == [ObjectCreated("s3://b/dir/a bé.jpg", "e1", 7)]


def test_s3_test_event_is_ignored_and_garbage_is_malformed() -> None:
    assert parse_s3(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    for bad in (
        "not json",
        "[1, 2]",
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    ):
        with pytest.raises(NotificationError):
            parse_s3(bad)


def test_gcs_finalize_messages() -> None:
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "b",
        "objectId": "d/x.png",
        "objectGeneration": "17",
    }
    data = json.dumps({"name": "d/x.png", "bucket": "b", "size": "12"}).encode()
    assert parse_gcs(attributes, data) == [ObjectCreated("gs://b/d/x.png", "17", 12)]
    assert parse_gcs({**attributes, "eventType": "OBJECT_DELETE"}, data) == []
    with pytest.raises(NotificationError):
        parse_gcs({}, b"hello")


def _blob_created(url: str) -> dict[str, object]:
    return {
        "eventType": "Microsoft.Storage.BlobCreated",
        "subject": "...",
        "data": {"url": url, "eTag": "0x1", "contentLength": 5},
    }


def test_event_grid_plain_base64_lists_and_azurite_urls() -> None:
    real = _blob_created("https://acct.blob.core.windows.net/cont/dir/a%20b.jpg")
    local = _blob_created("http://127.0.0.1:10000/devstoreaccount1/cont/c.jpg")
    assert parse_event_grid(json.dumps(real)) == [ObjectCreated("az://cont/dir/a b.jpg", "0x1", 5)]
    encoded = base64.b64encode(
        json.dumps([local, {"eventType": "Microsoft.Storage.BlobDeleted"}]).encode()
    ).decode()
    assert parse_event_grid(encoded) == [ObjectCreated("az://cont/c.jpg", "0x1", 5)]
    for bad in (
        "%%%",
        json.dumps({"hello": 1}),
        json.dumps({"eventType": "Microsoft.Storage.BlobCreated"}),
    ):
        with pytest.raises(NotificationError):
            parse_event_grid(bad)


def test_within_a_source() -> None:
    assert within("s3://b/in/x.jpg", "s3://b/in")
    assert within("s3://b/in/x.jpg", "s3://b/in/")
    assert not within("s3://b/inbox/x.jpg", "s3://b/in")
    assert not within("s3://c/in/x.jpg", "s3://b")
