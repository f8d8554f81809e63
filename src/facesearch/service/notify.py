"""A stored-video job's completion message, published to its NotificationChannel's SNS topic.

The message is Rekognition's (JobId, Status, API, JobTag, Message, Timestamp in ms, Video's
S3ObjectName and S3Bucket), published through botocore to the SNS endpoint that
``FACESEARCH_SNS_ENDPOINT_URL`` names, else the one the usual AWS configuration gives (e.g.
``AWS_ENDPOINT_URL_SNS``); in the topic ARN's region unless ``FACESEARCH_SNS_REGION`` says;
as ``FACESEARCH_SNS_ACCESS_KEY_ID`` / ``FACESEARCH_SNS_SECRET_ACCESS_KEY``, else botocore's usual
credentials. The channel's RoleArn is accepted and not used: facesearch publishes as itself.
A message that cannot be published is logged; the job's outcome stays as it is.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from facesearch.store.jobs import JobRecord

log = logging.getLogger("facesearch.video")

_clients: dict[tuple[str | None, str], Any] = {}
_lock = threading.Lock()


def completion_message(job: JobRecord) -> dict[str, Any]:
    """Rekognition's completion message of an ended job."""
    s3object = job.params["Video"]["S3Object"]
    message: dict[str, Any] = {
        "JobId": job.job_id,
        "Status": job.status,
        "API": job.api,
        "Message": job.status_message or "",
        "Timestamp": round((job.finished_at or 0) * 1000),
        "Video": {"S3ObjectName": s3object["Name"], "S3Bucket": s3object["Bucket"]},
    }
    if "JobTag" in job.params:
        message["JobTag"] = job.params["JobTag"]
    return message


def _client(region: str) -> Any:
    endpoint = os.environ.get("FACESEARCH_SNS_ENDPOINT_URL") or None
    with _lock:
        if (endpoint, region) not in _clients:
            import botocore.session

            key_id = os.environ.get("FACESEARCH_SNS_ACCESS_KEY_ID") or None
            secret = os.environ.get("FACESEARCH_SNS_SECRET_ACCESS_KEY") or None
            _clients[endpoint, region] = botocore.session.get_session().create_client(
                "sns",
                region_name=region,
                endpoint_url=endpoint,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret if key_id else None,
            )
        return _clients[endpoint, region]


def notify(job: JobRecord) -> bool:
    """Publish an ended job's completion message if it asked for one; whether it was sent."""
    channel = job.params.get("NotificationChannel")
    if not channel:
        return False
    topic = channel["SNSTopicArn"]
    parts = topic.split(":")
    region = os.environ.get("FACESEARCH_SNS_REGION") or (parts[3] if len(parts) > 3 else "")
    try:
        _client(region or "us-east-1").publish(
            TopicArn=topic, Message=json.dumps(completion_message(job))
        )
        return True
    except Exception as error:  # botocore's errors, a bad endpoint: the job's result stands
        log.warning(
            "video job %s: cannot publish to %s: %s", job.job_id, topic, type(error).__name__
        )
        return False
