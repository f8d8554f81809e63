"""The embedded video runner process: ``python -m facesearch.service.video_process``.

Started detached by a service without video workers when a job is stored (video_runner.py); it
works the claimable jobs of ``$FACESEARCH_STORE``, else of the embedded store in
``$FACESEARCH_DATA_DIR``, then exits.
"""

from __future__ import annotations

import logging
import os
import sys

from facesearch.service import default_data_dir
from facesearch.service.video_runner import run_runner


def main() -> int:
    """Run the store's jobs; the exit status."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # botocore's debug log would print signed S3 request headers.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    return run_runner(default_data_dir(), os.environ.get("FACESEARCH_STORE") or None)


if __name__ == "__main__":
    sys.exit(main())
