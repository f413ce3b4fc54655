"""Listing: filters, relevant filenames, identities, and pagination on a real S3 server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coresift.errors import SourceError
from coresift.listing import RelevantFilenames, list_source


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)


def test_relevant_filenames_exact_prefix_and_exclude() -> None:
    relevant = RelevantFilenames.parse("a/1.jpg\n# comment\n\nb/*\n!b/skip*\n!b/no.jpg\n")
    assert relevant.admits("a/1.jpg")
    assert not relevant.admits("a/2.jpg")
    assert relevant.admits("b/deep/x.png")
    assert not relevant.admits("b/skip-me.jpg")
    assert not relevant.admits("b/no.jpg")


def test_local_listing_is_recursive_sorted_filtered_and_kinded(workdir: Path) -> None:
    _touch(workdir, "b.jpg", "a.PNG", "sub/c.jpeg", "sub/deep/d.webp", "notes.txt", "e.jpg")
    _touch(workdir, "sub/clip.OGV", "sub/cam.m2ts")
    (workdir / "relevant.txt").write_text("sub/*\na.PNG\nb.jpg\n!sub/deep/*\n")
    kinds = {_relative(workdir, r.uri): r.kind for r in list_source(str(workdir)).refs()}
    assert list(kinds) == [
        "a.PNG",
        "b.jpg",
        "e.jpg",
        "notes.txt",
        "relevant.txt",
        "sub/c.jpeg",
        "sub/cam.m2ts",
        "sub/clip.OGV",
        "sub/deep/d.webp",
    ]
    assert kinds["notes.txt"] == kinds["relevant.txt"] == "unsupported"
    assert kinds["sub/clip.OGV"] == kinds["sub/cam.m2ts"] == "video"
    assert kinds["sub/c.jpeg"] == "image"
    filtered = list_source(
        str(workdir), include=["*.jpg", "sub/*"], exclude=["e.*", "*.m2ts"]
    ).refs()
    assert [_relative(workdir, r.uri) for r in filtered] == [
        "b.jpg",
        "sub/c.jpeg",
        "sub/clip.OGV",
        "sub/deep/d.webp",
    ]
    relevant = list_source(str(workdir), relevant_filenames=str(workdir / "relevant.txt")).refs()
    assert [_relative(workdir, r.uri) for r in relevant] == [
        "a.PNG",
        "b.jpg",
        "sub/c.jpeg",
        "sub/cam.m2ts",
        "sub/clip.OGV",
    ]


def _relative(root: Path, uri: str) -> str:
    return str(Path(uri).relative_to(root))


def test_local_version_changes_when_the_file_changes(workdir: Path) -> None:
    _touch(workdir, "a.jpg")
    (before,) = list_source(str(workdir)).refs()
    path = workdir / "a.jpg"
    path.write_bytes(b"y" * 12)
    os.utime(path, ns=(0, before_ns(before.version) + 1_000))
    (after,) = list_source(str(workdir)).refs()
    assert (after.uri, after.size) == (before.uri, 12)
    assert after.version != before.version


def before_ns(version: str) -> int:
    return int(version.split("-")[0])


def test_missing_source_is_a_clear_error(workdir: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        list_source(str(workdir / "nope"))


def test_s3_listing_pages_past_1000_keys_with_etags(s3_bucket: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.pipe({f"{s3_bucket}/many/{i:05d}.jpg": b"%d" % i for i in range(1005)})
    fs.pipe({f"{s3_bucket}/many/readme.txt": b"not an image"})
    listing = list_source(f"s3://{s3_bucket}/many").refs()
    assert len(listing) == 1006
    assert [r.uri for r in listing if r.kind == "unsupported"] == [
        f"s3://{s3_bucket}/many/readme.txt"
    ]
    assert listing[0].uri == f"s3://{s3_bucket}/many/00000.jpg"
    assert all(ref.version and ref.version != "None" for ref in listing)
    assert len({ref.version for ref in listing[:10]}) == 10  # ETags differ with content


def test_objects_without_an_extension_are_kinded_by_content_type(
    s3_bucket: str, gcs_bucket: str, azure_container: str
) -> None:
    """GCS and Azure list content types; on S3 an extensionless object costs a HEAD request."""
    import adlfs
    import gcsfs
    import s3fs
    from azure.storage.blob import ContentSettings

    def azure_type(value: str) -> dict[str, Any]:
        return {"content_settings": ContentSettings(content_type=value)}

    stores: list[tuple[Any, str, Callable[[str], dict[str, Any]]]] = [
        (gcsfs.GCSFileSystem(), gcs_bucket, lambda value: {"content_type": value}),
        (s3fs.S3FileSystem(), s3_bucket, lambda value: {"ContentType": value}),
        (adlfs.AzureBlobFileSystem(), azure_container, azure_type),
    ]
    for fs, bucket, typed in stores:
        fs.pipe_file(f"{bucket}/in/clip", b"v", **typed("video/mp4"))
        fs.pipe_file(f"{bucket}/in/photo", b"i", **typed("image/jpeg"))
        fs.pipe_file(f"{bucket}/in/log", b"l", **typed("text/plain"))
        fs.pipe_file(f"{bucket}/in/named.mp4", b"n", **typed("application/octet-stream"))
    for url in (f"gs://{gcs_bucket}/in", f"s3://{s3_bucket}/in", f"az://{azure_container}/in"):
        kinds = {r.uri.rsplit("/", 1)[1]: r.kind for r in list_source(url).refs()}
        assert kinds == {
            "clip": "video",
            "photo": "image",
            "log": "unsupported",
            "named.mp4": "video",
        }, url


def test_s3_listing_by_prefix_in_parallel_equals_one_walk(s3_bucket: str) -> None:
    """Divide and conquer lists the same objects as one paginated walk: keys at the root,
    under many prefixes (one past a page), nested ones, and under a single top prefix."""
    import s3fs

    fs = s3fs.S3FileSystem()
    keys = [
        f"top/day-{d:02d}/cam-{c}/{i:04d}.jpg"
        for d in range(12)
        for c in range(3)
        for i in range(8)
    ]
    keys += [f"top/day-00/{i:04d}.jpg" for i in range(1003)]  # past one page of 1000
    keys += ["top/root.jpg", "top/notes.txt", "top/day-05/deep/er/x.png"]
    fs.pipe({f"{s3_bucket}/{key}": key.encode() for key in keys})
    for url in (f"s3://{s3_bucket}/top", f"s3://{s3_bucket}", f"s3://{s3_bucket}/top/root.jpg"):
        walked = list_source(url, threads=1)
        parallel = list_source(url)
        assert parallel.refs() == walked.refs(), url
    assert len(list_source(f"s3://{s3_bucket}").refs()) == len(keys)
    assert len(list_source(f"s3://{s3_bucket}/top/root.jpg").refs()) == 1
