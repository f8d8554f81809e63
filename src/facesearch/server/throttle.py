"""Load limits: request rates per access key, as Rekognition's per-account TPS quotas set them,
and the depth of the image operations' queue.

Each key has a token bucket: ``max_tps`` tokens a second, holding up to one second's worth, so a
client may burst up to its rate and no further. A request over the rate is refused at once with
ProvisionedThroughputExceededException, which botocore's retry modes back off from and retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from facesearch.errors import RekognitionError
from facesearch.server.auth import AccessKey

# Image operations that may wait for an analysis thread, beyond those running (App.call); past
# it they get ThrottlingException at once instead of piling up memory and latency.
DEFAULT_MAX_QUEUE = 16


class RateLimiter:
    """Token buckets by access key id; ``default_tps`` (None: unlimited) for keys without their
    own ``max_tps``. Thread-safe."""

    def __init__(
        self, default_tps: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.default_tps = default_tps
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)

    def admit(self, key: AccessKey) -> None:
        """Take one request's token for ``key``, or raise ProvisionedThroughputExceededException."""
        rate = key.max_tps if key.max_tps is not None else self.default_tps
        if rate is None:
            return
        capacity = max(rate, 1.0)
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key.access_key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[key.access_key_id] = (tokens, now)
                raise RekognitionError(
                    "ProvisionedThroughputExceededException", "Provisioned Rate exceeded."
                )
            self._buckets[key.access_key_id] = (tokens - 1.0, now)
