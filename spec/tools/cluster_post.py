#!/usr/bin/python3
"""cluster_post.py: signed Loop webhooks sent round-robin to the nodes of a cluster by several clients.

For the cluster spec (spec/lua/cluster_spec.lua). Client c (0 <= c < --clients) sends webhooks
c, c + clients, c + 2 * clients, ... below --count, one at a time: the next leaves only once the last
was acknowledged, so each profile's webhooks are journaled in the order they were sent. Webhook i goes
to tenant --tenants[i % len] and is of profile `TENANT.cC.pK@example.com` (K = (i // clients) % --profiles
of that client: each profile is one client's, so its order is that client's order). Its Loop `id` is
str(--first-id + i); the body is the fixture with `id`, `customer` and `customer_detail.email` set,
signed as Loop signs: X-Loop-Signature = base64(HMAC-SHA256(secret, the exact bytes sent)).

Attempt n of a webhook goes to node (i + n) % nodes of --nodes-file (HOST:PORT a line, re-read before
every attempt: the spec rewrites it when a node comes back on another port): a killed node's
webhooks go to the next one, as a load balancer would send them. A webhook counts as acked only on a
202; anything else (refused, reset, timeout, 503) is tried again on the next node until --deadline.
--rate paces the clients together (webhooks a second, 0: as fast as they go), so kills land while
webhooks still flow.

Writes the acked webhooks to --acked ("ID TENANT PROFILE SEQ NODE" a line, SEQ the webhook's place in
its profile's order), the count acked so far to --progress every 100 ms, and prints one JSON summary
line: {"count", "acked", "attempts", "retried", "refused": {status: n}, "errors": {kind: n},
"seconds"}. Exit status 0 when every webhook was acked, else 1 (3: the --watch-pid process is gone).
Standard library only.
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


def read_nodes(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


class Load:
    def __init__(self, args):
        self.args = args
        self.bodies = webhook_bodies.Bodies(args.fixture)
        self.tenants = args.tenants.split(",")
        self.secret = args.secret.encode("utf-8")
        self.lock = threading.Lock()
        self.acked, self.attempts, self.retried = [], 0, 0
        self.refused, self.errors = {}, {}
        self.done = threading.Event()
        self.started = time.monotonic()
        self.deadline = self.started + args.deadline
        self.sent = 0

    def webhook(self, i):
        c, n = i % self.args.clients, i // self.args.clients
        tenant = self.tenants[i % len(self.tenants)]
        profile = "%s.c%d.p%d@example.com" % (tenant, c, n % self.args.profiles)
        wid = str(self.args.first_id + i)
        return wid, tenant, profile, n, self.bodies.body(wid, profile)

    def note(self, table, key):
        with self.lock:
            table[key] = table.get(key, 0) + 1

    def pace(self):
        """--rate: the clients together send at most that many webhooks a second."""
        if self.args.rate <= 0:
            return
        with self.lock:
            due = self.started + self.sent / self.args.rate
            self.sent += 1
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def post(self, addr, path, body, headers):
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=self.args.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def client(self, c):
        for i in range(c, self.args.count, self.args.clients):
            wid, tenant, profile, seq, body = self.webhook(i)
            sig = base64.b64encode(hmac.new(self.secret, body, hashlib.sha256).digest()).decode("ascii")
            headers = {"Content-Type": "application/json", "X-Loop-Signature": sig}
            self.pace()
            attempt = 0
            while True:
                if time.monotonic() > self.deadline:
                    self.note(self.errors, "deadline")
                    break
                nodes = read_nodes(self.args.nodes_file)
                if not nodes:
                    time.sleep(0.02)
                    continue
                node = (i + attempt) % len(nodes)
                with self.lock:
                    self.attempts += 1
                    if attempt:
                        self.retried += 1
                attempt += 1
                try:
                    status = self.post(nodes[node], "/v1/webhooks/" + tenant, body, headers)
                except (OSError, http.client.HTTPException) as e:   # a killed node: refused, reset, EOF
                    self.note(self.errors, type(e).__name__)
                    time.sleep(0.01)
                    continue
                if status == 202:
                    with self.lock:
                        self.acked.append("%s %s %s %d %d" % (wid, tenant, profile, seq, node))
                    break
                if status == 503:                                    # busy or stopping: Loop retries
                    self.note(self.refused, "503")
                    time.sleep(0.05)
                    continue
                self.note(self.refused, str(status))                 # refused for good: not acked
                break

    def report_progress(self):
        tmp = self.args.progress + ".tmp"
        while True:
            stop = self.done.wait(0.1)
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
        if self.args.watch_pid:
            threading.Thread(target=self.watch, daemon=True).start()
        reporter = None
        if self.args.progress:
            reporter = threading.Thread(target=self.report_progress, daemon=True)
            reporter.start()
        threads = [threading.Thread(target=self.client, args=(c,), daemon=True) for c in range(self.args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.done.set()
        if reporter:
            reporter.join()
        with open(self.args.acked, "w", encoding="utf-8") as f:
            f.write("".join(a + "\n" for a in self.acked))
        summary = {"count": self.args.count, "acked": len(self.acked), "attempts": self.attempts,
                   "retried": self.retried, "refused": self.refused, "errors": self.errors,
                   "seconds": round(time.monotonic() - self.started, 2)}
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
        return 0 if len(self.acked) == self.args.count else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description="Posts signed Loop webhooks round-robin to a cluster's nodes.")
    ap.add_argument("--nodes-file", required=True, help="HOST:PORT of each node, a line; re-read every attempt")
    ap.add_argument("--fixture", required=True, help="the Loop webhook each body is built from")
    ap.add_argument("--secret", required=True, help="the tenants' webhook secret")
    ap.add_argument("--tenants", required=True, help="comma-separated tenant ids")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--first-id", type=int, default=800000000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--profiles", type=int, default=5, help="profiles of each client")
    ap.add_argument("--rate", type=float, default=0, help="webhooks a second, all clients together (0: no pacing)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    ap.add_argument("--deadline", type=float, default=180.0, help="seconds before giving up on retries")
    ap.add_argument("--acked", required=True, help="file to write the acked webhooks to")
    ap.add_argument("--progress", help="file holding 'ACKED ATTEMPTS', rewritten every 100 ms")
    ap.add_argument("--watch-pid", type=int, help="exit when this process is gone (tests: no orphan)")
    return Load(ap.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
