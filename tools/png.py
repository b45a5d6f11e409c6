#!/usr/bin/python3
"""png.py: the little of PNG that the email previews need, with Python's standard library only.

`make previews` screenshots each email on a tall canvas, then crops it to the email (the bounding box
of the pixels that differ from the page's background, the top-left pixel, plus a margin), so a preview
shows the email and not an empty page. The spec that looks for missing-glyph boxes reads screenshots
with the same reader. Reads 8-bit greyscale, RGB, grey+alpha and RGBA, non-interlaced (what Chromium
writes); writes RGB or RGBA.

    python3 tools/png.py crop IN.png OUT.png [MARGIN]
"""
import struct
import sys
import zlib

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read(path):
    """(width, height, channels, rows): rows is a list of bytes, one a row, channels bytes a pixel."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, head = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, ctype, _, _, interlace = head
    if depth != 8 or ctype not in CHANNELS or interlace:
        raise ValueError("%s: only 8-bit, non-interlaced grey/RGB(A) PNGs are read here" % path)
    ch = CHANNELS[ctype]
    raw, stride, rows, prev = zlib.decompress(b"".join(idat)), width * ch, [], bytearray(width * ch)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(ch, stride):
                line[i] = (line[i] + line[i - ch]) & 255
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - ch] if i >= ch else 0) + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                line[i] = (line[i] + _paeth(line[i - ch] if i >= ch else 0, prev[i], prev[i - ch] if i >= ch else 0)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, ch, rows


def write(path, width, height, ch, rows):
    ctype = {3: 2, 4: 6}[ch]
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def content_box(width, height, ch, rows):
    """(left, top, right, bottom), exclusive, of the pixels unlike the top-left one; None if none."""
    bg = rows[0][:ch]
    top = bottom = left = right = None
    for y, row in enumerate(rows):
        if row == bg * width:
            continue
        xs = [x for x in range(width) if row[x * ch:x * ch + ch] != bg]
        top = y if top is None else top
        bottom = y + 1
        left = xs[0] if left is None else min(left, xs[0])
        right = xs[-1] + 1 if right is None else max(right, xs[-1] + 1)
    return None if top is None else (left, top, right, bottom)


def crop(src, dst, margin=24):
    width, height, ch, rows = read(src)
    if ch < 3:
        raise ValueError("%s: crop takes RGB(A)" % src)
    box = content_box(width, height, ch, rows)
    if box is None:
        raise ValueError("%s: an empty picture" % src)
    left, top = max(0, box[0] - margin), max(0, box[1] - margin)
    right, bottom = min(width, box[2] + margin), min(height, box[3] + margin)
    if bottom == height:
        raise ValueError("%s: the content reaches the bottom edge: take a taller screenshot" % src)
    write(dst, right - left, bottom - top, ch, [r[left * ch:right * ch] for r in rows[top:bottom]])
    return right - left, bottom - top


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "crop":
        sys.exit("usage: png.py crop IN.png OUT.png [MARGIN]")
    w, h = crop(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 24)
    print("%s: %dx%d" % (sys.argv[3], w, h))
