"""webhook_bodies.py: distinct Loop webhook bodies made from one fixture, for the load clients
(load_post.py, cluster_post.py).

A body is the fixture with its `id`, `customer` and `customer_detail.email` replaced. Copying and
encoding the 4.4 KB fixture for each body cost the durability spec's client ~4 s of CPU a run of 20,000
webhooks; the fixture is encoded once with markers in those places and each body is the pieces joined
around the id and email, the same bytes json.dumps would give (both are plain ASCII, as the markers are).
"""
import json

ID_MARK, EMAIL_MARK = "@@webhook-id@@", "@@webhook-email@@"


class Bodies:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            ev = json.load(f)
        ev["id"], ev["customer"] = ID_MARK, EMAIL_MARK
        ev["customer_detail"]["email"] = EMAIL_MARK
        text = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
        if text.count(ID_MARK) != 1 or text.count(EMAIL_MARK) != 2:
            raise ValueError("%s: the fixture already holds a marker" % path)
        self.pieces = []                      # text, then ("id" | "email", text) pairs, in order
        for chunk in text.split(ID_MARK):
            self.pieces.append(chunk.split(EMAIL_MARK))

    def body(self, wid, email):
        """The fixture's UTF-8 bytes with id wid and email email (both ASCII, no JSON escapes)."""
        assert wid.isascii() and email.isascii() and '"' not in wid + email and "\\" not in wid + email
        return wid.join(email.join(parts) for parts in self.pieces).encode("utf-8")
