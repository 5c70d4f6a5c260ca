"""The finder's line rules for text over anatomy (issue 10, red team 5; tests/test_redteam5.py runs
them end to end on real images): a joined block of label lines cut into glyph rows
(``_row_bands``), a busy line read only when stacked on a line read as text (``_stacked_lines``),
an identifying box grown along its line over soft glyph rows (``_soft_line``). Here their bounds,
on stroke masks and top-hats drawn in numpy (working pixels), with no OCR engine needed."""
from __future__ import annotations

import numpy as np

from vindr_cli.deid import pixeltext as pt


def _glyphs(n: int, h: int = 7, w: int = 5, gap: int = 2) -> np.ndarray:
    """A row of n glyph-shaped stroke blobs (an 'H' each): h tall, w wide, gap apart."""
    row = np.zeros((h, n * (w + gap)), bool)
    for i in range(n):
        x = i * (w + gap)
        row[:, x] = row[:, x + w - 1] = True
        row[h // 2, x:x + w] = True
    return row


def test_a_joined_block_of_two_lines_is_cut_into_its_glyph_rows():
    a, b = _glyphs(8), _glyphs(6)
    block = np.zeros((a.shape[0] + b.shape[0] + 1, a.shape[1]), bool)
    block[:a.shape[0]] = a
    block[a.shape[0] + 1:, :b.shape[1]] = b
    block[a.shape[0], 3] = True                       # a stroke joins the lines: one group
    bands = pt._row_bands(block, 100, 200, True)
    assert len(bands) == 2
    (x0, y0, x1, y1, bright), second = bands
    assert (y0, y1, bright) == (200, 200 + a.shape[0], True) and x0 == 100 and x1 == 100 + a.shape[1] - 2
    assert second[1] == 200 + a.shape[0] + 1 and second[3] == 200 + block.shape[0]


def test_one_band_alone_or_a_block_of_bars_is_no_candidate():
    a = _glyphs(8)
    lone = np.zeros((a.shape[0] + 4, a.shape[1]), bool)
    lone[:a.shape[0]] = a
    lone[a.shape[0] + 1:, :] = True                   # the other band is a bar, not glyphs
    assert pt._row_bands(lone, 0, 0, True) == []
    assert pt._row_bands(np.ones((16, 60), bool), 0, 0, True) == []


def test_only_a_line_stacked_on_a_read_line_is_taken_and_then_seeds_the_next():
    idlines = [(30, 100, 90, 107, True)]
    above = (20, 92, 100, 99, True)                  # the name line above the ID line
    top = (20, 84, 100, 91, True)                    # a third line above that
    far = (20, 40, 100, 47, True)                    # far above: not part of the label
    other = (30, 108, 90, 115, False)                # the other polarity
    rejected = [far, other, top, above]
    taken = []
    for r in pt._stacked_lines(rejected, idlines):
        taken.append(r)
        idlines.append(r)                            # find_text extends idlines with a line read as text
    assert taken == [above, top]
    assert rejected == [far, other]
    assert list(pt._stacked_lines([far], [(30, 100, 90, 107, True)])) == []


def _maps_with(row: np.ndarray, at: tuple[int, int], shape=(200, 400)):
    white = np.zeros(shape, np.int16)
    y, x = at
    white[y:y + row.shape[0], x:x + row.shape[1]] = np.where(row, 120, 0)
    return white, np.zeros(shape, np.int16), np.zeros(shape, np.int16)


def test_an_identifying_box_grows_over_a_soft_glyph_row_beside_it():
    maps = _maps_with(_glyphs(6, h=10, w=7), (52, 60))      # x 60..112 (working px)
    box = (2 * 116, 2 * 48, 2 * 160, 2 * 66)                  # image px (s = 2), right of the row
    grown = pt._soft_line(maps, 2, box, [])
    assert grown[0] <= 2 * 60 and grown[1:] == box[1:]
    # never over a kept marker, and a bar is no glyph row
    assert pt._soft_line(maps, 2, box, [(2 * 60, 2 * 50, 2 * 80, 2 * 64)]) == box
    bar = np.zeros((10, 52), bool)
    bar[3:7] = True
    assert pt._soft_line(_maps_with(bar, (52, 60)), 2, box, []) == box
    # too far along the line (more than half a line height from the box): not taken
    far = _maps_with(_glyphs(6, h=10, w=7), (52, 20))        # x 20..72, 44 px from the box
    assert pt._soft_line(far, 2, box, []) == box
