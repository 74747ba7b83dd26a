"""What the camera tests share: JPEG size and a picture's pixels (decoded with PyAV, the same
library the product encodes with; the frame counter's box comes from the pattern itself)."""

import io


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    i = 2
    while i + 9 < len(data):
        assert data[i] == 0xFF, f"bad JPEG marker at {i}"
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        i += 2 + length
    raise AssertionError("no start-of-frame marker")


def luma(data: bytes):
    """The decoded Y plane of a JPEG as (width, height, bytes)."""
    import av

    with av.open(io.BytesIO(data)) as container:
        picture = next(container.decode(video=0)).reformat(format="gray")
    plane = picture.planes[0]
    raw = bytes(plane)
    rows = [raw[r * plane.line_size: r * plane.line_size + picture.width]
            for r in range(picture.height)]
    return picture.width, picture.height, b"".join(rows)


def region_difference(a: bytes, b: bytes, box: tuple[int, int, int, int]) -> float:
    """Mean absolute luma difference of two JPEGs inside box (x, y, w, h)."""
    wa, ha, ya = luma(a)
    wb, hb, yb = luma(b)
    assert (wa, ha) == (wb, hb)
    x, y, w, h = box
    total = 0
    for row in range(y, y + h):
        for col in range(x, x + w, 2):
            total += abs(ya[row * wa + col] - yb[row * wa + col])
    return total / (h * ((w + 1) // 2))
