"""What a video file's own header says, where OpenCV's VideoCapture cannot tell: the container
(MP4 and MOV, ISO base media / QuickTime boxes, or another format by its signature), whether the
file is cut short, the video track's duration and the H.264 stream's colour range.

Only the boxes on the way to the video track's sample description are read (moov, trak, mdia,
minf, stbl, stsd, with hdlr and mdhd beside them), seeking past the rest: a few kilobytes of a
file of any size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# FFmpeg's name for its mov demuxer, which reads MP4 and MOV alike (what Rekognition reports).
QUICKTIME = "QuickTime / MOV"
# Top-level box types an ISO base media or QuickTime file may start with.
_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
# Other containers by their leading bytes, with FFmpeg's names, for the error message.
_SIGNATURES = (
    (b"\x1a\x45\xdf\xa3", "Matroska / WebM"),
    (b"OggS", "Ogg"),
    (b"FLV", "FLV (Flash Video)"),
    (b"\x00\x00\x01\xba", "MPEG-PS (MPEG-2 Program Stream)"),
    (b"GIF8", "CompuServe Graphics Interchange Format (GIF)"),
)
_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_SAMPLE_ENTRY_HEADER = 78  # bytes of a VisualSampleEntry before its child boxes
_LEAF_LIMIT = 1 << 20  # an hdlr, mdhd or stsd larger than this is not one worth reading
# H.264 profiles whose sequence parameter set carries chroma format and scaling matrices.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass(frozen=True)
class Container:
    """The container of a video file as its header tells it."""

    format: str | None  # QUICKTIME for MP4/MOV, None for any other container
    description: str  # the container's name, for messages ("Matroska / WebM")
    truncated: bool  # a box runs past the end of the file, or there is no moov box
    duration_ms: int | None  # the video track's, from its media header
    full_range: bool  # the H.264 stream's video_full_range_flag (or the colr box's)


def read_container(path: str) -> Container:
    """The container of ``path`` (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 8 or head[4:8] not in _FIRST_BOXES:
            return Container(None, _describe(head), False, None, False)
        f.seek(0)
        truncated, moov = False, None
        for kind, start, end in _boxes(f, 0, size):
            if end > size:
                truncated = True
                break
            if kind == b"moov":
                moov = (start, end)
        if moov is None:
            return Container(QUICKTIME, QUICKTIME, True, None, False)
        track = _video_track(f, *moov)
    duration_ms, full_range = track if track is not None else (None, False)
    return Container(QUICKTIME, QUICKTIME, truncated, duration_ms, full_range)


def _describe(head: bytes) -> str:
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI (Audio Video Interleaved)"
    if head[:1] == b"\x47":
        return "MPEG-TS (MPEG-2 Transport Stream)"
    return "not a video format this service recognises"


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes between ``start`` and ``end``; a box's end
    may lie past ``end`` (a file cut short), which the caller checks."""
    position = start
    while position + 8 <= end:
        f.seek(position)
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = position + 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                yield kind, payload, end + 1
                return
            size, payload = struct.unpack(">Q", large)[0], position + 16
        elif size == 0:
            size = end - position
        if size < payload - position:
            yield kind, payload, end + 1  # a size smaller than its own header: damaged
            return
        yield kind, payload, position + size
        position += size


def _video_track(f: BinaryIO, start: int, end: int) -> tuple[int | None, bool] | None:
    """(duration in ms, full range) of the first video track among moov's traks."""
    for kind, payload, box_end in _boxes(f, start, end):
        if kind == b"trak":
            media = _media(f, payload, min(box_end, end))
            if media is not None:
                return media
    return None


def _media(f: BinaryIO, start: int, end: int) -> tuple[int | None, bool] | None:
    """A trak's duration and colour range if it is a video track, else None."""
    handler, duration_ms, full_range = None, None, False
    stack = [(start, end)]
    while stack:
        box_start, box_end = stack.pop()
        for kind, payload, child_end in _boxes(f, box_start, box_end):
            child_end = min(child_end, box_end)
            if kind in _CONTAINER_BOXES:
                stack.append((payload, child_end))
            elif kind in (b"hdlr", b"mdhd", b"stsd") and child_end - payload <= _LEAF_LIMIT:
                f.seek(payload)
                data = f.read(child_end - payload)
                if kind == b"hdlr" and len(data) >= 12:
                    handler = data[8:12]
                elif kind == b"mdhd":
                    duration_ms = _duration_ms(data)
                elif kind == b"stsd":
                    full_range = _full_range(data)
    return (duration_ms, full_range) if handler == b"vide" else None


def _duration_ms(mdhd: bytes) -> int | None:
    if mdhd[:1] == b"\x01" and len(mdhd) >= 32:
        timescale, duration = struct.unpack(">IQ", mdhd[20:32])
    elif len(mdhd) >= 20:
        timescale, duration = struct.unpack(">II", mdhd[12:20])
    else:
        return None
    return round(duration * 1000 / timescale) if timescale else None


def _full_range(stsd: bytes) -> bool:
    """The first sample entry's colour range: its SPS's video_full_range_flag, else its colr
    box's (nclx), else limited (video's default)."""
    if len(stsd) < 16:
        return False
    entry_size = struct.unpack(">I", stsd[8:12])[0]
    entry = stsd[16 : 8 + entry_size]
    children = entry[_SAMPLE_ENTRY_HEADER:]
    sps_range, colr_range = None, None
    position = 0
    while position + 8 <= len(children):
        size, kind = struct.unpack(">I4s", children[position : position + 8])
        if size < 8:
            break
        body = children[position + 8 : position + size]
        if kind == b"avcC":
            sps_range = _avcc_full_range(body)
        elif kind == b"colr" and body[:4] == b"nclx" and len(body) >= 11:
            colr_range = bool(body[10] & 0x80)
        position += size
    if sps_range is not None:
        return sps_range
    return bool(colr_range)


def _avcc_full_range(avcc: bytes) -> bool | None:
    """video_full_range_flag of the avcC box's first SPS (None where it does not say)."""
    if len(avcc) < 8 or avcc[5] & 0x1F == 0:
        return None
    length = struct.unpack(">H", avcc[6:8])[0]
    nal = avcc[8 : 8 + length]
    if len(nal) < 4 or nal[0] & 0x1F != 7:
        return None
    try:
        return sps_full_range(nal[1:])
    except IndexError:
        return None  # an SPS cut short: it does not say


class _Bits:
    """An H.264 RBSP read bit by bit (emulation prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self._position = 0

    def bit(self) -> int:
        byte = self._data[self._position >> 3]  # IndexError at the end
        value = (byte >> (7 - (self._position & 7))) & 1
        self._position += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def sps_full_range(rbsp: bytes) -> bool | None:
    """video_full_range_flag of an H.264 sequence parameter set (after the NAL header byte),
    None where it carries no video signal type (H.264 section 7.3.2.1.1 and annex E.1.1).
    IndexError if it is cut short."""
    bits = _Bits(rbsp)
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    order_type = bits.ue()
    if order_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif order_type == 1:
        bits.bit()  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    bits.ue()  # pic_width_in_mbs_minus1
    bits.ue()  # pic_height_in_map_units_minus1
    if not bits.bit():  # frame_mbs_only_flag
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    if bits.bit():  # frame_cropping_flag
        for _ in range(4):
            bits.ue()
    if not bits.bit():  # vui_parameters_present_flag
        return None
    if bits.bit() and bits.bits(8) == 255:  # aspect_ratio_info_present_flag, Extended_SAR
        bits.bits(32)
    if bits.bit():  # overscan_info_present_flag
        bits.bit()
    if not bits.bit():  # video_signal_type_present_flag
        return None
    bits.bits(3)  # video_format
    return bool(bits.bit())


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following != 0:
            following = (last + bits.se() + 256) % 256
        last = following or last
