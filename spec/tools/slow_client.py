#!/usr/bin/python3
"""slow_client.py: clients that hold connections to `returnflow serve` open, for the durability spec.

Opens --connections connections to --address (HOST:PORT), all at once, then in each:
  headers  sends a request's headers one byte every --interval seconds, never finishing them;
  body     sends whole headers (Content-Length: 1000) and a few body bytes, then one byte every
           --interval seconds, never finishing the body;
  idle     sends nothing at all.
It stops when the server closes the connection (EOF or a reset), or after --hold seconds, whichever
comes first, then closes its side. The line "connected N" is printed once every connection is open;
at the end one JSON line: {"connections": [{"mode", "closed_by_server": true|false, "seconds" (from
connect to the server's close, or to --hold), "sent" (bytes), "answer" (what the server wrote)}]}.
Standard library only.
"""
import argparse
import json
import select
import socket
import sys
import threading
import time

HEADERS = ("POST /v1/webhooks/{tenant} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
           "X-Loop-Signature: c2xvdw==\r\nContent-Length: 1000\r\n\r\n")


def hold(sock, mode, first, args, started, out):
    if mode == "headers":
        trickle = first
    elif mode == "body":
        trickle = b'{"topic":"return"' + b" " * 983     # the 1000 bytes Content-Length announced
    else:
        trickle = b""
    sent, answer = 0, b""
    if mode == "body":
        sock.sendall(first + trickle[:10])
        sent, trickle = len(first) + 10, trickle[10:]
    deadline, next_byte, closed = started + args.hold, time.monotonic(), False
    try:
        while time.monotonic() < deadline:
            if trickle and time.monotonic() >= next_byte:
                sock.send(trickle[:1])
                sent, trickle = sent + 1, trickle[1:]
                next_byte += args.interval
            wait = min(deadline, next_byte if trickle else deadline) - time.monotonic()
            readable, _, _ = select.select([sock], [], [], max(0.0, min(wait, 0.05)))
            if readable:
                data = sock.recv(4096)
                if not data:
                    closed = True
                    break
                answer += data
    except OSError:                          # reset by the server
        closed = True
    out.update(mode=mode, closed_by_server=closed, seconds=round(time.monotonic() - started, 2), sent=sent,
               answer=answer.decode("utf-8", "replace"))
    sock.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Holds slow or idle connections to a server open.")
    ap.add_argument("--address", required=True, help="HOST:PORT")
    ap.add_argument("--mode", choices=("headers", "body", "idle"), action="append",
                    help="one per connection group (repeatable; default headers)")
    ap.add_argument("--connections", type=int, default=1, help="connections per mode")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between two trickled bytes")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds before giving up and closing")
    ap.add_argument("--tenant", default="shop")
    args = ap.parse_args(argv)
    host, port = args.address.rsplit(":", 1)
    first = HEADERS.format(tenant=args.tenant, host=args.address).encode("ascii")
    conns = []
    for mode in args.mode or ["headers"]:
        for _ in range(args.connections):
            conns.append((mode, socket.create_connection((host, int(port)), timeout=5), time.monotonic()))
    sys.stdout.write("connected %d\n" % len(conns))
    sys.stdout.flush()
    results = [{} for _ in conns]
    threads = [threading.Thread(target=hold, args=(s, mode, first, args, started, results[i]))
               for i, (mode, s, started) in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write(json.dumps({"connections": results}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
