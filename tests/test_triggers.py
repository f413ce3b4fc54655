"""Deployments, triggers and bridges end to end: a real Prefect server, `prefect deploy` from
the project's prefect.yaml, a process worker, and real bucket notifications."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from coresift.datapool import Datapool
from coresift.testing import servers
from coresift.testing.media import distinct_image, jpeg_bytes
from tests.helpers import config_values, run

pytestmark = pytest.mark.slow

CORESIFT = str(servers.BIN / "coresift")
GCP_PROJECT = "coresift-test"
SUBSCRIPTION = f"projects/{GCP_PROJECT}/subscriptions/uploads"
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


def _prefect(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run("prefect", *args, cwd=servers.ROOT, env=env, check=False)


class Stack:
    """Everything that runs beside the flows during these tests."""

    def __init__(self, work: Path, moto: str, pubsub: str, gcs: str, queues: str):
        self.work, self.moto, self.pubsub, self.gcs, self.queues = work, moto, pubsub, gcs, queues
        self.datapool = work / "pool"
        self.bridges: list[subprocess.Popen[str]] = []

    def aws(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.moto,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def bridge(self, cloud: str, queue: str, source: str, env: dict[str, str]) -> Path:
        log = self.work / f"bridge-{cloud}.log"
        command = [CORESIFT, "bridge", cloud, "--queue", queue, "--source", source]
        with log.open("w") as output:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [*command, "--datapool", str(self.datapool)],
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **env},
            )
        self.bridges.append(process)
        servers.wait_until(lambda: "running" in log.read_text(), f"{cloud} bridge")
        return log


def _create_subscription(pubsub: str) -> None:
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub
    import google.cloud.pubsub_v1 as pubsub_v1

    topic = f"projects/{GCP_PROJECT}/topics/uploads"
    pubsub_v1.PublisherClient().create_topic(name=topic)
    pubsub_v1.SubscriberClient().create_subscription(name=SUBSCRIPTION, topic=topic)


@pytest.fixture(scope="module")
def stack(
    prefect_server: str, azurite_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("triggers")
    with ExitStack() as exits:
        moto = exits.enter_context(servers.moto(work))
        pubsub = exits.enter_context(servers.pubsub_emulator(work, GCP_PROJECT))
        _create_subscription(pubsub)
        gcs = exits.enter_context(
            servers.fake_gcs(work, publish_to=(pubsub, GCP_PROJECT, "uploads"))
        )
        queues = exits.enter_context(servers.azurite_queue(work))
        env = {
            "CORESIFT_SOURCE": "s3://incoming",
            "CORESIFT_DATAPOOL": str(work / "pool"),
            "CORESIFT_PROJECT_DIR": str(servers.ROOT),
        }
        created = _prefect(
            "work-pool", "create", "coresift-process", "--type", "process", "--overwrite"
        )
        assert created.returncode == 0, created.stderr
        deployed = _prefect("--no-prompt", "deploy", "--all", env=env)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        worker_env = {**MOTO_ENV, "AWS_ENDPOINT_URL": moto, "STORAGE_EMULATOR_HOST": gcs}
        exits.enter_context(servers.prefect_worker(work, "coresift-process", worker_env))
        result = Stack(work, moto, pubsub, gcs, queues)
        yield result
        for bridge in result.bridges:
            bridge.terminate()
            bridge.wait(timeout=30)
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)


def _curate_runs(datapool: Path) -> list[Any]:
    """Flow runs of curate on one datapool (other tests' runs share this Prefect server)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["curate"])))
    return [r for r in runs if _config(r)["datapool"]["url"] == str(datapool)]


def _config(run: Any) -> dict[str, Any]:
    config: dict[str, Any] = run.parameters.get("config") or {"datapool": {"url": None}}
    return config


def _triggered(runs: list[Any], source: str) -> list[Any]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("curate/curate-on-upload")
    return [
        r
        for r in runs
        if r.deployment_id == deployment.id and _config(r)["source"]["url"] == source
    ]


def _wait_for_objects(datapool: Path, prefix: str, count: int, timeout: float = 240) -> None:
    def arrived() -> bool:
        return (
            datapool.exists()
            and sum(u.startswith(prefix) for u in Datapool(str(datapool)).objects()) >= count
        )

    servers.wait_until(arrived, f"{count} objects under {prefix} in the datapool", timeout=timeout)


def _assert_few_runs_without_overlap(stack: Stack, before: set[Any], source: str) -> None:
    runs = _curate_runs(stack.datapool)
    assert 1 <= len(_triggered([r for r in runs if r.id not in before], source)) <= 3
    spans = sorted((r.start_time, r.end_time) for r in runs if r.start_time)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and end <= start, "two curate runs overlapped on one datapool"


def test_a_burst_of_s3_uploads_becomes_one_or_a_few_runs(stack: Stack) -> None:
    sqs, s3 = stack.aws("sqs"), stack.aws("s3")
    queue_url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.create_bucket(Bucket="incoming")
    s3.put_bucket_notification_configuration(
        Bucket="incoming",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    for junk in ("not json at all", json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]})):
        sqs.send_message(QueueUrl=queue_url, MessageBody=junk)
    log = stack.bridge(
        "s3", queue_url, "s3://incoming", {**MOTO_ENV, "AWS_ENDPOINT_URL": stack.moto}
    )
    before = {r.id for r in _curate_runs(stack.datapool)}

    for i in range(20):
        s3.put_object(
            Bucket="incoming", Key=f"burst/img {i:02d}.jpg", Body=jpeg_bytes(distinct_image(i))
        )
    _wait_for_objects(stack.datapool, "s3://incoming/burst/", 20)

    text = log.read_text()
    assert text.count("object created: s3://incoming/burst/") == 20
    assert "'malformed': 2" in text  # survived and counted
    _assert_few_runs_without_overlap(stack, before, "s3://incoming")


def test_gcs_uploads_reach_the_datapool_through_pub_sub(stack: Stack) -> None:
    import gcsfs

    log = stack.bridge(
        "gcs", SUBSCRIPTION, "gs://gcs-incoming", {"PUBSUB_EMULATOR_HOST": stack.pubsub}
    )
    fs = gcsfs.GCSFileSystem(endpoint_url=stack.gcs, token="anon", project=GCP_PROJECT)
    fs.mkdir("gcs-incoming")
    before = {r.id for r in _curate_runs(stack.datapool)}
    for i in range(20):
        fs.pipe_file(f"gcs-incoming/in/{i:02d}.jpg", jpeg_bytes(distinct_image(100 + i)))
    _wait_for_objects(stack.datapool, "gs://gcs-incoming/in/", 20)
    assert log.read_text().count("object created: gs://gcs-incoming/in/") == 20
    _assert_few_runs_without_overlap(stack, before, "gs://gcs-incoming")


def _event_grid(blob_url: str, size: int) -> str:
    """A BlobCreated event as Event Grid delivers it to a Storage Queue (base64 JSON)."""
    event = {
        "topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage"
        "/storageAccounts/devstoreaccount1",
        "subject": "/blobServices/default/containers/az-incoming/blobs/"
        + blob_url.rsplit("/az-incoming/", 1)[1],
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": blob_url,
        "data": {
            "api": "PutBlob",
            "url": blob_url,
            "eTag": "0x1",
            "contentLength": size,
            "blobType": "BlockBlob",
        },
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": "2026-11-25T10:00:00Z",
    }
    return base64.b64encode(json.dumps(event).encode()).decode()


def test_azure_event_grid_messages_reach_the_datapool_through_a_storage_queue(
    stack: Stack, azurite_server: str
) -> None:
    import adlfs
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(stack.queues, "uploads")
    queue.create_queue()
    queue.send_message("{broken json")
    queue.send_message(
        base64.b64encode(
            json.dumps({"eventType": "Microsoft.Storage.BlobDeleted"}).encode()
        ).decode()
    )
    log = stack.bridge(
        "azure", "uploads", "az://az-incoming", {"AZURE_STORAGE_CONNECTION_STRING": stack.queues}
    )
    fs = adlfs.AzureBlobFileSystem(connection_string=azurite_server)
    fs.mkdir("az-incoming")
    endpoint = azurite_server.split("BlobEndpoint=")[1].rstrip(";")
    before = {r.id for r in _curate_runs(stack.datapool)}
    for i in range(20):
        data = jpeg_bytes(distinct_image(200 + i))
        fs.pipe_file(f"az-incoming/in/{i:02d}.jpg", data)
        queue.send_message(_event_grid(f"{endpoint}/az-incoming/in/{i:02d}.jpg", len(data)))
    _wait_for_objects(stack.datapool, "az://az-incoming/in/", 20)
    text = log.read_text()
    assert text.count("object created: az://az-incoming/in/") == 20
    assert "'malformed': 1" in text
    _assert_few_runs_without_overlap(stack, before, "az://az-incoming")


def test_manual_runs_take_parameters_and_reject_invalid_ones(stack: Stack) -> None:
    folder = stack.work / "manual"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.jpg").write_bytes(jpeg_bytes(distinct_image(300 + i)))
    pool = stack.work / "manual-pool"
    good = json.dumps(config_values(str(folder), str(pool), n_samples=2))
    started = _prefect(
        "deployment", "run", "curate/curate-manual", "--param", f"config={good}", "--watch"
    )
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    assert Datapool(str(pool)).tag_summary()[0]["samples"] == 2
    for bad, field in (
        (config_values(str(folder), str(pool), n_samples=-1), "n_samples"),
        (config_values(str(folder), str(pool)), "n_samples"),  # no stop: neither field set
        ({**config_values(str(folder), str(pool), n_samples=1), "tag": "a b"}, "tag"),
    ):
        rejected = _prefect(
            "deployment", "run", "curate/curate-manual", "--param", f"config={json.dumps(bad)}"
        )
        assert rejected.returncode != 0, bad
        assert field in rejected.stdout + rejected.stderr
        assert "Created flow run" not in rejected.stdout


def test_the_form_shows_the_config_in_sections(stack: Stack) -> None:
    """What the Prefect UI renders: the deployment's parameter schema, from the server."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("curate/curate-manual")
    schema = deployment.parameter_openapi_schema
    assert schema is not None
    definitions = schema["definitions"]
    config = definitions["CurateConfig"]
    assert list(config["properties"]) == [
        "source",
        "datapool",
        "processing",
        "selection",
        "custom_metadata",
        "process_all",
        "tag",
    ]
    assert set(config["required"]) == {"source", "selection"}
    assert {"url", "storage_options", "block", "include", "exclude"} <= set(
        definitions["SourceConfig"]["properties"]
    )
    assert {"url", "storage_options", "block"} <= set(definitions["DatapoolConfig"]["properties"])
    assert {"model", "runner", "device", "threads", "shard_size", "frames", "video_limits"} <= set(
        definitions["ProcessingConfig"]["properties"]
    )
    selection = definitions["SelectionConfig"]
    assert {"n_samples", "min_distance", "seed", "sequence_length", "strategies"} <= set(
        selection["properties"]
    )
    strategy = definitions["Strategy"]["properties"]
    assert strategy["type"]["enum"] == [
        "diversity",
        "weights",
        "threshold",
        "balance",
        "similarity",
        "typicality",
    ]
    assert selection["if"] == {"not": {"required": ["min_distance"]}}
    assert selection["then"] == {"required": ["n_samples"]}
    # No "X or null" choices, which the form shows as "Property is type None".
    assert "null" not in json.dumps(schema)
    assert selection["properties"]["n_samples"]["type"] == "integer"


def test_the_scheduled_deployment_has_its_cron(stack: Stack) -> None:
    shown = _prefect("deployment", "inspect", "curate/curate-scheduled")
    assert shown.returncode == 0, shown.stderr
    assert "0 * * * *" in shown.stdout


def test_watch_starts_curate_only_when_something_is_new(stack: Stack) -> None:
    from coresift.config import build_config
    from flows.watch import watch

    s3 = stack.aws("s3")
    s3.create_bucket(Bucket="watched")
    s3.put_object(Bucket="watched", Key="a.jpg", Body=jpeg_bytes(distinct_image(400)))
    options = {
        "endpoint_url": stack.moto,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    pool = stack.work / "watched-pool"
    values = config_values("s3://watched", str(pool), n_samples=1)
    values["source"]["storage_options"] = options
    config = build_config(values)
    assert watch(config) is not None  # something new: a curate run was started
    _wait_for_objects(pool, "s3://watched/", 1)
    assert watch(config) is None
    assert watch(config) is None  # two polls of an unchanged bucket start nothing


def _finished_run(source: str) -> tuple[Any, list[Any]]:
    """The one curate run whose config names this source, and its task runs."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["curate"])))
        (found,) = [r for r in runs if _config(r).get("source", {}).get("url") == source]
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[found.id]))
        )
        return found, tasks


def test_deploying_without_the_environment_works_and_runs_say_what_is_missing(
    stack: Stack,
) -> None:
    """Last in this module: it replaces the deployments' default parameters."""
    deployed = _prefect(
        "--no-prompt", "deploy", "--all", env={"CORESIFT_PROJECT_DIR": str(servers.ROOT)}
    )
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    sources = []
    for name in ("no-datapool", "relative-datapool"):
        (stack.work / name).mkdir()
        (stack.work / name / "a.jpg").write_bytes(jpeg_bytes(distinct_image(500)))
        sources.append(str(stack.work / name))
    missing = str(stack.work / "no-such-source")
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"source": {"url": sources[0]}, "selection": {"n_samples": 1}},
            "ConfigError: datapool.url: a deployment run needs the datapool's URL in its "
            "parameters; the default ./datapool would land in the worker's working directory",
        ),
        (
            config_values(sources[1], "relative-pool", n_samples=1),
            "ConfigError: datapool.url: 'relative-pool' is relative",
        ),
        (
            config_values(missing, str(stack.work / "pool-x"), n_samples=1),
            f"SourceNotFoundError: source {missing} does not exist",
        ),
    ]
    for config, message in cases:
        started = _prefect(
            "deployment",
            "run",
            "curate/curate-manual",
            "--param",
            f"config={json.dumps(config)}",
            "--watch",
        )
        assert started.returncode != 0
        run, task_runs = _finished_run(config["source"]["url"])
        assert run.state.is_failed() and message in run.state.message, run.state.message
        assert all(t.run_count <= 1 for t in task_runs), "a failure no retry can fix is retried"
    assert not (servers.ROOT / "datapool").exists()
    assert not (servers.ROOT / "relative-pool").exists()
    assert not (stack.work / "pool-x").exists()
