"""Deploy files, checked offline: compose files, Chalice config, CloudFormation template."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from chalicelib.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
KNOWN = {s.name for s in SETTINGS} | {
    "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}


class _CfnLoader(yaml.SafeLoader):
    pass


for tag in ("!Ref", "!GetAtt", "!Sub"):
    _CfnLoader.add_constructor(tag, lambda loader, node: loader.construct_scalar(node))


@pytest.mark.parametrize("name", ["minio-compose.yml", "localstack-compose.yml"])
def test_compose_file_runs_the_collector_against_its_s3(name: str) -> None:
    compose = yaml.safe_load((ROOT / name).read_text())
    collector = compose["services"]["collector"]
    assert collector["build"] == "."
    env = collector["environment"]
    assert set(env) <= KNOWN, set(env) - KNOWN
    endpoint = env["AWS_ENDPOINT_URL_S3"]
    host = re.match(r"http://([^:]+):\d+", endpoint)[1]
    assert host in compose["services"], f"{endpoint} names no service"
    assert env["REPORTS_BUCKET"] == "crash-reports"
    assert "8080:8080" in collector["ports"]
    assert "127.0.0.1:8081:8081" in collector["ports"]  # the viewer is not published openly
    for dependency in collector["depends_on"]:
        assert dependency in compose["services"]
    # docker stop must let the drain finish before its SIGKILL (docs/running.md)
    from chalicelib import config, localrun

    drain = config.Config.from_env({}).storage_retry_seconds + localrun.DRAIN_MARGIN_SECONDS
    assert int(collector["stop_grace_period"].removesuffix("s")) > drain
    for volume in compose["services"].get("localstack", {}).get("volumes", []):
        assert (ROOT / volume.split(":")[0]).exists()


def test_dockerfile_serves_against_external_s3() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '"--external-s3"' in text and "requirements.txt" in text


def test_chalice_config_uses_known_settings_and_a_least_privilege_policy() -> None:
    cfg = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert set(cfg["environment_variables"]) <= KNOWN
    stage = cfg["stages"]["dev"]
    policy = json.loads((ROOT / ".chalice" / stage["iam_policy_file"]).read_text())
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    assert not any(a.endswith("*") and a.startswith("s3") for a in actions)
    assert stage["lambda_functions"]["prune"]["lambda_timeout"] == 900


def test_the_aws_stage_answers_a_failing_bucket_before_api_gateway_does() -> None:
    """The stage's budget and S3 timeouts pass the same check the functions run at start."""
    from chalicelib.config import GATEWAY_SECONDS, Config

    cfg = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = {**cfg["environment_variables"], "AWS_LAMBDA_FUNCTION_NAME": "crash-collector-dev"}
    settings = Config.from_env(env)
    assert settings.storage_seconds == 11 + 2 + 1 + 10
    assert settings.answer_seconds < GATEWAY_SECONDS
    assert settings.orphan_grace_seconds >= settings.orphan_floor_seconds
    assert cfg["stages"]["dev"]["lambda_timeout"] > settings.answer_seconds


def test_bucket_template_blocks_public_access() -> None:
    template = yaml.load((ROOT / "infra" / "bucket.yaml").read_text(), Loader=_CfnLoader)
    bucket = template["Resources"]["ReportsBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())


def test_chalice_package_wires_processing_to_the_bucket_event(tmp_path: Path) -> None:
    """CloudFormation cannot add notifications to an existing bucket, so the package is
    Terraform's; it must hold the processing function, its trigger and its budget."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    chalice = Path(sys.executable).with_name("chalice")
    subprocess.run(
        [str(chalice), "package", "--pkg-format", "terraform", str(tmp_path / "out")],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )
    resources = json.loads((tmp_path / "out" / "chalice.tf.json").read_text())["resource"]
    function = resources["aws_lambda_function"]["process_crash"]
    assert function["handler"] == "app.process_crash"
    assert function["timeout"] == 300
    assert int(function["environment"]["variables"]["PROCESSING_TIMEOUT_SECONDS"]) < 300
    (notification,) = resources["aws_s3_bucket_notification"].values()
    triggers = {t["lambda_function_arn"].split(".")[1]: t for t in notification["lambda_function"]}
    assert set(triggers) == {"process_crash", "reprocess_for_symbols"}
    for name, prefix, suffix in [("process_crash", "reports/", ".json"),
                                 ("reprocess_for_symbols", "symbols/", ".sym")]:
        assert triggers[name]["events"] == ["s3:ObjectCreated:*"]
        assert (triggers[name]["filter_prefix"], triggers[name]["filter_suffix"]) == (
            prefix, suffix)
    assert resources["aws_lambda_function"]["reprocess_for_symbols"]["timeout"] == 900
    # The same least-privilege policy as the other functions: nothing new is needed.
    policy = json.loads(resources["aws_iam_role_policy"]["process_crash_role"]["policy"])
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert actions <= {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket",
                       "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
