"""load_image: every way an image file can be broken gives an error that names the file and the fix."""
import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from dml.data import CorruptImageError, find_corrupt_images, load_image


@pytest.fixture
def jpeg_bytes():
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_valid_images_load_as_rgb(tmp_path, jpeg_bytes):
    (tmp_path / "ok.jpg").write_bytes(jpeg_bytes)
    Image.new("L", (5, 7), 128).save(tmp_path / "gray.png")
    image = load_image(tmp_path / "ok.jpg")
    assert image.mode == "RGB" and image.size == (64, 48)
    assert load_image(tmp_path / "gray.png").mode == "RGB"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\. Re-download"):
        load_image(tmp_path / "absent.jpg")


@pytest.mark.parametrize("content", [b"this is not an image" * 10, b""], ids=["garbage", "empty"])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(content)
    with pytest.raises(CorruptImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and "find_corrupt_images" in str(info.value)


def test_truncated_jpeg(tmp_path, jpeg_bytes):
    path = tmp_path / "truncated.jpg"
    path.write_bytes(jpeg_bytes[: len(jpeg_bytes) // 2])
    with Image.open(path) as lazy:  # the header alone looks fine: this is why load_image decodes eagerly
        assert lazy.size == (64, 48)
    with pytest.raises(CorruptImageError, match="truncated.jpg.*truncated or corrupt"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_find_corrupt_images_lists_only_the_broken_files(tmp_path, jpeg_bytes):
    (tmp_path / "ok.jpg").write_bytes(jpeg_bytes)
    (tmp_path / "bad.jpg").write_bytes(jpeg_bytes[:200])
    paths = [tmp_path / "ok.jpg", tmp_path / "bad.jpg", tmp_path / "gone.jpg"]
    bad = find_corrupt_images(paths)
    assert [p.name for p, _ in bad] == ["bad.jpg", "gone.jpg"]
    assert "missing" in bad[1][1]
