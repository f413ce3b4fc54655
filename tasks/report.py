"""The run's report, written into the datapool and linked from the run's Prefect page."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from coresift.config import CurateConfig
from coresift.datapool import Datapool
from coresift.report import report_url, write_report
from coresift.summary import RunSummary
from tasks.credentials import storage_options
from tasks.curate import IO_RETRIES


@task(**IO_RETRIES)
def write_run_report(config: CurateConfig, summary: RunSummary) -> str | None:
    """Write reports/<run_id>.html into the datapool; None when the run changed nothing."""
    logger = get_run_logger()
    if summary.objects_new + summary.objects_changed + summary.objects_gone == 0:
        logger.info("nothing changed: no new report")
        return None
    options = storage_options(config.datapool)
    datapool = Datapool(config.datapool.url, options)
    url = report_url(datapool, summary.run_id)
    size = write_report(datapool, url, run_id=summary.run_id, options=options)
    logger.info("report (%.1f MB): %s", size / 1e6, url)
    create_markdown_artifact(
        f"**coresift report** of run `{summary.run_id}` (tag `{summary.tag}`): "
        f"[{url}]({_link(url)})\n\n"
        f"{summary.samples_selected} picked of {summary.samples_processed} processed.",
        key="coresift-report",
        description=f"coresift report of run {summary.run_id}",
    )
    return url


def _link(url: str) -> str:
    """A clickable form of the URL: file:// for local paths."""
    return f"file://{url}" if url.startswith("/") else url
