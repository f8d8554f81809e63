"""Collections made before regions were kept apart land in the region their ARN names."""

from __future__ import annotations

import psycopg

from facesearch.store.postgres import _MIGRATIONS, SCHEMA, PostgresStore
from facesearch.store.sql import split_statements

ARN = "arn:aws:rekognition:eu-west-1:000000000000:collection/dublin"


def test_a_postgresql_schema_before_regions_is_migrated(postgres) -> None:
    url = postgres.new_database()
    # The schema of the release before (the migrations before regions) with its rows.
    before = next(n for n, script in enumerate(_MIGRATIONS) if "ADD COLUMN region" in script)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        for script in _MIGRATIONS[:before]:
            for statement in split_statements(script):
                conn.execute(statement)
        conn.execute(f"CREATE TABLE {SCHEMA}.schema_version (version INT)")
        conn.execute(f"INSERT INTO {SCHEMA}.schema_version VALUES ({before})")
        conn.execute(
            f"INSERT INTO {SCHEMA}.collections (account_id, collection_id, arn,"
            " face_model_version, created_at) VALUES ('000000000000', 'dublin', %s, '1', 0),"
            " ('000000000000', 'old', 'arn:old', '1', 0)",
            (ARN,),
        )
        conn.execute(
            f"INSERT INTO {SCHEMA}.idempotency (account_id, operation, token, request_hash,"
            " response, created_at) VALUES ('000000000000', 'CreateUser', 't', 'h', '{}',"
            " extract(epoch from now()))"
        )
    store = PostgresStore(url)
    try:
        assert store.get_collection("000000000000", "us-east-1", "dublin") is None
        dublin = store.get_collection("000000000000", "eu-west-1", "dublin")
        assert dublin is not None and dublin.arn == ARN
        assert store.get_collection("000000000000", "us-east-1", "old") is not None
        # Tokens of before are the default region's; the same id may now exist in two regions.
        assert store.get_idempotency("000000000000", "us-east-1", "CreateUser", "t") is not None
        assert store.get_idempotency("000000000000", "eu-west-1", "CreateUser", "t") is None
        assert store.create_collection("000000000000", "us-east-1", "dublin", "a", "1", {})
    finally:
        store.close()
