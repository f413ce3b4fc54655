"""The report, opened in a real browser (Debian's headless Chromium driven by playwright):
it draws every sample, shows every pick's thumbnail, hovers, lassoes and downloads; and it,
like `tag create`, reads nothing from the source."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coresift.datapool import Datapool
from coresift.report import write_report
from coresift.testing.media import corrupt_files, write_images
from coresift.testing.servers import ROOT
from tests.helpers import curate_once, run

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]

CHROMIUM = os.environ.get("CORESIFT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A datapool after two runs with new images in between (plus corrupt files)."""
    work = tmp_path_factory.mktemp("report")
    folder, pool = work / "images", str(work / "pool")
    write_images(folder, 0, 40)
    for name, data in corrupt_files().items():
        (folder / name).write_bytes(data)
    first = curate_once(str(folder), pool, n_samples=6, tag="first")
    write_images(folder, 40, 20, prefix="new")
    second = curate_once(str(folder), pool, n_samples=5, tag="second")
    return {"work": work, "folder": folder, "pool": pool, "first": first, "second": second}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


def _open(browser: Any, page_path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(page_path.as_uri())
    page.wait_for_function("window.coresiftReport !== undefined")
    return page, problems


def test_every_run_writes_its_report_and_says_where(two_runs: dict[str, Any]) -> None:
    second = two_runs["second"]
    assert second.report == f"{two_runs['pool']}/reports/{second.run_id}.html"
    assert Path(second.report).is_file()
    assert Path(two_runs["first"].report).is_file()


def test_the_report_in_a_browser(two_runs: dict[str, Any], browser: Any) -> None:
    work, pool = two_runs["work"], two_runs["pool"]
    page_path = Path(two_runs["second"].report)
    page, problems = _open(browser, page_path)
    datapool = Datapool(pool)
    samples = datapool.samples(["sample_id", "uri", "embedding"])
    embedded = samples.filter(samples["embedding"].is_valid())
    assert page.evaluate("window.coresiftReport.drawn") == len(embedded) == 60

    # Every pick's thumbnail loads, in pick order.
    widths = page.eval_on_selector_all("#picks img", "images => images.map(i => i.naturalWidth)")
    assert len(widths) == 5 and all(width > 0 for width in widths)

    # The first run's picks, the second run's and the rest are coloured apart.
    legend = page.inner_text("#legend")
    assert "not picked (49)" in legend and "other tags (6)" in legend
    assert "tag second (5)" in legend

    # Hovering a pick shows its thumbnail and path.
    page.locator("#canvas").scroll_into_view_if_needed()
    x, y = page.evaluate("window.coresiftReport.screenOf(0)")
    box = page.locator("#canvas").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 1000  # all of it in the viewport
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#tip img", state="visible")
    assert page.eval_on_selector("#tip img", "i => i.naturalWidth") > 0
    hovered = page.evaluate("window.coresiftReport.hovered")
    assert page.evaluate(f"window.coresiftReport.pathOf({hovered})") in page.inner_text("#tip")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    # A lasso around every point downloads every path.
    page.click("#lasso")
    corners = [
        (2, 2),
        (box["width"] - 2, 2),
        (box["width"] - 2, box["height"] - 2),
        (2, box["height"] - 2),
    ]
    page.mouse.move(box["x"] + corners[0][0], box["y"] + corners[0][1])
    page.mouse.down()
    for cx, cy in [*corners[1:], corners[0]]:
        page.mouse.move(box["x"] + cx, box["y"] + cy, steps=4)
    page.mouse.up()
    with page.expect_download() as download:
        page.click("#download")
    selection = work / "selection.txt"
    download.value.save_as(selection)
    lines = selection.read_text().splitlines()
    assert sorted(lines) == sorted(embedded["uri"].to_pylist())
    assert problems == []

    # The downloaded selection becomes a tag, without reading the source.
    shutil.move(two_runs["folder"], work / "moved-away")
    try:
        made = run(
            "coresift",
            "tag",
            "create",
            "--datapool",
            pool,
            "--name",
            "lassoed",
            "--from",
            str(selection),
        )
        assert "tag lassoed: 60 samples" in made.stdout
        assert {t["tag"]: t["samples"] for t in Datapool(pool).tag_summary()}["lassoed"] == 60
        focused = work / "focused.html"
        shown = run(
            "coresift",
            "report",
            "--datapool",
            pool,
            "--tag",
            "first",
            "--tag",
            "lassoed",
            "--output",
            str(focused),
        )
        assert "wrote the report" in shown.stdout
        page, problems = _open(browser, focused)
        legend = page.inner_text("#legend")
        assert "tag first (6)" in legend and "tag lassoed (54)" in legend
        assert problems == []
    finally:
        shutil.move(work / "moved-away", two_runs["folder"])


def test_the_report_names_a_missing_tag_in_one_line(two_runs: dict[str, Any]) -> None:
    result = run(
        "coresift",
        "report",
        "--datapool",
        two_runs["pool"],
        "--tag",
        "nope",
        "--output",
        str(two_runs["work"] / "x.html"),
        check=False,
    )
    assert result.returncode == 2
    assert "tag 'nope' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_report_of_an_empty_datapool_is_a_clear_error(tmp_path: Path) -> None:
    from coresift.errors import DatapoolError

    with pytest.raises(DatapoolError, match="has no run to report on yet"):
        write_report(Datapool(str(tmp_path / "empty")), str(tmp_path / "r.html"))
