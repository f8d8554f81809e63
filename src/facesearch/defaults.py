"""Defaults every front end shares: the region and account a request acts in when none is given,
and the name of facesearch's one extension header.

One place for them, so the library client, the server, its console and the CLI agree.
"""

from __future__ import annotations

import re

# The region a call acts in when nothing names one (each region has its own collections and
# jobs, as in Rekognition), and where S3 reads point ($FACESEARCH_REGION and the S3 settings
# override it); the AWS CLI's and boto3's usual default.
DEFAULT_REGION = "us-east-1"
# The account of the library client, the embedded CLI and a server's unconfigured keys.
DEFAULT_ACCOUNT_ID = "000000000000"

# An AWS region name: two letters, then one to three parts (us-east-1, us-gov-west-1,
# eu-isoe-west-1).
REGION_NAME = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,3}")
# An AWS account id: twelve digits.
ACCOUNT_ID = re.compile(r"\d{12}")

# facesearch's extension: a running video job's share done (percent) as a response header of
# GetFaceSearch / GetFaceDetection, whose model has no such member (boto3 and the aws CLI ignore
# unknown headers).
PROGRESS_HEADER = "x-facesearch-progress"
