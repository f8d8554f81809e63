"""facesearch: a self-hosted face search service that speaks Amazon Rekognition's API.

``facesearch.client(data_dir=...)`` gives an in-process client with boto3's interface, over the
embedded store in ``data_dir`` or, with ``store="postgresql://..."``, over a shared database.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_rekognition import RekognitionClient

__version__ = "0.1.0"


def client(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    store: str | None = None,
    store_replicas: Sequence[str] | None = None,
    account_id: str | None = None,
    region_name: str | None = None,
    search: str | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> RekognitionClient:
    """An in-process, boto3-shaped Rekognition client over ``store`` (a ``postgresql://`` URL),
    else ``$FACESEARCH_STORE``, else the embedded store in ``data_dir``. As in Rekognition, each
    region has its own collections: ``region_name`` (else ``$FACESEARCH_REGION``, else
    us-east-1) says whose. Searches and reads may go to ``store_replicas``, streaming replicas
    of the PostgreSQL store (default: those in ``$FACESEARCH_STORE_REPLICAS``).
    ``search="database"`` (or ``$FACESEARCH_SEARCH``) searches inside PostgreSQL, holding no
    index in the process. Its search indexes are kept on local disk in ``index_dir``, else
    ``$FACESEARCH_INDEX_DIR``, else ``indexes`` in ``data_dir`` (the embedded store) or a folder
    of the store's in ~/.cache/facesearch/indexes."""
    from facesearch.defaults import DEFAULT_ACCOUNT_ID
    from facesearch.inprocess import client as make_client

    return make_client(
        data_dir,
        store=store,
        store_replicas=store_replicas,
        account_id=account_id or DEFAULT_ACCOUNT_ID,
        region_name=region_name,
        search=search,
        index_dir=index_dir,
    )
