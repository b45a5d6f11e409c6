#!/usr/bin/python3
"""preview_glyphs.py: does every character an email preview shows get a real glyph, not a box?

    preview_glyphs.py [--render] FILE.html...

A missing font does not fail a render: Chromium draws the font's .notdef glyph, an empty box ("tofu"),
and the preview looks fine to a program. So two checks, on every character outside ASCII of the text
of the given previews (the fixtures' customers include 健二 and María):
- fontconfig: some installed font covers it (`fc-list ':charset=HEX'`), the fallback Chromium takes;
- with --render, Chromium itself: each character is drawn alone in a cell of a page, beside a private-
  use character no font has (U+E000, drawn as .notdef); a character whose cell is blank or the same
  picture as that box is a missing glyph. This needs no reference pictures and no OCR: the box is
  whatever this machine's fonts draw for a missing glyph.
Prints one line per problem and exits 1 if any, else prints what it checked.
"""
import html.parser
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import png  # noqa: E402  (tools/png.py, the reader make previews crops with)

CELL, FONT = 64, 40
MISSING = "\ue000"


class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("style", "script", "title")
        alt = dict(attrs).get("alt")
        if alt:
            self.parts.append(alt)

    def handle_endtag(self, tag):
        self.skip -= tag in ("style", "script", "title") and self.skip > 0

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def characters(files):
    """{char: first file showing it} for the non-ASCII, non-space characters of the files' text."""
    found = {}
    for path in files:
        t = Text()
        with open(path, encoding="utf-8") as f:
            t.feed(f.read())
        for c in "".join(t.parts):
            if ord(c) > 127 and not c.isspace() and c not in found:
                found[c] = path
    return found


def covered(c):
    out = subprocess.run(["fc-list", ":charset=%x" % ord(c), "family"], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() != ""


def cells(chars):
    """Screenshots the characters (then the missing one) one a cell; returns their cells' pixels."""
    items = list(chars) + [MISSING]
    page = ("<!DOCTYPE html><meta charset='utf-8'><body style='margin:0;background:#fff'>"
            + "".join("<div style='position:absolute;left:0;top:%dpx;width:%dpx;height:%dpx;font:%dpx/%dpx "
                      "Helvetica,Arial,sans-serif;color:#000;text-align:center'>%s</div>"
                      % (i * CELL, CELL, CELL, FONT, CELL, "&#%d;" % ord(c)) for i, c in enumerate(items))
            + "</body>")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "glyphs.html"), "w", encoding="utf-8") as f:
            f.write(page)
        shot = os.path.join(tmp, "glyphs.png")
        subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", "--window-size=%d,%d" % (CELL, CELL * len(items)),
                        "--screenshot=" + shot, "file://" + os.path.join(tmp, "glyphs.html")],
                       capture_output=True, timeout=120, check=False)
        if not os.path.exists(shot):
            sys.exit("preview_glyphs: chromium wrote no screenshot")
        _, _, _, rows = png.read(shot)
    return [b"".join(rows[i * CELL:(i + 1) * CELL]) for i in range(len(items))]


def main(argv):
    render = "--render" in argv
    files = [a for a in argv if a != "--render"]
    found = characters(files)
    problems = ["%s: U+%04X %s has no font (install fonts-noto-cjk)" % (found[c], ord(c), c)
                for c in sorted(found) if not covered(c)]
    order = sorted(found)
    if render and order:
        shots = cells(order)
        box = shots[-1]
        blank = bytes([box[0]]) * len(box)              # a cell of the page's white, whatever its channels
        if box == blank:
            problems.append("U+E000 drew nothing: this check cannot tell a box from a glyph here")
        for c, shot in zip(order, shots):
            if shot == box or shot == blank:
                problems.append("%s: U+%04X %s is drawn as a missing-glyph box by chromium" % (found[c], ord(c), c))
    for p in problems:
        print(p)
    if not problems:
        print("preview_glyphs: %d characters outside ASCII, each with a glyph%s: %s"
              % (len(found), " (rendered)" if render else "", "".join(sorted(found))))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
