"""Credentials from Prefect's typed blocks (prefect-aws, prefect-gcp, prefect-azure), saved to
the test Prefect server and used against the S3 and Azure test servers with no credential in
the environment; the generic Secret block keeps working (tests/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import pytest
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from prefect_azure import AzureBlobStorageCredentials
from prefect_gcp import GcpCredentials
from pydantic import SecretStr

from coresift.errors import ConfigError
from coresift.testing.media import jpeg_bytes, photo
from coresift.testing.servers import AZURITE_KEY, S3_CREDENTIALS
from tasks.credentials import block_options, typed_block_options
from tests.helpers import run

S3_VARIABLES = (*S3_CREDENTIALS, "AWS_ENDPOINT_URL")
AZURE_VARIABLES = ("AZURE_STORAGE_CONNECTION_STRING",)


def _service_account() -> dict[str, str]:
    """A well-formed service account key (google-auth checks the key when the block loads)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "type": "service_account",
        "project_id": "p",
        "client_email": "coresift@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.example/token",
        "private_key": pem.decode(),
    }


def test_typed_blocks_become_fsspec_options() -> None:
    aws = AwsCredentials(
        aws_access_key_id="id",
        aws_secret_access_key=SecretStr("s3-secret"),
        region_name="eu-west-1",
        aws_client_parameters=AwsClientParameters(endpoint_url="http://127.0.0.1:9"),
    )
    assert typed_block_options(aws) == {
        "key": "id",
        "secret": "s3-secret",
        "endpoint_url": "http://127.0.0.1:9",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    info = _service_account()
    gcp = GcpCredentials(service_account_info=info, project="p")
    assert typed_block_options(gcp) == {"token": info, "project": "p"}
    azure = AzureBlobStorageCredentials(account_url="https://acct.blob.core.windows.net")
    assert typed_block_options(azure) == {"account_name": "acct", "anon": False}


def test_an_unknown_block_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match="block: 'redis/x' is not a Secret or one of the types"):
        block_options("redis/x")


def _images(url: str, count: int) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    for i in range(count):
        fs.pipe_file(f"{root}/{i}.jpg", jpeg_bytes(photo(i)))


def _run_with_block(
    workdir: Path, source: str, pool: str, block: str | None, unset: tuple[str, ...]
) -> Any:
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "source": {"url": source, "block": block},
                "datapool": {"url": pool, "block": block},
                "selection": {"n_samples": 2},
            }
        )
    )
    return run("coresift", "run", "--config", str(config), "--json", check=False, unset=unset)


def _assert_secret_kept(secret: str, result: Any, pool: str) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["samples_selected"] == 2
    assert secret not in result.stdout + result.stderr
    fs, root = fsspec.core.url_to_fs(pool)
    for path in fs.find(root):
        assert secret.encode() not in fs.cat_file(path), path


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_an_aws_credentials_block_reaches_s3_without_environment_credentials(
    s3_server: str, s3_bucket: str, workdir: Path
) -> None:
    _images(f"s3://{s3_bucket}/in", 4)
    source, pool = f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/pool"
    block = AwsCredentials(
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SecretStr(S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        aws_client_parameters=AwsClientParameters(endpoint_url=s3_server),
    )
    block.save("coresift-test-s3", overwrite=True)

    without = _run_with_block(workdir, source, pool, None, tuple(S3_CREDENTIALS))
    assert "Unable to locate credentials" in without.stderr

    name = "aws-credentials/coresift-test-s3"
    result = _run_with_block(workdir, source, pool, name, S3_VARIABLES)
    _assert_secret_kept(S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], result, pool)

    tag = json.loads(result.stdout.strip().splitlines()[-1])["tag"]
    export = ["export", "--datapool", pool, "--block", name, "--tag", tag]
    assert len(run("coresift", *export, unset=S3_VARIABLES).stdout.splitlines()) == 2


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_an_azure_credentials_block_reaches_azurite_without_environment_credentials(
    azurite_server: str, azure_container: str, workdir: Path
) -> None:
    _images(f"az://{azure_container}/in", 4)
    source, pool = f"az://{azure_container}/in", f"az://{azure_container}/pool"
    AzureBlobStorageCredentials(connection_string=SecretStr(azurite_server)).save(
        "coresift-test-azure", overwrite=True
    )

    without = _run_with_block(workdir, source, pool, None, AZURE_VARIABLES)
    assert "Must provide either a connection_string or account_name" in without.stderr

    block = "azure-blob-storage-credentials/coresift-test-azure"
    result = _run_with_block(workdir, source, pool, block, AZURE_VARIABLES)
    _assert_secret_kept(AZURITE_KEY, result, pool)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_missing_typed_block_fails_before_any_work(workdir: Path) -> None:
    source = workdir / "in"
    source.mkdir()
    result = _run_with_block(
        workdir, str(source), str(workdir / "pool"), "aws-credentials/nope", ()
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "block: no aws-credentials block named 'nope'" in result.stderr
    assert not (workdir / "pool").exists()
