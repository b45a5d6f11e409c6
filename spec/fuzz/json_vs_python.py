#!/usr/bin/env python3
"""Replays JSON inputs (the fuzz target's corpus, its seeds) through returnflow's decoder and through
Python's json module: both must accept the same inputs and read the same values.

fuzz_json.c compares with lua-cjson on every input it runs; this is the second, stricter reference, run
on what the fuzzer kept. Where the two differ on purpose, the difference is named and counted:
  - NaN, Infinity: Python reads them; JSON has neither (refused here through parse_constant);
  - a lone surrogate escape ("\\ud800"): Python keeps it; returnflow refuses it (it is not UTF-8);
  - a number that overflows a double (Python: inf), or over 300 characters: returnflow refuses it;
  - nesting deeper than 256 levels: returnflow refuses it (Python: up to its recursion limit);
  - blanks then a byte order mark: returnflow skips the mark after leading blanks too; Python only
    at byte 0;
  - a NUL byte: Python reads such bytes as UTF-16 or UTF-32; returnflow never accepts one (skipped);
  - integers past 64 bits: Python keeps them exact, returnflow reads a double (compared as doubles).
Our side is returnflow.native's json (the host's C) in lua5.4: one process for every input.

usage: json_vs_python.py LUA_CPATH_DIR FILE_OR_DIR...
Prints "   fuzz_json_python: 1 passed, 0 failed" (tools/test.sh's format) and the counts.
"""
import json
import math
import os
import subprocess
import sys

BOM = b"\xef\xbb\xbf"
OURS = r"""
package.cpath = os.getenv("RF_CPATH") .. "/?.so;" .. package.cpath
local json = require("returnflow.native").json
for path in io.lines() do
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  local v, err = json.decode(s)
  if err then
    io.write("err ", (err:gsub("[\r\n]", " ")), "\n")
  else
    local text, eerr = json.encode(v)
    io.write(text and "ok " .. text or "err encode: " .. eerr, "\n")
  end
end
"""


def reject_constant(name):
    raise ValueError("not JSON: " + name)


def python_reads(data):
    try:
        return True, json.loads(data, parse_constant=reject_constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        return False, str(e)


def same(p, o):
    """p: Python's value; o: ours, read back from our canonical encoding."""
    if isinstance(p, bool) or isinstance(o, bool) or p is None or o is None:
        return p is o                   # True, False and None are singletons; True is not 1 here
    if isinstance(p, (int, float)) and isinstance(o, (int, float)):
        if isinstance(p, int) and isinstance(o, int):
            return p == o
        return float(p) == float(o)
    if isinstance(p, str) and isinstance(o, str):
        return p == o
    if isinstance(p, list) and isinstance(o, list):
        return len(p) == len(o) and all(same(a, b) for a, b in zip(p, o))
    if isinstance(p, dict) and isinstance(o, dict):
        return p.keys() == o.keys() and all(same(p[k], o[k]) for k in p)
    return False


def has(value, test):
    if test(value):
        return True
    if isinstance(value, list):
        return any(has(v, test) for v in value)
    if isinstance(value, dict):
        return any(has(k, test) or has(v, test) for k, v in value.items())
    return False


def lone_surrogate(v):
    return isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v)


def infinite(v):
    return isinstance(v, float) and math.isinf(v)


def explain(data, py_ok, py_value, our_error):
    """The documented difference behind a disagreement, or None."""
    if py_ok:
        if ("surrogate" in our_error) and has(py_value, lone_surrogate):
            return "lone surrogate"
        if "number out of range" in our_error and has(py_value, infinite):
            return "number overflows a double"
        if "number longer than" in our_error:
            return "number over 300 characters"
        if "nesting deeper than" in our_error:
            return "nesting over 256 levels"
        return None
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith(BOM) and not data.startswith(BOM):
        return "BOM after blanks"
    return None


def main():
    cpath, places = sys.argv[1], sys.argv[2:]
    files = []
    for place in places:
        if os.path.isdir(place):
            files += sorted(os.path.join(place, n) for n in os.listdir(place))
        elif os.path.isfile(place):
            files.append(place)
    files = [f for f in files if os.path.isfile(f)]
    env = dict(os.environ, RF_CPATH=cpath)
    proc = subprocess.Popen(["lua5.4", "-e", OURS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    out, _ = proc.communicate("\n".join(files).encode() + b"\n")
    verdicts = out.decode("utf-8", "surrogateescape").split("\n")
    if proc.returncode != 0 or len(verdicts) < len(files):
        print("fuzz_json_python: lua5.4 failed (returnflow.native in %s?)" % cpath)
        print("   fuzz_json_python: 0 passed, 1 failed")
        return 1
    counts = {"accepted by both": 0, "refused by both": 0, "skipped (NUL byte)": 0}
    mismatches = []
    for path, verdict in zip(files, verdicts):
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data:
            counts["skipped (NUL byte)"] += 1
            continue
        ours_ok = verdict.startswith("ok ")
        py_ok, py_value = python_reads(data)
        if ours_ok and py_ok:
            if same(py_value, json.loads(verdict[3:])):
                counts["accepted by both"] += 1
            else:
                mismatches.append((path, "values differ", verdict[:120]))
        elif not ours_ok and not py_ok:
            counts["refused by both"] += 1
        else:
            why = explain(data, py_ok, py_value, "" if ours_ok else verdict)
            if why:
                counts[why] = counts.get(why, 0) + 1
            else:
                mismatches.append((path, "python %s, returnflow %s" % ("accepts" if py_ok else "refuses: " + py_value,
                                                                      verdict[:120]), data[:80]))
    for path, what, detail in mismatches[:5]:
        print("   %s: %s (%r)" % (path, what, detail))
    print("      %d inputs: %s" % (len(files), ", ".join("%s %d" % kv for kv in counts.items())))
    print("   fuzz_json_python: %d passed, %d failed" % (0 if mismatches else 1, 1 if mismatches else 0))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
