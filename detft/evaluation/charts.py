"""Line charts and a heat map drawn with Pillow, for the figures every evaluation writes (PR and F1 curves, the
confusion matrix): matplotlib's import and text layout cost an evaluation over a second, more than the matching
behind the figures; these take milliseconds. Training curves and benchmark plots, drawn once per run, keep
matplotlib (:func:`detft.evaluation.plots.figure`)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..util.output import atomic_write_bytes

# matplotlib's tab20, so curves look as they did; ColorBrewer's Blues for the heat map
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229)]
BLUES = np.array([(247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
                  (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107)], float)
WIDTH, HEIGHT = 840, 600
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 56


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size)


def blues(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as RGB on the Blues ramp (uint8, shape + (3,))."""
    pos = np.clip(values, 0, 1) * (len(BLUES) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(BLUES) - 2)
    frac = (pos - lo)[..., None]
    return (BLUES[lo] * (1 - frac) + BLUES[lo + 1] * frac).round().astype(np.uint8)


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    width: int = 1
    colour: tuple[int, int, int] | None = None
    marks: list[tuple[float, float]] = field(default_factory=list)


def save_png(image: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def line_chart(series: list[Series], path: Path, title: str, xlabel: str, ylabel: str,
               legend: str = "lower left") -> None:
    """Curves on [0, 1] x [0, 1.02] with a grid, tick labels every 0.2, a legend in a corner, each mark a dot."""
    page = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(page)
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    small, normal = font(11), font(13)

    def at(x: float, y: float) -> tuple[float, float]:
        return LEFT + x * w, TOP + h - y / 1.02 * h

    for v in np.linspace(0, 1, 6):
        draw.line([at(v, 0), at(v, 1.02)], fill=(232, 232, 232))
        draw.line([at(0, v), at(1, v)], fill=(232, 232, 232))
        draw.text((at(v, 0)[0], TOP + h + 6), f"{v:.1f}", fill="black", font=small, anchor="mt")
        draw.text((LEFT - 6, at(0, v)[1]), f"{v:.1f}", fill="black", font=small, anchor="rm")
    draw.rectangle([LEFT, TOP, LEFT + w, TOP + h], outline="black")
    draw.text((LEFT + w / 2, 14), title, fill="black", font=normal, anchor="mm")
    draw.text((LEFT + w / 2, HEIGHT - 16), xlabel, fill="black", font=normal, anchor="mm")
    tag = Image.new("L", (h, 18), 0)
    ImageDraw.Draw(tag).text((h / 2, 9), ylabel, fill=255, font=normal, anchor="mm")
    page.paste(Image.new("RGB", (18, h), "black"), (6, TOP), tag.rotate(90, expand=True))
    for k, s in enumerate(series):
        colour = s.colour or PALETTE[k % len(PALETTE)]
        ok = np.isfinite(s.x) & np.isfinite(s.y)
        points = [at(float(x), float(y)) for x, y in zip(np.clip(s.x[ok], 0, 1), np.clip(s.y[ok], 0, 1.02))]
        if len(points) > 1:
            draw.line(points, fill=colour, width=s.width, joint="curve")
        for x, y in s.marks:
            cx, cy = at(x, y)
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour)
    rows = [(s.label, s.colour or PALETTE[k % len(PALETTE)], s.width) for k, s in enumerate(series)]
    box_w = max(int(small.getlength(label)) for label, _, _ in rows) + 44
    box_h = 16 * len(rows) + 8
    x0 = LEFT + 8 if legend == "lower left" else LEFT + w - 8 - box_w
    y0 = TOP + h - 8 - box_h if legend == "lower left" else TOP + 8
    draw.rectangle([x0, y0, x0 + box_w, y0 + box_h], fill="white", outline=(200, 200, 200))
    for i, (label, colour, width) in enumerate(rows):
        y = y0 + 12 + 16 * i
        draw.line([(x0 + 6, y), (x0 + 30, y)], fill=colour, width=max(2, width))
        draw.text((x0 + 36, y), label, fill="black", font=small, anchor="lm")
    save_png(page, path)


def _vertical(page: Image.Image, text: str, face: ImageFont.FreeTypeFont, at: tuple[int, int],
              box: tuple[int, int], anchor: str) -> None:
    """``text`` turned to read bottom to top, laid out in a ``box`` (length, height) before turning, pasted with
    its top-left corner at ``at``."""
    tag = Image.new("L", box, 0)
    ImageDraw.Draw(tag).text((box[0] - 4 if anchor == "rm" else box[0] // 2, box[1] // 2), text, fill=255,
                             font=face, anchor=anchor)
    tag = tag.rotate(90, expand=True)
    page.paste(Image.new("RGB", tag.size, "black"), at, tag)


def heat_map(matrix: np.ndarray, shade: np.ndarray, labels: list[str], path: Path, title: str,
             rows_name: str, columns_name: str, numbers: bool) -> None:
    """A square matrix, each cell coloured by ``shade`` (0..1), every row and column named, the counts written in
    the cells with ``numbers``."""
    n = len(labels)
    cell = int(np.clip(1200 // n, 10, 40))
    face, small = font(max(8, min(13, cell - 2))), font(max(9, min(12, cell // 3)))
    width = max(int(face.getlength(label)) for label in labels) + 8
    left, top = width + 24, 40
    page = Image.new("RGB", (left + n * cell + 100, top + n * cell + width + 24), "white")
    page.paste(Image.fromarray(blues(shade)).resize((n * cell, n * cell), Image.NEAREST), (left, top))
    draw = ImageDraw.Draw(page)
    draw.text((left, 10), title, fill="black", font=face)
    for k, label in enumerate(labels):
        y = top + k * cell + cell // 2
        draw.text((left - 4, y), label, fill="black", font=face, anchor="rm")
        _vertical(page, label, face, (left + k * cell, top + n * cell + 4), (width, cell), "rm")
        if numbers:
            for j in range(n):
                if matrix[k, j]:
                    draw.text((left + j * cell + cell // 2, y), str(matrix[k, j]), font=small, anchor="mm",
                              fill="white" if shade[k, j] > 0.5 else "black")
    _vertical(page, rows_name, small, (2, top), (n * cell, 16), "mm")
    draw.text((left + n * cell // 2, page.height - 12), columns_name, fill="black", font=small, anchor="mm")
    x = left + n * cell + 16
    page.paste(Image.fromarray(np.repeat(blues(np.linspace(1, 0, n * cell))[:, None], 14, 1)), (x, top))
    draw.text((x + 18, top), "1", fill="black", font=small, anchor="lt")
    draw.text((x + 18, top + n * cell), "0", fill="black", font=small, anchor="lb")
    save_png(page, path)
