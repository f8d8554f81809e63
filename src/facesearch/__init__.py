"""facesearch: a self-hosted face search service that speaks Amazon Rekognition's API.

``facesearch.client(data_dir=...)`` gives an in-process client with boto3's interface, over the
embedded store in ``data_dir`` or, with ``store="postgresql://..."``, over a shared database.
"""

from __future__ import annotations

__version__ = "0.1.0"


def client(data_dir=None, *, store=None, account_id=None):  # type: ignore[no-untyped-def]
    """An in-process, boto3-shaped Rekognition client over ``store`` (a ``postgresql://`` URL),
    else ``$FACESEARCH_STORE``, else the embedded store in ``data_dir``."""
    from facesearch.defaults import DEFAULT_ACCOUNT_ID
    from facesearch.inprocess import client as make_client

    return make_client(data_dir, store=store, account_id=account_id or DEFAULT_ACCOUNT_ID)
