"""The photo set's manifest: which rows are deliberate near-copies of another photo."""

from __future__ import annotations

# Manifest notes of the deliberate near-copies (resized, cropped, mirrored): not independent photos.
NEAR_COPY_MARKERS = ("variant of", "mirror image of")


def is_near_copy(row: dict[str, str]) -> bool:
    """Whether a manifest row is a deliberate near-copy of another photo."""
    return any(marker in row["notes"] for marker in NEAR_COPY_MARKERS)
