#!/usr/bin/python3
"""load_post.py: posts many distinct signed Loop webhooks to `returnflow serve`, as Loop would.

For the durability spec (spec/lua/durability_spec.lua). Webhook i (0 <= i < --count) is the fixture
with `id` set to str(--first-id + i) and the customer's email (`customer`, `customer_detail.email`)
set to durability+ID@example.com, so every webhook is a distinct event of a distinct profile. Each
body is signed the way Loop signs: X-Loop-Signature = base64(HMAC-SHA256(secret, the exact bytes sent)).

--clients threads share the webhooks; each keeps one HTTP/1.1 connection alive. The server may be
killed at any moment and come back on another port: the address (HOST:PORT) is read from
--address-file, which the spec rewrites after each restart, and read again after every failure. A
webhook counts as acked only when its answer was 202; anything else (a refused connection, a reset,
a timeout, a 503) is retried on a fresh connection until --deadline, as Loop retries. A webhook
refused for good (4xx) is not retried: it is reported, and the spec fails on it.

Writes the acked ids to --acked (one a line), the progress ("ACKED ATTEMPTS") to --progress every
50 ms (replaced atomically, for the spec to time its kills), and prints one JSON summary line:
{"count", "acked", "attempts", "retried", "refused": {status: n}, "errors": {kind: n}, "seconds"}.
Exit status 0 when every webhook was acked, else 1 (3: the --watch-pid process is gone). Standard
library only.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webhook_bodies  # noqa: E402  (beside this file)


def read_address(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


class Load:
    def __init__(self, args):
        self.args = args
        self.bodies = webhook_bodies.Bodies(args.fixture)
        self.secret = args.secret.encode("utf-8")
        self.lock = threading.Lock()
        self.next = 0
        self.acked, self.attempts, self.retried = [], 0, 0
        self.refused, self.errors = {}, {}
        self.done = threading.Event()
        self.deadline = time.monotonic() + args.deadline

    def body(self, i):
        wid = str(self.args.first_id + i)
        return wid, self.bodies.body(wid, "durability+%s@example.com" % wid)

    def take(self):
        with self.lock:
            if self.next >= self.args.count:
                return None
            i = self.next
            self.next += 1
            return i

    def note(self, table, key):
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def client(self):
        conn, conn_addr = None, None
        path = "/v1/webhooks/" + self.args.tenant
        while True:
            i = self.take()
            if i is None:
                break
            wid, body = self.body(i)
            sig = base64.b64encode(hmac.new(self.secret, body, hashlib.sha256).digest()).decode("ascii")
            headers = {"Content-Type": "application/json", "X-Loop-Signature": sig}
            first = True
            while True:
                if time.monotonic() > self.deadline:
                    self.note(self.errors, "deadline")
                    break
                addr = read_address(self.args.address_file)
                if addr is None:
                    time.sleep(0.02)
                    continue
                if conn is None or conn_addr != addr:
                    if conn is not None:
                        conn.close()
                    host, port = addr.rsplit(":", 1)
                    conn, conn_addr = http.client.HTTPConnection(host, int(port), timeout=self.args.timeout), addr
                with self.lock:
                    self.attempts += 1
                    if not first:
                        self.retried += 1
                first = False
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    if resp.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as e:   # killed server: refused, reset, EOF
                    self.note(self.errors, type(e).__name__)
                    conn.close()
                    conn = None
                    time.sleep(0.01)
                    continue
                if status == 202:
                    with self.lock:
                        self.acked.append(wid)
                    break
                if status == 503:                                    # busy or stopping: Loop retries
                    self.note(self.refused, "503")
                    time.sleep(0.05)
                    continue
                self.note(self.refused, str(status))                 # refused for good: not acked
                break
        if conn is not None:
            conn.close()

    def report_progress(self):
        tmp = self.args.progress + ".tmp"
        while True:
            stop = self.done.wait(0.05)
            with self.lock:
                line = "%d %d\n" % (len(self.acked), self.attempts)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(line)
            os.replace(tmp, self.args.progress)
            if stop:
                return

    def watch(self):
        """--watch-pid: never outlive the test run that started it."""
        while not self.done.wait(0.2):
            if not os.path.exists("/proc/%d" % self.args.watch_pid):
                os._exit(3)

    def run(self):
        started = time.monotonic()
        if self.args.watch_pid:
            threading.Thread(target=self.watch, daemon=True).start()
        reporter = None
        if self.args.progress:
            reporter = threading.Thread(target=self.report_progress, daemon=True)
            reporter.start()
        threads = [threading.Thread(target=self.client, daemon=True) for _ in range(self.args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.done.set()
        if reporter:
            reporter.join()
        if self.args.acked:
            with open(self.args.acked, "w", encoding="utf-8") as f:
                f.write("".join(w + "\n" for w in self.acked))
        summary = {"count": self.args.count, "acked": len(self.acked), "attempts": self.attempts,
                   "retried": self.retried, "refused": self.refused, "errors": self.errors,
                   "seconds": round(time.monotonic() - started, 2)}
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
        return 0 if len(self.acked) == self.args.count else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description="Posts distinct signed Loop webhooks, retrying un-acked ones.")
    ap.add_argument("--address-file", required=True, help="holds HOST:PORT of the server; re-read on failure")
    ap.add_argument("--fixture", required=True, help="the Loop webhook each body is built from")
    ap.add_argument("--secret", required=True, help="the tenant's webhook secret")
    ap.add_argument("--tenant", default="shop")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--first-id", type=int, default=900000000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds before giving up on retries")
    ap.add_argument("--acked", help="file to write the acked ids to")
    ap.add_argument("--progress", help="file holding 'ACKED ATTEMPTS', rewritten every 50 ms")
    ap.add_argument("--watch-pid", type=int, help="exit when this process is gone (tests: no orphan)")
    return Load(ap.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
