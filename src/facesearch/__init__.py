"""facesearch: a self-hosted face search service that speaks Amazon Rekognition's API."""

from __future__ import annotations

__version__ = "0.1.0"
