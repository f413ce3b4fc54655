"""Listing: filters, relevant filenames, identities, and pagination on a real S3 server."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_local_listing_is_recursive_sorted_and_filtered(workdir: Path) -> None:
    _touch(workdir, "b.jpg", "a.PNG", "sub/c.jpeg", "sub/deep/d.webp", "notes.txt", "e.jpg")
    (workdir / "relevant.txt").write_text("sub/*\na.PNG\nb.jpg\n!sub/deep/*\n")
    names = [Path(r.uri).name for r in list_source(str(workdir))]
    assert names == ["a.PNG", "b.jpg", "e.jpg", "c.jpeg", "d.webp"]
    filtered = list_source(str(workdir), include=["*.jpg", "sub/*"], exclude=["e.*"])
    assert [Path(r.uri).name for r in filtered] == ["b.jpg", "c.jpeg", "d.webp"]
    relevant = list_source(str(workdir), relevant_filenames=str(workdir / "relevant.txt"))
    assert [Path(r.uri).name for r in relevant] == ["a.PNG", "b.jpg", "c.jpeg"]


def test_local_version_changes_when_the_file_changes(workdir: Path) -> None:
    _touch(workdir, "a.jpg")
    (before,) = list_source(str(workdir))
    path = workdir / "a.jpg"
    path.write_bytes(b"y" * 12)
    os.utime(path, ns=(0, before_ns(before.version) + 1_000))
    (after,) = list_source(str(workdir))
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
    listing = list_source(f"s3://{s3_bucket}/many")
    assert len(listing) == 1005
    assert listing[0].uri == f"s3://{s3_bucket}/many/00000.jpg"
    assert all(ref.version and ref.version != "None" for ref in listing)
    assert len({ref.version for ref in listing[:10]}) == 10  # ETags differ with content
