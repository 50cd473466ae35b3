"""Label Studio's brush masks: the bit-packed run-length code of thi.ng's ``rle-pack``, which Label Studio's editor
applies to the RGBA pixels of a region's canvas (``BrushRegion`` -> ``Region2RLE``).

Stream: 32 bits value count, 5 bits word size - 1, four 4-bit run-length field sizes - 1; then blocks of a flag
bit (1: one value repeated, 0: that many literal values), a 2-bit index into the field sizes, the block length
- 1 in that many bits, and the value(s) in word-size bits. Every field is big-endian, most significant bit
first. A pixel belongs to the mask where its alpha (every 4th value) is not 0, as label-studio-converter reads
it: the editor anti-aliases stroke edges, so alpha takes values between 0 and 255."""

from __future__ import annotations

import numpy as np

from ..annotations.images import MAX_PIXELS

RLE_SIZES = (3, 4, 8, 16)  # the run-length field sizes the editor and label-studio-converter write
WORD = 8


class BrushError(ValueError):
    """A brush code that ends early or declares impossible sizes."""


class _Bits:
    """Reads big-endian fields of up to 32 bits at any bit offset of ``data``."""

    def __init__(self, data: bytes):
        self.data, self.pos, self.size = data + bytes(8), 0, len(data) * 8

    def read(self, n: int) -> int:
        if self.pos + n > self.size:
            raise BrushError(f"the code ends at bit {self.size}, inside a field at bit {self.pos}")
        byte, shift = divmod(self.pos, 8)
        window = int.from_bytes(self.data[byte:byte + 8], "big")
        self.pos += n
        return (window >> (64 - shift - n)) & ((1 << n) - 1)

    def read_many(self, count: int, width: int) -> np.ndarray:
        """``count`` fields of ``width`` bits each, at once (a literal block)."""
        end = self.pos + count * width
        if end > self.size:
            raise BrushError(f"the code ends at bit {self.size}, inside a block of {count} values")
        first, last = self.pos // 8, (end + 7) // 8
        bits = np.unpackbits(np.frombuffer(self.data[first:last], np.uint8))[self.pos - first * 8:end - first * 8]
        self.pos = end
        weights = (1 << np.arange(width - 1, -1, -1)).astype(np.int64)
        return bits.reshape(count, width).astype(np.int64) @ weights


def decode(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """The (height, width) boolean mask of a brush code made of ``height * width`` RGBA pixels. The size is checked
    before anything is allocated: a few bytes of code can declare a 30000x30000 canvas (3.6 billion values)."""
    if height * width > MAX_PIXELS:
        raise BrushError(f"a {width}x{height} mask is larger than any image detft reads ({MAX_PIXELS:,} pixels)")
    if not isinstance(rle, (list, bytes)):  # bytes(n) of a number n would allocate n zero bytes
        raise BrushError(f"the code is not a list of byte values (0-255) but {type(rle).__name__}")
    try:
        bits = _Bits(bytes(rle))
    except (TypeError, ValueError):
        raise BrushError("the code is not a list of byte values (0-255)") from None
    num = bits.read(32)
    if num != height * width * 4:
        raise BrushError(f"the code holds {num} values, not the {height * width * 4} of a {width}x{height} RGBA image")
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    values, lengths = [], []
    i = 0
    while i < num:
        repeat = bits.read(1)
        n = bits.read(sizes[bits.read(2)]) + 1
        if repeat:
            values.append(bits.read(word))
            lengths.append(n)
        else:
            values.extend(bits.read_many(n, word).tolist())
            lengths.extend([1] * n)
        i += n
    flat = np.repeat(np.asarray(values, np.uint8 if word <= 8 else np.uint32), lengths)[:num]
    return flat[3::4].reshape(height, width) > 0


def encode(mask: np.ndarray) -> list[int]:
    """``mask`` as the editor would store a white region: every channel of a mask pixel 255, the rest 0 (the shape
    label-studio-converter's ``mask2rle`` writes and Label Studio imports as a brush region)."""
    return encode_values(np.repeat(np.asarray(mask, bool).ravel().astype(np.uint8) * 255, 4))


def encode_values(flat: np.ndarray) -> list[int]:
    """Byte values (RGBA pixels, flattened) as a brush code: each run of one value a block, a lone value a literal
    block of one."""
    flat = np.asarray(flat, np.uint8)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    runs = np.diff(np.concatenate([starts, [flat.size]]))
    fields = [f"{flat.size:032b}", f"{WORD - 1:05b}", *(f"{s - 1:04b}" for s in RLE_SIZES)]
    for start, run in zip(starts.tolist(), runs.tolist()):
        value = f"{int(flat[start]):08b}"
        while run > 0:
            n = min(run, 1 << RLE_SIZES[-1])
            index = next(k for k, s in enumerate(RLE_SIZES) if n <= 1 << s)
            fields.append(f"{1 if n > 1 else 0}{index:02b}{n - 1:0{RLE_SIZES[index]}b}{value}")
            run -= n
    stream = "".join(fields)
    stream += "0" * (-len(stream) % 8)
    return list(int(stream, 2).to_bytes(len(stream) // 8, "big"))
