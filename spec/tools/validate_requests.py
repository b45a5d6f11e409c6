#!/usr/bin/python3
"""Validates the Klaviyo requests that `returnflow map` prints against Klaviyo's OpenAPI spec.

Reads `returnflow map` output (NDJSON, or the --pretty form) from files or standard input. For every
request of every document (requests[], then scheduled[].request) it finds the operation by method and
path (query string stripped, {id} templates matched), takes the operation's application/vnd.api+json
requestBody schema, converts it from OpenAPI 3.0 to JSON Schema and validates the body with
jsonschema. It also checks the headers (revision, Content-Type, a redacted Authorization on /api/ and
none on /client/) and the operation's required query parameters (company_id on /client/).

Strict mode (the default): every object schema that declares `properties` refuses unknown fields
(additionalProperties: false unless the schema says otherwise), as Klaviyo does; so a typo such as
`value_curency` is caught here, not by a 400 days later. --loose keeps OpenAPI's open objects.

Each violation is printed as "INPUT request K: /json/pointer: message", where INPUT is the document's
"input", K counts the document's requests from 1 (requests[] first, then scheduled[]) and the pointer
is into the request object ({method, path, headers, body}). Then "validated N requests, M invalid".
Exit status: 0 all valid; 1 some invalid, or no request at all with --require-requests; 2 the input or
the spec cannot be read.

--serve: one long-lived process for a whole test run, instead of one per check (reading the spec and
building its validators is most of a check's time). It listens on 127.0.0.1 (port 0: a free one), prints
"listening on 127.0.0.1:PORT", and answers each POST (body: `returnflow map` output; query
require-requests=1, loose=1) with the report as text and the exit status in the X-Exit header. With
--watch-pid it exits when that process is gone, so a test run never leaves it behind.

Runs with Debian's /usr/bin/python3 (python3-jsonschema 4.10):
    ./build/returnflow map fixtures/loop/*.json | /usr/bin/python3 spec/tools/validate_requests.py
The spec is the repository's spec/klaviyo/openapi-2026-07-15.json (Klaviyo's, pruned: see the README
there), or the file given with --spec.
"""
import argparse
import copy
import datetime
import hashlib
import marshal
import http.server
import json
import os
import re
import sys
import threading
import urllib.parse

import importlib.util

if importlib.util.find_spec("jsonschema") is None:  # pragma: no cover - an environment problem, said plainly
    sys.stderr.write("validate_requests.py: the jsonschema module is missing; run it with /usr/bin/python3 "
                     "(apt-get install python3-jsonschema)\n")
    sys.exit(2)
# jsonschema is imported when a body first fails the compiled check (slow_validator): its import was
# ~90 ms of the ~280 ms of CPU each stand-in's start cost, and most stand-ins never see a bad body.
jsonschema = None


def load_jsonschema():
    global jsonschema
    if jsonschema is None:
        import jsonschema as module
        jsonschema = module
    return jsonschema


try:
    # fastjsonschema compiles a schema into Python code: ~20x faster than jsonschema on a valid body,
    # which is nearly every body the stand-in sees. jsonschema still says why a body is invalid.
    import fastjsonschema
except ImportError:  # pragma: no cover - optional: every body then goes through jsonschema alone
    fastjsonschema = None

SPEC_NAME = "openapi-2026-07-15.json"
BODY_TYPE = "application/vnd.api+json"
REDACTED_AUTHORIZATION = "Klaviyo-API-Key ***"
REVISION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9_-]+)?$")
SCHEMA_PREFIX = "#/components/schemas/"
ROOT_CHECK = "validate"         # the function fastjsonschema names after a schema without an $id
OPEN_SUFFIX = "~open"            # a schema variant whose top object stays open (an allOf member)


def default_spec_path():
    spec_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(spec_dir, "klaviyo", SPEC_NAME)


# --------------------------------------------------------------------------------------------------
# OpenAPI 3.0 -> JSON Schema (draft 7)

class Converter:
    """Converts components/schemas on demand; the converted ones live in self.root."""

    def __init__(self, spec, strict):
        self.source = spec.get("components", {}).get("schemas", {})
        self.strict = strict
        self.defs = {}
        self.root = {"components": {"schemas": self.defs}}
        self.pending = []

    def ref(self, ref, open_top=False):
        if not ref.startswith(SCHEMA_PREFIX):
            raise ValueError("unsupported $ref %s (only %s...)" % (ref, SCHEMA_PREFIX))
        name = ref[len(SCHEMA_PREFIX):] + (OPEN_SUFFIX if open_top else "")
        if name not in self.defs:
            self.defs[name] = None          # reserved: recursive schemas terminate
            self.pending.append(name)
        return SCHEMA_PREFIX + name

    def finish(self):
        while self.pending:
            name = self.pending.pop()
            open_top = name.endswith(OPEN_SUFFIX)
            base = name[:-len(OPEN_SUFFIX)] if open_top else name
            if base not in self.source:
                raise ValueError("$ref to a missing schema: %s" % base)
            self.defs[name] = self.convert(self.source[base], open_top=open_top)

    def schema_for(self, openapi_schema):
        converted = self.convert(openapi_schema)
        self.finish()
        return converted

    def convert(self, s, open_top=False):
        if not isinstance(s, dict):
            return s
        nullable = s.get("nullable") is True
        out = {}
        for key, value in s.items():
            if key in ("nullable", "example", "examples", "description", "xml", "externalDocs",
                       "discriminator", "readOnly", "writeOnly", "deprecated"):
                continue
            if key == "$ref":
                out["$ref"] = self.ref(value, open_top)
            elif key == "properties":
                out["properties"] = {k: self.convert(v) for k, v in value.items()}
            elif key == "allOf":
                # Members of an allOf each see only part of the object: they stay open.
                out["allOf"] = [self.convert(v, open_top=True) for v in value]
            elif key in ("anyOf", "oneOf"):
                # oneOf [number, integer] means "a number": every integer matches both, which JSON
                # Schema's oneOf would refuse, so such a oneOf is read as the anyOf it intends.
                types = {v.get("type") for v in value if isinstance(v, dict)}
                key = "anyOf" if key == "oneOf" and {"number", "integer"} <= types else key
                out[key] = [self.convert(v, open_top=open_top) for v in value]
            elif key in ("items", "not"):
                out[key] = self.convert(value)
            elif key == "additionalProperties":
                out[key] = self.convert(value) if isinstance(value, dict) else value
            else:
                out[key] = copy.deepcopy(value)
        if self.strict and not open_top and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        if "$ref" in out and len(out) > 1:
            # Draft 7 ignores a $ref's siblings; keep them by moving the $ref into an allOf.
            target = out.pop("$ref")
            out = {"allOf": [{"$ref": target}, out]}
        if nullable:
            out = self.nullable(out)
        return out

    @staticmethod
    def nullable(out):
        if set(out) <= {"type", "format", "enum", "default", "minimum", "maximum", "minLength", "maxLength",
                        "pattern", "items", "properties", "required", "additionalProperties",
                        "minItems", "maxItems", "maxProperties", "minProperties", "title"} and "type" in out:
            t = out["type"]
            out = dict(out)
            out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = list(out["enum"]) + [None]
            return out
        return {"anyOf": [out, {"type": "null"}]}


# --------------------------------------------------------------------------------------------------
# formats Klaviyo's spec uses on request fields

DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_date_time(value):
    if not isinstance(value, str):
        return True
    if not DATE_TIME_RE.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def is_date(value):
    if not isinstance(value, str):
        return True
    if not DATE_RE.match(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


class BodyValidator:
    """A body schema's jsonschema validator, with a compiled fastjsonschema check in front of it: a body
    the compiled check passes has no errors, so jsonschema walks only the bodies that fail it (and if
    jsonschema then finds nothing, the two disagree: that is reported, never taken as valid).

    The schema comes from `convert` (a function: the OpenAPI schema converted, and the converter's root)
    only when it is needed: for the jsonschema validator, made at the first body that fails, and for the
    compiled check when the cache has none under `cache_key` (what the check is made from: the spec's
    bytes, the operation, this file; None: the converted schema itself is the key)."""

    FORMATS = {"date-time": is_date_time, "date": is_date}

    def __init__(self, convert, cache_key=None):
        self.convert, self.slow, self.fast = convert, None, None
        if fastjsonschema is not None:
            def whole():
                schema, root = convert()
                return dict(schema, components=root["components"])      # its $refs point into the root
            self.fast = compiled_check(whole, self.FORMATS, cache_key)

    def slow_validator(self):
        if self.slow is None:
            js = load_jsonschema()
            schema, root = self.convert()
            self.slow = js.Draft7Validator(schema, resolver=js.RefResolver.from_schema(root),
                                           format_checker=format_checker())
        return self.slow

    def iter_errors(self, body):
        if self.fast is not None:
            try:
                self.fast(body)
                return iter(())
            except fastjsonschema.JsonSchemaException as e:
                errors = list(self.slow_validator().iter_errors(body))
                if not errors:
                    errors = [jsonschema.ValidationError("the two schema validators disagree: fastjsonschema "
                                                         "refuses it (%s), jsonschema does not" % e.message,
                                                         validator="disagree")]
                return iter(errors)
        return self.slow_validator().iter_errors(body)


def cache_folder():
    """Where compiled checks are kept between processes: $RETURNFLOW_VALIDATOR_CACHE, else the user's cache
    folder (~/.cache/returnflow/validators), as ccache keeps objects; None when neither can be made."""
    folder = os.environ.get("RETURNFLOW_VALIDATOR_CACHE")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "returnflow", "validators")
    try:
        os.makedirs(folder, exist_ok=True)
        return folder
    except OSError:
        return None


def compiled_check(make_schema, formats, made_from=None):
    """fastjsonschema's check of the schema make_schema() gives. Generating its code and compiling that
    (~0.7 s of CPU an endpoint) was paid again by every stand-in a test run starts (a few hundred): the
    compiled code is kept in a file named after the hash of everything it is made from and this Python's
    bytecode tag, and loaded with marshal (Python's own .pyc cache is off where PYTHONDONTWRITEBYTECODE is
    set). What it is made from is `made_from` when given (a text naming the spec's bytes, the operation
    and this file's, so the schema is not even converted on a hit), else the schema's own JSON. A file is
    written whole under a temporary name and renamed, so processes at once never read half of one."""
    schema = None
    if made_from is None:
        schema = make_schema()
        made_from = json.dumps(schema, sort_keys=True)
    key = hashlib.sha256("\0".join([fastjsonschema.VERSION, sys.implementation.cache_tag, ",".join(sorted(formats)),
                                    made_from]).encode()).hexdigest()[:32]
    folder = cache_folder()
    path = folder and os.path.join(folder, "check-%s.marshal" % key)
    code = None
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                code = marshal.load(f)
        except (OSError, EOFError, ValueError, TypeError):
            code = None                          # unreadable: made again below
    if code is None:
        schema = schema if schema is not None else make_schema()
        code = compile(fastjsonschema.compile_to_code(schema, formats=formats), "<check %s>" % key, "exec")
        if path:
            tmp = "%s.%d.tmp" % (path, os.getpid())
            try:
                with open(tmp, "wb") as f:
                    marshal.dump(code, f)
                os.replace(tmp, path)
            except OSError:
                pass                             # a read-only cache: compiled each time, as before
    names = {}
    exec(code, names)
    check = names.get(ROOT_CHECK)
    if check is None:                          # a schema that names itself ($id): compiled here as before
        return fastjsonschema.compile(schema if schema is not None else make_schema(), formats=formats)
    return lambda body: check(body, custom_formats=formats)


def format_checker():
    checker = load_jsonschema().FormatChecker(formats=())
    checker.checks("date-time")(is_date_time)
    checker.checks("date")(is_date)
    return checker


# --------------------------------------------------------------------------------------------------
# operations

# What the compiled checks are made from besides the spec and the operation: this file (the converter).
with open(os.path.abspath(__file__), "rb") as own:
    OWN_DIGEST = hashlib.sha256(own.read()).hexdigest()


class Operations:
    """The spec's operations and their body validators. spec_digest: the sha256 of the spec's bytes (the
    compiled checks are then found in the cache without converting a schema), or None."""

    def __init__(self, spec, strict, spec_digest=None):
        self.spec = spec
        self.strict, self.spec_digest = strict, spec_digest
        self.conv = Converter(spec, strict)
        self.conv_lock = threading.Lock()    # the converter's root is shared by every operation
        self.exact = {}
        self.templated = []
        for path, item in spec.get("paths", {}).items():
            if "{" in path:
                pattern = "^" + re.sub(r"\\\{[^/]*?\\\}", "[^/]+", re.escape(path)) + "$"
                self.templated.append((re.compile(pattern), path))
            else:
                self.exact[path] = path
        self.validators = {}

    def find(self, method, path):
        """The spec path and operation object, or (None, None)."""
        spec_path = self.exact.get(path)
        if spec_path is None:
            for pattern, candidate in self.templated:
                if pattern.match(path):
                    spec_path = candidate
                    break
        if spec_path is None:
            return None, None
        op = self.spec["paths"][spec_path].get(method.lower())
        return spec_path, op

    def validator(self, spec_path, method, op):
        key = (spec_path, method)
        if key not in self.validators:
            schema = None
            content = (op.get("requestBody") or {}).get("content") or {}
            if BODY_TYPE in content and "schema" in content[BODY_TYPE]:
                converted = []

                def convert(source=content[BODY_TYPE]["schema"]):
                    with self.conv_lock:
                        if not converted:
                            converted.append(self.conv.schema_for(source))
                    return converted[0], self.conv.root
                made_from = None
                if self.spec_digest:
                    made_from = "\0".join([self.spec_digest, OWN_DIGEST, spec_path, method, str(self.strict)])
                schema = BodyValidator(convert, made_from)
            self.validators[key] = schema
        return self.validators[key]

    def required_query(self, spec_path, op):
        params = list(self.spec["paths"][spec_path].get("parameters", [])) + list(op.get("parameters", []))
        return [p["name"] for p in params if p.get("in") == "query" and p.get("required")]


def pointer(parts):
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def deepest(error):
    """For anyOf/oneOf failures, the branch error that says the most (deepest path, not a type miss)."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def short(value, limit=80):
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def message(error):
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        return "unknown propert%s %s (Klaviyo accepts: %s)" % (
            "y" if len(extra) == 1 else "ies", ", ".join(repr(e) for e in extra), known)
    if error.validator == "format":
        return "%s is not a valid %s" % (short(error.instance), error.validator_value)
    if error.validator == "type":
        return "%s is not of type %s" % (short(error.instance), " or ".join(
            error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]))
    if error.validator == "enum":
        return "%s is not one of %s" % (short(error.instance), short(error.validator_value, 200))
    text = error.message
    return text if len(text) <= 300 else text[:297] + "..."


def check_request(ops, req):
    """The list of (pointer, message) problems of one request object."""
    problems = []
    if not isinstance(req, dict):
        return [("", "a request must be an object {method, path, headers, body}")]
    method, full_path = req.get("method"), req.get("path")
    if not isinstance(method, str) or not isinstance(full_path, str):
        return [("/path" if not isinstance(full_path, str) else "/method", "missing or not a string")]
    split = urllib.parse.urlsplit(full_path)
    path, query = split.path, urllib.parse.parse_qs(split.query, keep_blank_values=True)

    headers = req.get("headers")
    if not isinstance(headers, dict):
        problems.append(("/headers", "missing or not an object"))
        headers = {}
    lower = {str(k).lower(): (k, v) for k, v in headers.items()}
    revision = lower.get("revision")
    if revision is None:
        problems.append(("/headers/revision", "missing: Klaviyo requires the revision header"))
    elif not isinstance(revision[1], str) or not REVISION_RE.match(revision[1]):
        problems.append((pointer(["headers", revision[0]]), "%s is not a revision (YYYY-MM-DD)" % short(revision[1])))
    ctype = lower.get("content-type")
    if ctype is None:
        problems.append(("/headers/Content-Type", "missing: must be %s" % BODY_TYPE))
    elif not isinstance(ctype[1], str) or ctype[1].split(";")[0].strip().lower() != BODY_TYPE:
        problems.append((pointer(["headers", ctype[0]]), "%s, must be %s" % (short(ctype[1]), BODY_TYPE)))
    auth = lower.get("authorization")
    if path.startswith("/client/"):
        if auth is not None:
            problems.append((pointer(["headers", auth[0]]),
                             "must be absent on /client/ endpoints (public key: company_id only)"))
    elif auth is None:
        problems.append(("/headers/Authorization", "missing: /api/ endpoints need %s" % REDACTED_AUTHORIZATION))
    elif auth[1] != REDACTED_AUTHORIZATION:
        problems.append((pointer(["headers", auth[0]]),
                         "must be the redacted %s (is a key leaking into the output?)" % short(REDACTED_AUTHORIZATION)))

    spec_path, op = ops.find(method, path)
    if op is None:
        where = "no path %s" % path if spec_path is None else "no %s on %s" % (method.upper(), spec_path)
        problems.append(("/path", "no such operation in the Klaviyo spec (%s)" % where))
        return problems
    for name in ops.required_query(spec_path, op):
        if not query.get(name) or query[name] == [""]:
            problems.append(("/path", "the required query parameter '%s' is missing" % name))

    validator = ops.validator(spec_path, method.lower(), op)
    if "body" not in req:
        if (op.get("requestBody") or {}).get("required"):
            problems.append(("/body", "missing: %s %s requires a body" % (method.upper(), spec_path)))
        return problems
    if validator is None:
        problems.append(("/body", "%s %s takes no %s body" % (method.upper(), spec_path, BODY_TYPE)))
        return problems
    for parts, msg in body_problems(validator, req["body"]):
        problems.append((pointer(["body"] + parts), msg))
    return problems


def body_problems(validator, body):
    """Every way `body` breaks the operation's schema, as (path parts into the body, message), in path
    order. Also used by the Klaviyo stand-in (spec/standin), which answers the first one as a 400."""
    errors = sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    return [(list(error.absolute_path), message(error)) for error in map(deepest, errors)]


# --------------------------------------------------------------------------------------------------
# input

def documents(text, name):
    """Yields the JSON documents of NDJSON or concatenated (pretty) JSON text."""
    decoder = json.JSONDecoder()
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            return
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ValueError("%s: not `returnflow map` output: %s" % (name, e))
        yield doc


def requests_of(doc):
    if not isinstance(doc, dict):
        return
    for req in doc.get("requests") or []:
        yield req
    for item in doc.get("scheduled") or []:
        yield item.get("request") if isinstance(item, dict) else item


def load_operations(spec_path=None, strict=True):
    """The operations of Klaviyo's spec (default: default_spec_path()); raises OSError or ValueError."""
    with open(spec_path or default_spec_path(), "rb") as f:
        text = f.read()
    return Operations(json.loads(text.decode("utf-8")), strict, hashlib.sha256(text).hexdigest())


def validate_texts(ops, inputs, require_requests, out, err=None):
    """Writes the report of `returnflow map` outputs, a list of (text, name), to out; returns the exit
    status. Problems with the input itself go to err (default: out)."""
    err = err or out
    try:
        docs = [(name, d, doc) for text, name in inputs for d, doc in enumerate(documents(text, name), 1)]
    except ValueError as e:
        err.write("validate_requests.py: %s\n" % e)
        return 2
    total = invalid = 0
    for name, d, doc in docs:
        label = doc.get("input") if isinstance(doc, dict) and doc.get("input") else "%s#%d" % (name, d)
        for k, req in enumerate(requests_of(doc), 1):
            total += 1
            problems = check_request(ops, req)
            if problems:
                invalid += 1
            for where, msg in problems:
                out.write("%s request %d: %s: %s\n" % (label, k, where, msg))
    out.write("validated %d request%s, %d invalid\n" % (total, "" if total == 1 else "s", invalid))
    if invalid:
        return 1
    if require_requests and total == 0:
        err.write("validate_requests.py: no request in the input (--require-requests)\n")
        return 1
    return 0


class Report:
    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)


def serve(spec, watch_pid, digest=None):
    """--serve: answers POSTs until SIGTERM or until watch_pid is gone."""
    ops = {True: Operations(spec, strict=True, spec_digest=digest),
           False: Operations(spec, strict=False, spec_digest=digest)}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            split = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(split.query)
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode("utf-8", "replace")
            report = Report()
            with lock:
                code = validate_texts(ops["1" not in query.get("loose", [])], [(text, "<stdin>")],
                                      "1" in query.get("require-requests", []), report)
            body = "".join(report.parts).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Exit", str(code))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    sys.stdout.write("listening on 127.0.0.1:%d\n" % server.server_address[1])
    sys.stdout.flush()
    import signal
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.2):
        if watch_pid and not os.path.exists("/proc/%d" % watch_pid):
            break
    server.shutdown()
    server.server_close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="`returnflow map` output files ('-' or none: standard input)")
    ap.add_argument("--spec", help="Klaviyo OpenAPI spec (default: spec/klaviyo/%s)" % SPEC_NAME)
    ap.add_argument("--loose", action="store_true",
                    help="allow fields the spec does not declare (OpenAPI's default; Klaviyo refuses them)")
    ap.add_argument("--require-requests", action="store_true", help="fail when the input holds no request")
    ap.add_argument("--serve", action="store_true", help="answer POSTs of map output on a free port (tests)")
    ap.add_argument("--watch-pid", type=int, help="with --serve: exit when this process is gone")
    args = ap.parse_args(argv)

    spec_path = args.spec or default_spec_path()
    try:
        with open(spec_path, "rb") as f:
            text = f.read()
        spec, digest = json.loads(text.decode("utf-8")), hashlib.sha256(text).hexdigest()
    except (OSError, ValueError) as e:
        sys.stderr.write("validate_requests.py: cannot read the Klaviyo spec %s: %s\n" % (spec_path, e))
        return 2
    if args.serve:
        return serve(spec, args.watch_pid, digest)
    ops = Operations(spec, strict=not args.loose, spec_digest=digest)

    inputs = []
    for name in args.files or ["-"]:
        try:
            if name == "-":
                inputs.append((sys.stdin.read(), "<stdin>"))
            else:
                with open(name, encoding="utf-8") as f:
                    inputs.append((f.read(), name))
        except OSError as e:
            sys.stderr.write("validate_requests.py: %s\n" % e)
            return 2
    return validate_texts(ops, inputs, args.require_requests, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
