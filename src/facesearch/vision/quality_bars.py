"""The least a face needs to be worth indexing or searching, at four levels (LOW, AUTO, MEDIUM,
HIGH: the QualityFilter levels they implement), and what keeps a face below one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from facesearch.vision.detector import confidence
from facesearch.vision.face import Face


class Shortfall(Enum):
    """One way a face falls short of a bar."""

    POSE = "pose"  # turned or tilted too far
    BRIGHTNESS = "brightness"  # too dark, or blown out (no detail left)
    SHARPNESS = "sharpness"
    CONFIDENCE = "confidence"  # the detector's
    SIZE = "size"  # the box's shorter side, in pixels
    PRESENCE = "presence"  # the landmark network's belief in a face


@dataclass(frozen=True)
class QualityBar:
    """The least a face needs to pass one level."""

    confidence: float  # Confidence (detector.confidence), 0..100
    min_side: float  # shorter side of the bounding box, pixels
    max_yaw: float  # degrees, absolute
    max_pitch: float
    brightness: float  # 0..100, at least ...
    max_brightness: float  # ... and at most (a blown-out face has no detail)
    sharpness: float  # 0..100
    presence: float  # landmark network's belief in a face, 0..1

    def shortfalls(self, face: Face) -> list[Shortfall]:
        """Where ``face`` falls short of this bar, in Shortfall's order; [] = passes."""
        out = []
        if abs(face.pose.yaw) > self.max_yaw or abs(face.pose.pitch) > self.max_pitch:
            out.append(Shortfall.POSE)
        brightness = face.quality.brightness
        if brightness < self.brightness or brightness > self.max_brightness:
            out.append(Shortfall.BRIGHTNESS)
        if face.quality.sharpness < self.sharpness:
            out.append(Shortfall.SHARPNESS)
        if face.confidence < self.confidence:
            out.append(Shortfall.CONFIDENCE)
        if min(face.box_pixels[2], face.box_pixels[3]) < self.min_side:
            out.append(Shortfall.SIZE)
        if face.presence < self.presence:
            out.append(Shortfall.PRESENCE)
        return out


# Bars set on the measured spread of the photo set (docs/vision.md): AUTO keeps every photo of
# people/, LOW drops only what is barely a face, HIGH keeps frontal, well-lit, sharp, big faces.
# The confidence bars are raw detector scores (0.6, the detector's own threshold, to 0.88) on the
# calibrated scale: 67.4, 91.0, 98.0 and 99.4.
QUALITY_BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(confidence(0.60), 16.0, 85.0, 70.0, 5.0, 99.5, 2.0, 0.0),
    "AUTO": QualityBar(confidence(0.70), 20.0, 80.0, 60.0, 10.0, 99.0, 5.0, 0.0),
    "MEDIUM": QualityBar(confidence(0.80), 40.0, 55.0, 40.0, 20.0, 97.0, 35.0, 0.05),
    "HIGH": QualityBar(confidence(0.88), 64.0, 35.0, 25.0, 30.0, 95.0, 60.0, 0.5),
}
