"""Attention weights as a PNG heatmap, written with zlib alone (no plotting library).

Rows are target tokens (top to bottom), columns source tokens (left to right); white is 0 and
dark blue is 1, with a light grid between cells. The tokens themselves are stored in the
PNG's text chunks ("Source", "Target"); `charrnn beam --show-attention` draws a labelled
version in the terminal.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

LOW = np.array([255, 255, 255], dtype=np.float64)  # weight 0: white
HIGH = np.array([8, 48, 107], dtype=np.float64)  # weight 1: dark blue
GRID = np.array([220, 220, 220], dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def color(weight: float) -> tuple[int, int, int]:
    """The RGB colour of a weight in [0, 1] (also used by the terminal view)."""
    w = min(max(float(weight), 0.0), 1.0)
    return tuple(int(round(c)) for c in LOW + (HIGH - LOW) * w)


def png(weights: np.ndarray, *, cell: int = 16, text: dict[str, str] | None = None) -> bytes:
    """A PNG image of `weights` (rows x cols, values in [0, 1])."""
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0)
    rows, cols = weights.shape
    pixels = LOW + (HIGH - LOW) * weights[:, :, None]  # (rows, cols, 3)
    image = np.repeat(np.repeat(pixels, cell, axis=0), cell, axis=1).round().astype(np.uint8)
    image[::cell, :, :] = GRID
    image[:, ::cell, :] = GRID
    height, width = image.shape[:2]
    scanlines = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], 1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    chunks = [_chunk(b"IHDR", header)]
    for key, value in (text or {}).items():
        chunks.append(_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode()))
    chunks.append(_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9)))
    chunks.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)
