#!/usr/bin/python3
"""klaviyo_standin.py: a local HTTP server that answers like Klaviyo, for returnflow's tests.

Klaviyo cannot be reached from the test machines, so `returnflow serve` (delivery with retries, rate
limits and dead letters) is tested against this stand-in, as a real process on 127.0.0.1. It answers
the endpoints returnflow uses (spec/klaviyo/README.md) the way Klaviyo does:

- every body is validated against the operation's requestBody schema in Klaviyo's OpenAPI spec, strict
  (unknown fields refused), with the conversion of spec/tools/validate_requests.py; the first problem
  is answered as a 400 in Klaviyo's error shape, its source.pointer naming the field;
- `revision` is required; /api/ needs `Authorization: Klaviyo-API-Key pk_...` (401 otherwise, or for a
  key not given with --key); /client/ needs `company_id` and no key;
- rate limits per account (the key, or the company_id) and endpoint, burst and steady windows as the
  README gives them: a real 429 with Retry-After; 2xx answers carry RateLimit-Limit/-Remaining/-Reset;
- events are deduplicated as Klaviyo does: the first event of a (profile, metric, unique_id) wins,
  across /api and /client; without unique_id, events of one metric and profile in one second collapse;
  a bulk request repeating a unique_id for one profile and metric fails whole (400 naming the item);
- Klaviyo's event limits (properties, arrays, nesting, string and body sizes, metric name, time range).

It records what it accepted and answers faults on demand through a control API under /_standin/ (not
Klaviyo's, JSON): GET events (accepted, after dedup, in order), requests (every one: method, path, status,
headers with keys redacted, body, at_ms: when it arrived; ?since=SEQ&path=PREFIX), profiles, stats (counts by endpoint and
status), faults (pending); POST reset (forget everything), faults. POST /_standin/faults takes a fault,
a list, or {"faults": [...]}: {"kind", "count": 1, "path": "" (prefix), "delay_ms", "retry_after",
"seconds", "pointer", "detail"}. It answers the next `count` requests whose path starts with `path`.
Kinds: 429 (Retry-After: retry_after), 429-no-retry-after ("Expected available in `seconds` seconds"),
500, 502, 503, 504, 403-html (a Cloudflare challenge page), 401, 400 (source.pointer: pointer), slow
(processed as usual, answered after delay_ms, default 1000), reset (the socket closed with an RST,
nothing answered). delay_ms delays any kind.

What it deliberately does not do: TLS, persistence (state lives in memory until exit or reset), bulk
job status endpoints, GET endpoints other than /api/metrics, real segment or flow evaluation, and
telling accounts apart in stored data: profiles, metrics and dedup form one shared account (dedup
must span /api and /client), only rate limits are per key or company_id. It never logs an API key:
every key in a log line is written pk_***.

Run with Debian's /usr/bin/python3 (python3-jsonschema):
    /usr/bin/python3 spec/standin/klaviyo_standin.py --port 0 [--key pk_...]... [--no-limits]
        [--limit-scale F] [--record FILE] [--spec FILE] [--watch-pid PID] [--quiet] [--count-only]
        [--tls CERT KEY]
--count-only (benchmarks, bench/backfill.sh): the event endpoints answer a request that passes the key,
revision and rate-limit checks with their success status after counting its events by a byte scan for
"type":"event" (no JSON parsing, no schema validation, no deduplication, nothing kept: GET events and
the requests' bodies stay empty); so the stand-in's own CPU (jsonschema costs ~0.3 s a 1000-event bulk
request) does not bound what is measured. Every other endpoint answers as usual.
The first stdout line is "listening on 127.0.0.1:PORT". SIGTERM or SIGINT stops it cleanly.
"""
import argparse
import bisect
import datetime
import hashlib
import http.server
import json
import math
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import validate_requests as vr  # noqa: E402  (exits 2 with a clear message when jsonschema is missing)

KEY_RE = re.compile(r"pk_[A-Za-z0-9_\-]+")
BODY_TYPES = ("application/vnd.api+json", "application/json")
MAX_BODY, MAX_PROFILE_BODY = 5 * 1024 * 1024, 100 * 1024
MAX_PROPERTIES, MAX_ARRAY, MAX_DEPTH, MAX_STRING = 400, 4000, 10, 100 * 1024
MAX_BULK_EVENTS, MAX_METRIC_NAME = 1000, 127
PROFILE_IDS = ("email", "phone_number", "external_id", "anonymous_id")
PROFILE_ATTRIBUTES = ("first_name", "last_name", "organization", "locale", "title", "image", "location")

# Klaviyo's limits by class: (requests, window in seconds), burst then steady (then daily). Each endpoint
# has its own budget per account; a class only says how large it is.
LIMITS = {
    "events": ((350, 1), (3500, 60)),
    "bulk": ((10, 1), (150, 60)),
    "profiles": ((75, 1), (750, 60)),
    "lists": ((10, 1), (150, 60)),
    "flows": ((1, 1), (15, 60), (100, 86400)),
}

# method, path (regex), rate-limit class, success status, handler (a Standin method).
ROUTES = [
    ("POST", "/api/events", "events", 202, "on_event"),
    ("POST", "/client/events", "events", 202, "on_event"),
    ("POST", "/api/event-bulk-create-jobs", "bulk", 202, "on_bulk_job"),
    ("POST", "/client/event-bulk-create", "bulk", 202, "on_bulk_client"),
    ("POST", "/api/profile-import", "profiles", 200, "on_profile"),
    ("POST", "/client/profiles", "profiles", 202, "on_profile"),
    ("POST", "/api/profile-subscription-bulk-create-jobs", "profiles", 202, "on_subscribe"),
    ("POST", "/client/subscriptions", "profiles", 202, "on_subscribe"),
    ("POST", "/api/profile-bulk-import-jobs", "bulk", 202, "on_profile_bulk"),
    ("POST", "/api/templates", "profiles", 201, "on_created"),
    ("POST", "/api/flows", "flows", 201, "on_flow"),
    ("POST", "/api/segments", "flows", 201, "on_created"),
    ("GET", "/api/metrics", "lists", 200, "on_metrics"),
    ("GET", "/api/templates", "lists", 200, "on_list_objects"),
    ("GET", "/api/flows", "lists", 200, "on_list_objects"),
    ("GET", "/api/segments", "lists", 200, "on_list_objects"),
    ("POST", "/api/lists/[^/]+/relationships/profiles", "lists", 204, "on_list_add"),
]
ROUTES = [(m, re.compile("^" + p + "$"), cls, ok, fn) for m, p, cls, ok, fn in ROUTES]

COUNTED_HANDLERS = ("on_event", "on_bulk_job", "on_bulk_client")    # what --count-only answers unread

FAULT_KINDS = ("429", "429-no-retry-after", "500", "502", "503", "504", "403-html", "401", "400", "slow",
               "reset")
CLOUDFLARE_PAGE = ("<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
                   "<meta http-equiv=\"refresh\" content=\"390\"></head><body><div class=\"main-wrapper\">"
                   "<h1>a.klaviyo.com</h1><h2>Checking if the site connection is secure</h2>"
                   "<noscript>Enable JavaScript and cookies to continue</noscript></div></body></html>\n")


def redact(text):
    """Every API key in `text` written as pk_***."""
    return KEY_RE.sub("pk_***", text)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def pointer(parts):
    return vr.pointer(parts) if parts else "/"


def problem(status, code, title, detail, pointer_=None, parameter=None):
    """One error in Klaviyo's shape; `source` names a body pointer or a query/header parameter."""
    err = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title, "detail": detail}
    if pointer_ is not None:
        err["source"] = {"pointer": pointer_}
    elif parameter is not None:
        err["source"] = {"parameter": parameter}
    err["links"], err["meta"] = {}, {}
    return err


class Answer:
    """What to send back: status, headers, body bytes; or a delay first; or a reset instead."""

    def __init__(self, status, body=None, headers=None, ctype="application/vnd.api+json"):
        self.status, self.headers, self.delay, self.reset = status, dict(headers or {}), 0.0, False
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False)
        self.body = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        if self.body:
            self.headers.setdefault("Content-Type", ctype)


def errors(status, *errs, headers=None):
    return Answer(status, {"errors": list(errs)}, headers)


def invalid(detail, ptr=None, parameter=None):
    return errors(400, problem(400, "invalid", "Invalid input.", detail, ptr, parameter))


def throttled(seconds, headers=None):
    detail = "Request was throttled. Expected available in %d second%s." % (seconds, "" if seconds == 1 else "s")
    return errors(429, problem(429, "throttled", "Request was throttled.", detail), headers=headers)


def control_json(status, value):
    return Answer(status, value, ctype="application/json")


class Refused(Exception):
    """A 400 found while reading a body: its detail and pointer (and, for a bulk request, every other
    item's problem too: Klaviyo names each bad item of a job)."""

    def __init__(self, detail, parts, more=None):
        super().__init__(detail)
        self.detail, self.parts, self.more = detail, parts, more or []


E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


# --------------------------------------------------------------------------------------------------
# rate limits: a sliding window log per (account, endpoint)

class Limiter:
    def __init__(self, enabled, scale):
        self.enabled, self.scale, self.logs = enabled, scale, {}

    def windows(self, cls):
        return [(max(1, int(limit * self.scale)), w) for limit, w in LIMITS[cls]]

    def take(self, key, cls, now):
        """(None, headers) when the request may pass (it is counted), else (retry_after, headers)."""
        if not self.enabled:
            return None, {}
        windows = self.windows(cls)
        log = self.logs.setdefault(key, [])
        del log[:bisect.bisect_right(log, now - max(w for _, w in windows))]
        retry, tightest = 0, None
        # Requests are counted by arrival, but threads take the lock in their own order: a request that
        # arrived later may be in the log already. So the test is Klaviyo's promise itself: no window
        # of w seconds holds more than `limit` arrivals, this one included; the windows that hold it end
        # at its arrival or at a later one's (counting every logged arrival up to `now` alone would see
        # a window longer than w; counting none after it would let the later one's window overflow).
        last = bisect.bisect_right(log, now)
        for limit, w in windows:
            first = bisect.bisect_right(log, now - w)
            inside = last - first
            for end in log[last:bisect.bisect_left(log, now + w)]:
                inside = max(inside, bisect.bisect_right(log, end) - bisect.bisect_right(log, end - w))
            if inside >= limit:
                retry = max(retry, math.ceil(log[last - limit] + w - now) if last >= limit else w)
            remaining = max(0, limit - inside - 1)
            reset = math.ceil(log[first] + w - now) if inside else w
            if tightest is None or remaining < tightest[1]:
                tightest = (limit, remaining, max(1, reset))
        policy = ", ".join("%d;w=%d" % (limit, w) for limit, w in windows)
        headers = {"RateLimit-Limit": "%d, %s" % (tightest[0], policy),
                   "RateLimit-Remaining": str(tightest[1]), "RateLimit-Reset": str(tightest[2])}
        if retry:
            return max(1, retry), headers
        bisect.insort(log, now)
        return None, headers


# --------------------------------------------------------------------------------------------------
# profiles: identifiers resolve to one profile id, as Klaviyo merges them

class Profiles:
    def __init__(self):
        self.index, self.by_id, self.count = {}, {}, 0

    @staticmethod
    def identifiers(data):
        attrs = (data or {}).get("attributes") or {}
        ids = [(k, attrs[k].lower() if k == "email" else attrs[k])
               for k in PROFILE_IDS if isinstance(attrs.get(k), str) and attrs[k]]
        if isinstance((data or {}).get("id"), str) and data["id"]:
            ids.insert(0, ("id", data["id"]))
        return ids

    def find(self, data):
        for ident in self.identifiers(data):
            if ident in self.index:
                return self.index[ident]
        return None

    def upsert(self, data):
        """(profile id, created?) after merging the profile's identifiers, attributes and patches."""
        pid, created = self.find(data), False
        if pid is None:
            self.count += 1
            pid, created = "01STANDIN%017d" % self.count, True
            self.by_id[pid] = {"id": pid, "properties": {}, "subscriptions": {}}
        profile, attrs = self.by_id[pid], (data or {}).get("attributes") or {}
        for ident in self.identifiers(data):
            self.index.setdefault(ident, pid)
        for k in PROFILE_IDS + PROFILE_ATTRIBUTES:
            if attrs.get(k) is not None:
                profile[k] = attrs[k]
        profile["properties"].update(attrs.get("properties") or {})
        meta = (data or {}).get("meta") or attrs.get("meta") or {}
        self.patch(profile["properties"], meta.get("patch_properties") or {})
        return pid, created

    @staticmethod
    def patch(props, patch):
        for name, values in (patch.get("append") or {}).items():
            current = props.get(name)
            current = current if isinstance(current, list) else ([] if current is None else [current])
            props[name] = current + (values if isinstance(values, list) else [values])
        for name, values in (patch.get("unappend") or {}).items():
            gone = values if isinstance(values, list) else [values]
            if isinstance(props.get(name), list):
                props[name] = [v for v in props[name] if v not in gone]
        unset = patch.get("unset") or []
        for name in unset if isinstance(unset, list) else [unset]:
            props.pop(name, None)

    def public(self, pid):
        p = self.by_id[pid]
        attrs = {k: p.get(k) for k in PROFILE_IDS + PROFILE_ATTRIBUTES}
        attrs["properties"] = p["properties"]
        return {"type": "profile", "id": pid, "attributes": attrs,
                "links": {"self": "https://a.klaviyo.com/api/profiles/%s/" % pid}}


# --------------------------------------------------------------------------------------------------
# event limits Klaviyo enforces beyond the schema

def event_time(value, parts):
    """The event's time as an aware datetime (None when absent); refuses one before 1990 or > 1 year ahead."""
    if value is None:
        return None
    t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    if t.year < 1990 or t > now + datetime.timedelta(days=365):
        raise Refused("time %s must be after 1990 and at most a year ahead" % value, parts)
    return t


def check_properties(value, parts, depth=1):
    """Klaviyo's limits on event properties: string bytes, nesting, array items, top-level count. Values
    come from json.loads (exact str, dict and list). A leaf is checked in its parent's loop and a path
    made only for a container or a refusal: this walk was the stand-in's largest cost (a bulk job of
    1,000 events is ~50,000 values)."""
    def too_long(text):                   # UTF-8 takes at most 4 bytes a character
        return len(text) * 4 > MAX_STRING and len(text.encode("utf-8")) > MAX_STRING

    def refuse_string(text, at):
        n = len(text.encode("utf-8"))
        raise Refused("string of %d bytes, over the limit of %d" % (n, MAX_STRING), at)

    t = type(value)
    if t is str:
        if too_long(value):
            refuse_string(value, parts)
        return
    if t is not dict and t is not list:
        return
    if depth > MAX_DEPTH:
        raise Refused("nested %d levels deep, over the limit of %d" % (depth, MAX_DEPTH), parts)
    if t is list and len(value) > MAX_ARRAY:
        raise Refused("array of %d items, over the limit of %d" % (len(value), MAX_ARRAY), parts)
    if depth == 1 and t is dict and len(value) > MAX_PROPERTIES:
        raise Refused("%d properties, over the limit of %d" % (len(value), MAX_PROPERTIES), parts)
    for k, v in (value.items() if t is dict else enumerate(value)):
        tv = type(v)
        if tv is str:
            if too_long(v):
                refuse_string(v, parts + [k])
        elif tv is dict or tv is list:
            check_properties(v, parts + [k], depth + 1)


def body_value(body):
    """A request body as recorded: its JSON value, else its text, None when empty."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


def metric_id(name):
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:6])


# --------------------------------------------------------------------------------------------------
# the stand-in: one lock over all state; answer() is the whole of Klaviyo's side

class Standin:
    def __init__(self, ops, keys, limiter, record, log, count_only=False):
        self.ops, self.keys, self.limiter, self.record, self.log = ops, keys, limiter, record, log
        self.count_only = count_only
        self.lock, self.vlock = threading.Lock(), threading.Lock()
        self.warm()
        self.reset()

    def warm(self):
        """Converts every operation's schema now, so no request pays for it."""
        for method, pattern, _, _, _ in ROUTES:
            path = pattern.pattern[1:-1].replace("[^/]+", "X")
            spec_path, op = self.ops.find(method, path)
            if op is None:
                raise SystemExit("klaviyo_standin.py: the spec has no %s %s" % (method, path))
            self.ops.validator(spec_path, method.lower(), op)

    def reset(self):
        with self.lock:
            self.events, self.requests, self.faults = [], [], []
            self.seen, self.metrics, self.profiles = set(), {}, Profiles()
            self.limiter.logs = {}
            self.stats = {"by_endpoint": {}, "events_accepted": 0, "events_deduplicated": 0}
            self.objects = {"template": [], "flow": [], "segment": []}
            self.ids = 0

    def new_id(self, prefix):
        self.ids += 1
        return "%s%06d" % (prefix, self.ids)

    # ---- the control API ----------------------------------------------------------------------

    def control(self, method, path, query, body):
        """GET events, requests (?since=SEQ&path=PREFIX), profiles, stats, faults; POST reset, faults."""
        since, prefix = int((query.get("since") or ["0"])[0] or 0), (query.get("path") or [""])[0]
        what = path[len("/_standin/"):]
        with self.lock:
            views = {
                "events": lambda: {"events": self.events[since:]},
                "requests": lambda: {"requests": [r for r in self.requests[since:] if r["path"].startswith(prefix)]},
                "profiles": lambda: {"profiles": list(self.profiles.by_id.values())},
                "stats": lambda: dict(self.stats, requests=len(self.requests), faults_pending=len(self.faults),
                                      profiles=len(self.profiles.by_id), metrics=len(self.metrics)),
                "faults": lambda: {"faults": self.faults},
                "objects": lambda: {kind + "s": items for kind, items in self.objects.items()},
            }
            if method == "GET" and what in views:
                return control_json(200, views[what]())
        if method == "POST" and what == "reset":
            self.reset()
            return control_json(200, {"reset": True})
        if method == "POST" and what == "faults":
            return self.queue_faults(body)
        return control_json(404, {"error": "no control endpoint %s %s" % (method, path)})

    def queue_faults(self, body):
        try:
            spec = json.loads(body or b"null")
            items = spec.get("faults", [spec]) if isinstance(spec, dict) else spec
            if not isinstance(items, list) or not items:
                raise ValueError("expected a fault object, a list of them, or {\"faults\": [...]}")
            faults = []
            for f in items:
                if not isinstance(f, dict) or str(f.get("kind")) not in FAULT_KINDS:
                    raise ValueError("unknown fault %s; kinds: %s" % (json.dumps(f), ", ".join(FAULT_KINDS)))
                f = dict(f, kind=str(f["kind"]), count=int(f.get("count", 1)), path=str(f.get("path", "")))
                faults.append(f)
        except (ValueError, TypeError, AttributeError) as e:
            return control_json(400, {"error": str(e)})
        with self.lock:
            self.faults.extend(faults)
            return control_json(201, {"faults": self.faults})

    def take_fault(self, path):
        for f in self.faults:
            if path.startswith(f["path"]):
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                return f
        return None

    @staticmethod
    def fault_answer(f):
        kind, seconds = f["kind"], int(f.get("retry_after", f.get("seconds", 1)))
        if kind == "slow":
            return None
        if kind == "reset":
            a = Answer(0)
            a.reset = True
            return a
        if kind.startswith("429"):
            return throttled(seconds, {"Retry-After": str(seconds)} if kind == "429" else None)
        if kind == "403-html":
            return Answer(403, CLOUDFLARE_PAGE, {"Server": "cloudflare", "cf-mitigated": "challenge"},
                          ctype="text/html; charset=UTF-8")
        if kind in ("502", "504"):
            title = kind + (" Bad Gateway" if kind == "502" else " Gateway Timeout")
            text = "<html><head><title>{0}</title></head><body><h1>{0}</h1><hr>cloudflare</body></html>\n".format(title)
            return Answer(int(kind), text, {"Server": "cloudflare"}, ctype="text/html")
        if kind in ("500", "503"):
            code, title = ("error", "A server error occurred.") if kind == "500" else \
                ("service_unavailable", "Service unavailable.")
            extra = {"Retry-After": str(f["retry_after"])} if "retry_after" in f else None
            return errors(int(kind), problem(int(kind), code, title, f.get("detail", title)), headers=extra)
        if kind == "401":
            return errors(401, problem(401, "not_authenticated", "Authentication credentials were not provided.",
                                       f.get("detail", "Missing or invalid authorization scheme. "
                                                       "Please use Klaviyo-API-Key.")))
        return invalid(f.get("detail", "Invalid input (a fault queued in the stand-in)."),
                       f.get("pointer", "/data/attributes/properties"))

    # ---- Klaviyo's side -------------------------------------------------------------------------

    def answer(self, method, target, headers, body, arrived=None):
        """The Answer to one request, and the request recorded; control requests under /_standin/."""
        split = urllib.parse.urlsplit(target)
        path, query = split.path, urllib.parse.parse_qs(split.query, keep_blank_values=True)
        if path.startswith("/_standin/"):
            return self.control(method, path, query, body), None
        started, fault = time.monotonic(), None
        with self.lock:
            fault = self.take_fault(path)
        answer = self.fault_answer(fault) if fault else None
        account = None
        if answer is None:
            answer, account = self.klaviyo(method, path, query, headers, body, arrived)
        if fault:
            answer.delay = int(fault.get("delay_ms", 1000 if fault["kind"] == "slow" else 0)) / 1000.0
        record = {"method": method, "path": target, "status": None if answer.reset else answer.status,
                  "account": account, "received": now_iso(), "at_ms": int(time.time() * 1000),
                  "body": None if self.count_only else body_value(body),
                  "headers": {k: redact(v) for k, v in headers.items()}}
        if fault:
            record["fault"] = fault["kind"]
        with self.lock:
            record["seq"] = len(self.requests)
            self.requests.append(record)
            route = "%s %s" % (method, re.sub(r"^/api/lists/[^/]+/", "/api/lists/{id}/", path))
            counts = self.stats["by_endpoint"].setdefault(route, {})
            key = "reset" if answer.reset else str(answer.status)
            counts[key] = counts.get(key, 0) + 1
        rejected = headers.get("Authorization") if answer.status == 401 and not fault else None
        self.log({"method": method, "path": target, "status": record["status"], "account": account,
                  "fault": record.get("fault"), "rejected": rejected,
                  "ms": round((time.monotonic() - started) * 1000, 1)})
        return answer, record

    def klaviyo(self, method, path, query, headers, body, arrived=None):
        routes = [r for r in ROUTES if r[1].match(path)]
        route = next((r for r in routes if r[0] == method), None)
        if route is None:
            return (errors(405, problem(405, "method_not_allowed", "Method not allowed.", "Method \"%s\" not allowed."
                                        % method)) if routes else
                    errors(404, problem(404, "not_found", "Not found.", "The path %s could not be found" % path))), None
        _, _, cls, ok, handler = route
        if path.startswith("/client/"):
            company = (query.get("company_id") or [""])[0]
            if not company:
                return invalid("company_id is required for client endpoints.", parameter="company_id"), None
            account = "company:" + company
        else:
            auth = headers.get("Authorization") or ""
            scheme, _, key = auth.partition(" ")
            if scheme != "Klaviyo-API-Key" or not key:
                return errors(401, problem(401, "not_authenticated", "Authentication credentials were not provided.",
                                           "Missing or invalid authorization scheme. Please use Klaviyo-API-Key."
                                           )), None
            if not key.startswith("pk_") or (self.keys and key not in self.keys):
                return errors(401, problem(401, "authentication_failed", "Incorrect authentication credentials.",
                                           "Incorrect authentication credentials.")), None
            account = "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]
        revision = headers.get("revision")
        if not revision:
            return invalid("The revision header is required.", parameter="revision"), account
        if not vr.REVISION_RE.match(revision):
            return invalid("Invalid revision %s." % revision, parameter="revision"), account
        with self.lock:
            retry, limit_headers = self.limiter.take((account, method, route[1].pattern), cls,
                                                     arrived if arrived is not None else time.monotonic())
        if retry:
            return throttled(retry, dict(limit_headers, **{"Retry-After": str(retry)})), account
        if self.count_only and handler in COUNTED_HANDLERS:
            answer = self.counted(body, ok)
        else:
            answer = self.checked(method, path, headers, body, ok, handler, query)
        if answer.status < 300:
            answer.headers.update(limit_headers)
        return answer, account

    def checked(self, method, path, headers, body, ok, handler, query=None):
        doc = None
        if method == "POST":
            ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype not in BODY_TYPES:
                return errors(415, problem(415, "unsupported_media_type", "Unsupported media type.",
                                           "Unsupported media type \"%s\" in request." % ctype))
            limit = MAX_PROFILE_BODY if path == "/api/profile-import" else MAX_BODY
            if len(body) > limit:
                return errors(413, problem(413, "request_too_large", "Request entity too large.",
                                           "The payload is %d bytes, over the limit of %d." % (len(body), limit)))
            try:
                doc = json.loads(body, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            except (ValueError, UnicodeDecodeError) as e:
                return errors(400, problem(400, "parse_error", "Malformed request.", "JSON parse error - %s" % e))
            found = self.first_problem(method, path, doc)
            if found:
                return invalid(found[1], pointer(found[0]))
        try:
            with self.lock:
                if method == "GET":
                    return getattr(self, handler)(path, query, ok)
                return getattr(self, handler)(path, doc, ok)
        except Refused as r:
            return errors(400, *[problem(400, "invalid", "Invalid input.", d, pointer(p))
                                 for d, p in [(r.detail, r.parts)] + r.more])

    def counted(self, body, ok):
        """--count-only: an event request's events counted, not read; nothing is kept."""
        if len(body) > MAX_BODY:
            return errors(413, problem(413, "request_too_large", "Request entity too large.",
                                       "The payload is %d bytes, over the limit of %d." % (len(body), MAX_BODY)))
        with self.lock:
            self.stats["events_accepted"] += body.count(b'"type":"event"')
        return Answer(ok)

    def first_problem(self, method, path, doc):
        spec_path, op = self.ops.find(method, path)
        with self.vlock:            # jsonschema's RefResolver is not thread-safe
            validator = self.ops.validator(spec_path, method.lower(), op)
            found = vr.body_problems(validator, doc)[:1] if validator else []
        if not found:
            return None
        parts, msg = found[0]
        missing = re.match(r"^'([^']+)' is a required property$", msg)
        return (parts + [missing.group(1)], msg) if missing else (parts, msg)

    # ---- endpoints (called with the lock held; raise Refused for a 400) -----------------------------

    def accept_events(self, path, items, where=None):
        """items: (pointer parts of the event's attributes, of its profile's, profile data, event attributes,
        backfill); `where`: the pointer parts of a bulk request's list."""
        if len(items) > MAX_BULK_EVENTS:
            raise Refused("%d events, over the limit of %d a request" % (len(items), MAX_BULK_EVENTS), where)
        keys, batch, refused = {}, [], []
        for item in items:
            try:
                self.check_event(item, keys, batch)
            except Refused as r:
                if where is None:
                    raise
                refused.append((r.detail, r.parts))
        if refused:
            raise Refused(refused[0][0], refused[0][1], refused[1:])
        self.store_events(path, batch)

    def check_event(self, item, keys, batch):
        """One event's checks (a Refused names what is wrong); a good one joins the batch."""
        parts, profile_parts, profile, attrs, backfill = item
        name = attrs["metric"]["data"]["attributes"]["name"]
        if len(name) > MAX_METRIC_NAME:
            raise Refused("metric name of %d characters, over the limit of %d" % (len(name), MAX_METRIC_NAME),
                          parts + ["metric", "data", "attributes", "name"])
        try:
            when = event_time(attrs.get("time"), parts + ["time"])
        except ValueError as e:
            raise Refused("time: %s" % e, parts + ["time"])
        check_properties(attrs.get("properties") or {}, parts + ["properties"])
        self.need_identifier(profile, profile_parts)
        uid, who = attrs.get("unique_id"), self.profiles.find(profile) or Profiles.identifiers(profile)[0]
        if uid is not None and (who, name, uid) in keys:
            raise Refused("Duplicate unique_id %s for one profile and metric in this request (first at %s)"
                          % (json.dumps(uid), pointer(keys[(who, name, uid)])), parts + ["unique_id"])
        keys[(who, name, uid)] = parts + ["unique_id"]
        batch.append((profile, attrs, name, uid, when, backfill))

    def store_events(self, path, batch):
        for profile, attrs, name, uid, when, backfill in batch:
            pid, _ = self.profiles.upsert(profile)
            second = (when or datetime.datetime.now(datetime.timezone.utc)).replace(microsecond=0)
            key = (pid, name, ("uid", uid) if uid is not None else ("time", second.isoformat()))
            if key in self.seen:
                self.stats["events_deduplicated"] += 1
                continue
            self.seen.add(key)
            self.metrics.setdefault(name, {"id": metric_id(name), "created": now_iso()})
            ids = {k: (profile.get("attributes") or {}).get(k) for k in ("email", "phone_number", "external_id")}
            event = {"seq": len(self.events), "metric": name, "profile": ids, "profile_id": pid, "unique_id": uid,
                     "properties": attrs.get("properties"), "time": attrs.get("time"), "value": attrs.get("value"),
                     "value_currency": attrs.get("value_currency"), "backfill": bool(backfill),
                     "endpoint": path, "received": now_iso()}
            self.events.append(event)
            self.stats["events_accepted"] += 1
            if self.record:
                self.record.write(json.dumps(event, ensure_ascii=False) + "\n")
                self.record.flush()

    def on_event(self, path, doc, ok):
        a = doc["data"]["attributes"]
        self.accept_events(path, [(["data", "attributes"], ["data", "attributes", "profile", "data", "attributes"],
                                   a["profile"]["data"], a, a.get("backfill"))])
        return Answer(ok)

    def on_bulk_job(self, path, doc, ok):
        items, where = [], ["data", "attributes", "events-bulk-create", "data"]
        for n, item in enumerate(doc["data"]["attributes"]["events-bulk-create"]["data"]):
            ia = item["attributes"]
            for m, ev in enumerate(ia["events"]["data"]):
                items.append((where + [n, "attributes", "events", "data", m, "attributes"],
                              where + [n, "attributes", "profile", "data", "attributes"], ia["profile"]["data"],
                              ev["attributes"], ev["attributes"].get("backfill") or ia.get("backfill")))
        self.accept_events(path, items, where)
        return Answer(ok)

    def on_bulk_client(self, path, doc, ok):
        ia = doc["data"]["attributes"]
        items = [(["data", "attributes", "events", "data", m, "attributes"],
                  ["data", "attributes", "profile", "data", "attributes"], ia["profile"]["data"], ev["attributes"],
                  ev["attributes"].get("backfill") or ia.get("backfill"))
                 for m, ev in enumerate(ia["events"]["data"])]
        self.accept_events(path, items, ["data", "attributes", "events", "data"])
        return Answer(ok)

    def need_identifier(self, data, parts):
        phone = (data.get("attributes") or {}).get("phone_number")
        if phone is not None and not E164_RE.match(phone):
            raise Refused("Invalid phone number format (Example of a valid format: +12345678901)",
                          parts + ["phone_number"])
        if not Profiles.identifiers(data):
            raise Refused("A profile identifier (email, phone_number, external_id, anonymous_id or id) "
                          "is required.", parts)

    def on_profile(self, path, doc, ok):
        self.need_identifier(doc["data"], ["data", "attributes"])
        pid, created = self.profiles.upsert(doc["data"])
        if path.startswith("/client/"):
            return Answer(ok)
        return Answer(201 if created else 200, {"data": self.profiles.public(pid)})

    def on_subscribe(self, path, doc, ok):
        list_id = (((doc["data"].get("relationships") or {}).get("list") or {}).get("data") or {}).get("id")
        a = doc["data"]["attributes"]
        if "profiles" in a:                 # the /api/ job: a list of profiles
            found = [(["data", "attributes", "profiles", "data", n, "attributes"], p)
                     for n, p in enumerate(a["profiles"]["data"])]
        else:
            found = [(["data", "attributes", "profile", "data", "attributes"], a["profile"]["data"])]
        for parts, p in found:
            self.need_identifier(p, parts)
        for _, p in found:
            pid, _ = self.profiles.upsert(p)
            channels = sorted(((p.get("attributes") or {}).get("subscriptions") or {}).keys())
            self.profiles.by_id[pid]["subscriptions"][list_id or ""] = channels
        return Answer(ok)

    def on_profile_bulk(self, path, doc, ok):
        profiles = doc["data"]["attributes"]["profiles"]["data"]
        for p in profiles:
            self.profiles.upsert(p)
        job = self.new_id("standin-job-")
        return Answer(ok, {"data": {"type": "profile-bulk-import-job", "id": job, "attributes": {
            "status": "queued", "created_at": now_iso(), "total_count": len(profiles), "completed_count": 0,
            "failed_count": 0, "completed_at": None, "expires_at": None, "started_at": None},
            "links": {"self": "https://a.klaviyo.com/api/profile-bulk-import-jobs/%s/" % job}}})

    def on_list_add(self, path, doc, ok):
        return Answer(ok)

    def on_flow(self, path, doc, ok):
        for i, trig in enumerate(doc["data"]["attributes"]["definition"].get("triggers") or []):
            if trig.get("type") == "metric" and trig.get("id") not in {m["id"] for m in self.metrics.values()}:
                raise Refused("Metric %s does not exist." % json.dumps(trig.get("id")),
                              ["data", "attributes", "definition", "triggers", i, "id"])
        return self.on_created(path, doc, ok, {"status": "draft", "archived": False})

    def on_created(self, path, doc, ok, extra=None):
        kind = doc["data"]["type"]
        oid = self.new_id(kind[:2].upper())
        attrs = dict(doc["data"]["attributes"], created=now_iso(), updated=now_iso(), **(extra or {}))
        obj = {"type": kind, "id": oid, "attributes": attrs,
               "links": {"self": "https://a.klaviyo.com/api/%ss/%s/" % (kind, oid)}}
        self.objects.setdefault(kind, []).append(obj)
        return Answer(ok, {"data": obj})

    def on_list_objects(self, path, query, ok):
        """GET /api/templates|flows|segments, with Klaviyo's filter=equals(name,"...") (the installer's lookup)."""
        kind = path.rstrip("/").rsplit("/", 1)[1][:-1]
        items = self.objects.get(kind, [])
        wanted = (query or {}).get("filter", [""])[0]
        if wanted:
            m = re.match(r'^equals\(name,"((?:[^"\\]|\\.)*)"\)$', wanted)
            if not m:
                return invalid("Invalid filter %s." % wanted, parameter="filter")
            name = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
            items = [o for o in items if o["attributes"].get("name") == name]
        return Answer(ok, {"data": items, "links": {"self": "https://a.klaviyo.com" + path, "next": None,
                                                    "prev": None}})

    def on_metrics(self, path, query, ok):
        api = {"object": "integration", "id": "0rG4eQ", "key": "api", "name": "API", "category": "API"}
        data = [{"type": "metric", "id": m["id"], "links": {"self": "https://a.klaviyo.com/api/metrics/%s/" % m["id"]},
                 "attributes": {"name": name, "created": m["created"], "updated": m["created"], "integration": api}}
                for name, m in self.metrics.items()]
        return Answer(ok, {"data": data, "links": {"self": "https://a.klaviyo.com/api/metrics/",
                                                   "next": None, "prev": None}})


# --------------------------------------------------------------------------------------------------
# HTTP/1.1 with keep-alive

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120                   # an idle keep-alive connection is closed after this

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def serve(self):
        arrived = time.monotonic()      # Klaviyo counts a request where it arrives, not when it is read
        try:
            body = self.read_body()
        except ValueError:
            self.send_error(400, "bad body framing")
            return
        standin = self.server.standin
        answer, _ = standin.answer(self.command, self.path, self.headers, body, arrived)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.reset:
            self.close_connection = True
            self.server.reset_next(self.connection)
            return
        self.send_response(answer.status)
        for k, v in answer.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = serve

    def version_string(self):
        return "klaviyo-standin"

    def log_request(self, code="-", size="-"):   # Standin.answer logs every request itself
        pass

    def log_message(self, fmt, *args):      # http.server's own complaints (bad request lines, timeouts)
        self.server.standin.log({"http": fmt % args})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The listen backlog. socketserver's default of 5 is smaller than the connections a deliverer opens at
    # once (32 a tenant): past it the kernel drops the client's first data and TCP resends it seconds later.
    request_queue_size = 128

    def __init__(self, address, standin):
        super().__init__(address, Handler)
        self.standin, self.resets, self.resets_lock = standin, set(), threading.Lock()

    def reset_next(self, sock):
        """Closes `sock` with an RST (SO_LINGER 0) once its handler is done, with no FIN before it."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self.resets_lock:
            self.resets.add(sock)

    def handle_error(self, request, client_address):     # a client gone mid-answer: one log line
        self.standin.log({"http": "connection error: %s" % (sys.exc_info()[1],)})

    def shutdown_request(self, request):
        with self.resets_lock:
            reset = request in self.resets
            self.resets.discard(request)
        if reset:
            self.close_request(request)
        else:
            super().shutdown_request(request)


# --------------------------------------------------------------------------------------------------

def make_logger(quiet):
    lock = threading.Lock()

    def log(fields):
        if quiet and "event" not in fields:
            return
        fields = {k: v for k, v in fields.items() if v is not None}
        line = redact(json.dumps(dict({"t": now_iso()}, **fields), ensure_ascii=False))
        with lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    return log


def main(argv=None):
    ap = argparse.ArgumentParser(description="A local HTTP server that answers like Klaviyo (for tests).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick one; default)")
    ap.add_argument("--key", action="append", default=[], help="an accepted pk_ key (repeatable; default: any)")
    ap.add_argument("--no-limits", action="store_true", help="lift the rate limits")
    ap.add_argument("--limit-scale", type=float, default=1.0, help="multiply every rate limit (min 1)")
    ap.add_argument("--record", help="append accepted events to this file as NDJSON")
    ap.add_argument("--spec", help="Klaviyo OpenAPI spec (default: spec/klaviyo/%s)" % vr.SPEC_NAME)
    ap.add_argument("--watch-pid", type=int, help="exit when this process is gone (tests: no orphan)")
    ap.add_argument("--quiet", action="store_true", help="no log line per request")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="HTTPS with this certificate and key (PEM): the fault suite's certificate that does "
                         "not verify")
    ap.add_argument("--count-only", action="store_true",
                    help="benchmarks: event requests are counted (a byte scan), not parsed, validated, "
                         "deduplicated or kept")
    args = ap.parse_args(argv)
    log = make_logger(args.quiet)
    try:
        ops = vr.load_operations(args.spec)
    except (OSError, ValueError) as e:
        sys.stderr.write("klaviyo_standin.py: cannot read the Klaviyo spec: %s\n" % e)
        return 2
    record = open(args.record, "a", encoding="utf-8") if args.record else None
    standin = Standin(ops, set(args.key), Limiter(not args.no_limits, args.limit_scale), record, log,
                      args.count_only)
    try:
        server = Server(("127.0.0.1", args.port), standin)
    except OSError as e:
        sys.stderr.write("klaviyo_standin.py: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, e))
        return 2
    if args.tls:
        # Python's ssl wraps the listening socket: each accepted connection is TLS, its handshake done
        # by its own thread's first read (a client that refuses the certificate ends there, before
        # any request is read, and the log says so).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(args.tls[0], args.tls[1])
        except (OSError, ssl.SSLError) as e:
            sys.stderr.write("klaviyo_standin.py: cannot load --tls %s %s: %s\n" % (args.tls[0], args.tls[1], e))
            return 2
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    def watch():                            # --watch-pid: never outlive the test run that started it
        while not stop.wait(0.2):
            if not os.path.exists("/proc/%d" % args.watch_pid):
                stop.set()
    if args.watch_pid:
        threading.Thread(target=watch, daemon=True).start()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    port = server.server_address[1]
    sys.stdout.write("listening on 127.0.0.1:%d\n" % port)
    sys.stdout.flush()
    log({"event": "started", "port": port, "limits": "off" if args.no_limits else "x%g" % args.limit_scale,
         "tls": args.tls is not None or None,
         "count_only": args.count_only or None,
         "keys": ", ".join(sorted(args.key)) or "any pk_ key"})
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    with standin.lock:
        if record:
            record.close()
        log({"event": "stopped", "requests": len(standin.requests), "events": len(standin.events)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
