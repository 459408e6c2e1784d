"""Contact sheets (stage `sheets`): each image in its cell at a whole enlargement, pixels as the encoder saw them."""

import numpy as np
from PIL import Image

from negprompt.report.sheets import CELL, NAME_HEIGHT, contact_sheet


def test_a_contact_sheet_holds_each_image_enlarged_by_nearest_neighbours_in_its_cell(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(13)]
    contact_sheet(images, [f"concept {i}" for i in range(13)], tmp_path / "sheet.png", cols=12)
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (2 * CELL, 12 * CELL, 3)  # 13 images: two rows of twelve cells
    factor = (CELL - NAME_HEIGHT - 4) // 32
    side = 32 * factor
    x, y = (CELL - side) // 2, CELL + NAME_HEIGHT + (CELL - NAME_HEIGHT - side) // 2  # row 2, first cell
    enlarged = images[12].repeat(factor, axis=0).repeat(factor, axis=1)
    assert np.array_equal(sheet[y : y + side, x : x + side], enlarged)
    assert (sheet[CELL : CELL + NAME_HEIGHT, :CELL] < 128).any()  # a name above the image
    assert (sheet[CELL:, CELL:] == 255).all()  # cells past the last image stay blank
