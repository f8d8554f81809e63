"""Rekognition on the wire: AWS JSON 1.1 bodies and SigV4 signatures.

Below both the server and the CLI (which answers its botocore client in process with the same
bytes a server sends): :mod:`~facesearch.wire.json11` reads and writes request and response
bodies, :mod:`~facesearch.wire.sigv4` checks signatures, :mod:`~facesearch.wire.keys` holds the
documented local-only key. Nothing here knows the store, the models or HTTP serving.
"""
