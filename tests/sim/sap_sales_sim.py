#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stateful SAP Sales Cloud (C4C) OData v2 service on loopback, serving
ContactCollection under /sap/c4c/odata/v1/c4codataapi/.

It reproduces the behaviour that makes C4C hard to integrate with, because
the daemon's real sap_sales connector is tested against it end to end:
Basic auth on every request; CSRF tokens bound to a session cookie (403 with
`x-csrf-token: Required` when missing, wrong or expired); the C4C quirk of
wrapping single entities in `d.results`; `__count` as a string; server
paging at 1000 rows with an absolute `__next` link carrying `$skiptoken`;
weak datetimeoffset ETags with 7 fractional digits and %3A-encoded colons
that change on every modification, with If-Match giving 412 when stale;
`/Date(ms)/` values; 400 for writes of read-only properties (mirroring the
sap:creatable / sap:updatable flags of the Contact type in the tenant's
$metadata) and for unknown or non-filterable properties in $filter.

The property table below is our own subset of the Contact entity type; the
flags were read off the EDMX (the self-test cross-checks them against
FERRY_SPECS when that directory exists).

Test controls live under /__sim/ (contacts, requests, stats, modify,
expire_csrf, faults, config); they need no auth.

Usage as a program:
  python3 tests/sim/sap_sales_sim.py --port 0 --port-file F --user U --password P
"""

import base64
import calendar
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
from http.cookies import SimpleCookie
from urllib.parse import quote, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simcore import SimBase, SimHandler, base_arg_parser, run_cli  # noqa: E402

SERVICE_PATH = "/sap/c4c/odata/v1/c4codataapi/"
SERVER_PAGE = 1000
SESSION_COOKIE = "SAP_SESSIONID_SIM_100"
XSRF_COOKIE = "sap-XSRF_SIM_100"

S, B, G, DTO = "Edm.String", "Edm.Boolean", "Edm.Guid", "Edm.DateTimeOffset"

# name: (type, creatable, updatable, filterable, max length)
CONTACT_PROPS = [
    ("ObjectID", S, False, False, True, 70),
    ("ContactID", S, True, False, True, 10),
    ("ContactUUID", G, False, False, True, None),
    ("ExternalID", S, False, False, True, 100),
    ("ExternalSystem", S, False, False, True, 32),
    ("StatusCode", S, True, True, True, 2),
    ("StatusCodeText", S, False, False, True, None),
    ("TitleCode", S, True, True, True, 4),
    ("FirstName", S, True, True, True, 40),
    ("LastName", S, True, True, True, 40),
    ("MiddleName", S, True, True, True, 40),
    ("Name", S, False, False, True, 480),
    ("GenderCode", S, True, True, True, 1),
    ("LanguageCode", S, True, True, True, 2),
    ("AccountID", S, True, True, True, 10),
    ("AccountUUID", G, True, True, True, None),
    ("AccountFormattedName", S, False, False, True, 480),
    ("JobTitle", S, True, True, True, 40),
    ("Department", S, True, True, True, 40),
    ("Phone", S, True, True, True, 40),
    ("Mobile", S, True, True, True, 40),
    ("Fax", S, True, True, True, 40),
    ("Email", S, True, True, True, 255),
    ("EmailInvalidIndicator", B, True, True, True, None),
    ("BusinessAddressCountryCode", S, True, True, True, 3),
    ("BusinessAddressCity", S, True, True, True, 40),
    ("BusinessAddressStreet", S, True, True, True, 60),
    ("BusinessAddressStreetPostalCode", S, True, True, True, 10),
    ("ContactOwnerID", S, True, True, True, 20),
    ("NormalisedPhone", S, False, False, True, 40),
    ("CreationOn", DTO, False, False, True, None),
    ("CreatedBy", S, False, False, True, 480),
    ("ChangedOn", DTO, False, False, True, None),
    ("ChangedBy", S, False, False, True, 480),
    ("EntityLastChangedOn", DTO, False, False, True, None),
    ("ETag", DTO, False, False, False, None),
]
PROPS = {p[0]: p for p in CONTACT_PROPS}
NAV_PROPS = ["ContactIsContactPersonFor", "ContactPersonalAddress", "ContactTextCollection",
             "CorporateAccount"]
STATUS_TEXT = {"1": "In Preparation", "2": "Active", "3": "Obsolete"}


class ODataError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def error_body(message):
    return {"error": {"code": "", "message": {"lang": "en", "value": message}}}


def ticks_now():
    """100-ns ticks since the epoch: the resolution of C4C's ETag timestamps."""
    return time.time_ns() // 100


def etag_for(ticks):
    secs, frac = divmod(ticks, 10 ** 7)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%07dZ" % frac
    return "W/\"datetimeoffset'%s'\"" % stamp.replace(":", "%3A")


def odata_date(ms):
    return "/Date(%d)/" % ms


# -- $filter ---------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<lit>(?:datetimeoffset|datetime|guid|time)?'(?:[^']|'')*')
     |(?P<num>-?\d+(?:\.\d+)?[mMdDlL]?)
     |(?P<punct>[(),])
     |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""", re.X)


def _tokenize(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ODataError(400, "Invalid token at position %d in $filter" % pos)
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


def _parse_literal(tok):
    kind, val = tok
    if kind == "num":
        return float(val.rstrip("mMdDlL"))
    if kind == "word":
        if val == "true":
            return True
        if val == "false":
            return False
        if val == "null":
            return None
        raise ODataError(400, "Invalid literal '%s' in $filter" % val)
    if kind != "lit":
        raise ODataError(400, "Literal expected in $filter")
    prefix, _, rest = val.partition("'")
    body = rest[:-1].replace("''", "'")
    if prefix in ("datetimeoffset", "datetime"):
        m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
                     r"(Z|[+-]\d{2}:\d{2})?$", body)
        if not m:
            raise ODataError(400, "Invalid datetime literal '%s'" % body)
        y, mo, d, h, mi, s, fr, tz = m.groups()
        ms = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s or 0))) * 1000
        ms += int((fr or "0")[:3].ljust(3, "0"))
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            ms -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * 1000
        return ms
    if prefix == "guid":
        return body.upper()
    return body


class _FilterParser:
    OPS = ("eq", "ne", "gt", "ge", "lt", "le")

    def __init__(self, text):
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def parse(self):
        node = self.or_expr()
        if self.i != len(self.toks):
            raise ODataError(400, "Unexpected '%s' in $filter" % self.peek()[1])
        return node

    def or_expr(self):
        nodes = [self.and_expr()]
        while self.peek() == ("word", "or"):
            self.take()
            nodes.append(self.and_expr())
        if len(nodes) == 1:
            return nodes[0]
        props = set()
        for n in nodes:
            props |= n[1]
        if len(props) > 1:
            # C4C restriction: `or` only between conditions on one property.
            raise ODataError(400, "Operator 'or' is only supported between conditions on "
                                  "the same property")
        return ("or", props, nodes)

    def and_expr(self):
        nodes = [self.primary()]
        while self.peek() == ("word", "and"):
            self.take()
            nodes.append(self.primary())
        if len(nodes) == 1:
            return nodes[0]
        props = set()
        for n in nodes:
            props |= n[1]
        return ("and", props, nodes)

    def _prop(self, name):
        if name not in PROPS:
            raise ODataError(400, "Invalid property '%s' in $filter" % name)
        if not PROPS[name][4]:
            raise ODataError(400, "Property '%s' is not filterable" % name)
        return name

    def primary(self):
        kind, val = self.take()
        if (kind, val) == ("punct", "("):
            node = self.or_expr()
            if self.take() != ("punct", ")"):
                raise ODataError(400, "Missing ')' in $filter")
            return node
        if kind == "word" and val in ("startswith", "endswith", "substringof"):
            if val == "substringof":
                raise ODataError(400, "Function substringof is not supported")
            if self.take() != ("punct", "("):
                raise ODataError(400, "'(' expected after %s" % val)
            prop = self._prop(self.take()[1])
            if self.take() != ("punct", ","):
                raise ODataError(400, "',' expected in %s" % val)
            lit = _parse_literal(self.take())
            if self.take() != ("punct", ")"):
                raise ODataError(400, "')' expected in %s" % val)
            return ("fn", {prop}, (val, prop, lit))
        if kind != "word":
            raise ODataError(400, "Property name expected in $filter")
        prop = self._prop(val)
        op = self.take()
        if op[0] != "word" or op[1] not in self.OPS:
            raise ODataError(400, "Operator expected after '%s' in $filter" % prop)
        lit = _parse_literal(self.take())
        return ("cmp", {prop}, (prop, op[1], lit))


def _wild(pattern, value):
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, value, re.S) is not None


def _eval(node, ent):
    kind, _, arg = node
    if kind == "and":
        return all(_eval(n, ent) for n in arg)
    if kind == "or":
        return any(_eval(n, ent) for n in arg)
    if kind == "fn":
        fn, prop, lit = arg
        val = ent.get(prop)
        if not isinstance(val, str) or not isinstance(lit, str):
            return False
        return val.startswith(lit) if fn == "startswith" else val.endswith(lit)
    prop, op, lit = arg
    val = ent.get(prop)
    if op in ("eq", "ne"):
        if isinstance(lit, str) and isinstance(val, str) and "*" in lit:
            hit = _wild(lit, val)
        else:
            hit = val == lit
        return hit if op == "eq" else not hit
    if val is None or lit is None:
        return False
    try:
        return {"gt": val > lit, "ge": val >= lit, "lt": val < lit, "le": val <= lit}[op]
    except TypeError:
        raise ODataError(400, "Incompatible types for '%s %s'" % (prop, op))


def parse_filter(text):
    return _FilterParser(text).parse()


# -- the service -----------------------------------------------------------

class SapHandler(SimHandler):
    def do_GET(self):  # noqa: N802
        self.server.sim.dispatch(self, "GET")

    def do_HEAD(self):  # noqa: N802
        self.server.sim.dispatch(self, "HEAD")

    def do_POST(self):  # noqa: N802
        self.server.sim.dispatch(self, "POST")

    def do_PATCH(self):  # noqa: N802
        self.server.sim.dispatch(self, "PATCH")

    def do_PUT(self):  # noqa: N802
        self.server.sim.dispatch(self, "PUT")

    def do_DELETE(self):  # noqa: N802
        self.server.sim.dispatch(self, "DELETE")

    def do_MERGE(self):  # noqa: N802
        self.server.sim.dispatch(self, "MERGE")


def _parse_query(raw):
    """Query options; `+` stays `+` (only %XX is decoded), as OData clients expect."""
    out = {}
    for part in raw.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out[unquote(k)] = unquote(v)
    return out


class SapSalesSim(SimBase):
    handler_class = SapHandler
    name = "sap-sales-sim"

    def __init__(self, user="FERRY_TECH", password="sim-password", latency_ms=0, **kw):
        super().__init__(**kw)
        self.user = user
        self.password = password
        self.latency_ms = latency_ms
        self.lock = threading.RLock()
        self.contacts = {}            # ObjectID -> internal dict
        self.order = []               # ObjectIDs in creation order
        self.next_contact_id = 1000001
        self.sessions = {}            # session id -> csrf token
        self.requests = []
        self.stats = {}
        self._last_ticks = 0

    @property
    def service_root(self):
        return self.base_url + SERVICE_PATH

    # -- state helpers ----------------------------------------------------

    def _ticks(self):
        with self.lock:
            self._last_ticks = max(ticks_now(), self._last_ticks + 1)
            return self._last_ticks

    def _count(self, key):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    def _touch(self, ent, who):
        t = self._ticks()
        ms = t // 10000
        ent["_ticks"] = t
        ent["ETag"] = ms
        ent["EntityLastChangedOn"] = ms
        ent["ChangedOn"] = ms
        ent["ChangedBy"] = who
        ent["Name"] = " ".join(x for x in (ent.get("FirstName"), ent.get("LastName")) if x)
        ent["StatusCodeText"] = STATUS_TEXT.get(ent.get("StatusCode"), None)
        ent["NormalisedPhone"] = (re.sub(r"[^0-9+]", "", ent["Phone"])
                                  if ent.get("Phone") else None)

    def etag(self, object_id):
        with self.lock:
            return etag_for(self.contacts[object_id]["_ticks"])

    def _create(self, fields, who):
        """Adds a contact from validated fields; returns the internal dict."""
        with self.lock:
            oid = "00163E" + secrets.token_hex(13).upper()
            ent = {p: None for p in PROPS}
            ent.update(fields)
            if not ent.get("ContactID"):
                ent["ContactID"] = str(self.next_contact_id)
                self.next_contact_id += 1
            ent["ObjectID"] = oid
            u = secrets.token_hex(16).upper()
            ent["ContactUUID"] = "%s-%s-%s-%s-%s" % (u[:8], u[8:12], u[12:16], u[16:20], u[20:])
            if ent.get("StatusCode") is None:
                ent["StatusCode"] = "2"
            self._touch(ent, who)
            ent["CreationOn"] = ent["ETag"]
            ent["CreatedBy"] = who
            self.contacts[oid] = ent
            self.order.append(oid)
            return ent

    def render(self, ent, select=None):
        uri = "%sContactCollection('%s')" % (self.service_root, ent["ObjectID"])
        out = {"__metadata": {"uri": uri, "type": "c4codata.Contact",
                              "etag": etag_for(ent["_ticks"])}}
        for name, typ, *_ in CONTACT_PROPS:
            if select and name not in select:
                continue
            val = ent.get(name)
            if typ == DTO and val is not None:
                val = odata_date(val)
            out[name] = val
        for nav in NAV_PROPS:
            if select and nav not in select:
                continue
            out[nav] = {"__deferred": {"uri": "%s/%s" % (uri, nav)}}
        return out

    # -- validation of writes ---------------------------------------------

    def _validate(self, body, mode, current=None):
        """Checks a write body; returns the fields to store. mode: POST|PATCH|PUT."""
        if not isinstance(body, dict):
            raise ODataError(400, "The request body must be a JSON object")
        fields = {}
        for k, v in body.items():
            if k == "__metadata":
                continue
            if k in NAV_PROPS:
                raise ODataError(400, "Deep insert of '%s' is not simulated" % k)
            if k not in PROPS:
                raise ODataError(400, "Property '%s' is invalid" % k)
            _, typ, creatable, updatable, _, maxlen = PROPS[k]
            if mode == "POST" and not creatable:
                raise ODataError(400, "Property %s is read-only" % k)
            if mode != "POST" and not updatable:
                cur = current.get(k) if current else None
                if typ == DTO and cur is not None:
                    cur = odata_date(cur)
                if v != cur:
                    raise ODataError(400, "Property %s is read-only" % k)
                continue
            if v is not None:
                if typ == B and not isinstance(v, bool):
                    raise ODataError(400, "Invalid value for property %s (Edm.Boolean)" % k)
                if typ in (S, G) and not isinstance(v, str):
                    raise ODataError(400, "Invalid value for property %s (%s)" % (k, typ))
                if typ == G:
                    if not re.match(r"^[0-9A-F]{8}-([0-9A-F]{4}-){3}[0-9A-F]{12}$", v):
                        raise ODataError(400, "Cannot maintain internal field %s" % k)
                if maxlen and isinstance(v, str) and len(v) > maxlen:
                    raise ODataError(400, "Value for property %s exceeds maximum length %d"
                                     % (k, maxlen))
            fields[k] = v
        if mode in ("POST", "PUT") or "LastName" in fields:
            last = fields.get("LastName") if mode != "PATCH" else fields["LastName"]
            if not isinstance(last, str) or not last.strip():
                raise ODataError(400, "Mandatory property LastName is missing or empty")
        if mode == "POST" and fields.get("ContactID"):
            with self.lock:
                if any(e["ContactID"] == fields["ContactID"] for e in self.contacts.values()):
                    raise ODataError(400, "Contact ID %s already exists" % fields["ContactID"])
        return fields

    # -- auth, csrf ---------------------------------------------------------

    def _check_auth(self, h):
        hdr = h.headers.get("Authorization") or ""
        ok = False
        if hdr.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(hdr[6:].strip()).decode("utf-8").partition(":")
                ok = (hmac.compare_digest(user, self.user)
                      and hmac.compare_digest(pw, self.password))
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            raise ODataError(401, "Logon failed: user or password is not valid",
                             [("WWW-Authenticate", 'Basic realm="SAP NetWeaver Application '
                                                   'Server [SIM/100]"')])

    def _session_of(self, h):
        raw = h.headers.get("Cookie")
        if not raw:
            return None
        jar = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 (malformed cookie header = no session)
            return None
        morsel = jar.get(SESSION_COOKIE)
        return morsel.value if morsel else None

    def _csrf_fetch(self, h, out_headers):
        sid = self._session_of(h)
        with self.lock:
            if sid not in self.sessions:
                sid = secrets.token_hex(16).upper()
                self.sessions[sid] = base64.b64encode(secrets.token_bytes(18)).decode()
                out_headers.append(("Set-Cookie", "%s=%s; path=/; HttpOnly" % (SESSION_COOKIE,
                                                                              sid)))
                out_headers.append(("Set-Cookie", "%s=%s; path=/; secure; HttpOnly" % (
                    XSRF_COOKIE, secrets.token_urlsafe(24))))
            out_headers.append(("x-csrf-token", self.sessions[sid]))
        self._count("csrf_fetch")

    def _check_csrf(self, h):
        sid = self._session_of(h)
        token = h.headers.get("x-csrf-token") or ""
        with self.lock:
            expected = self.sessions.get(sid) if sid else None
        if not expected or not hmac.compare_digest(token, expected):
            raise ODataError(403, "CSRF token validation failed",
                             [("x-csrf-token", "Required")])

    # -- dispatch -----------------------------------------------------------

    def dispatch(self, h, method):
        parts = urlsplit(h.path)
        path = parts.path
        if path.startswith("/__sim/"):
            return self._control(h, method, path)
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        query = _parse_query(parts.query)
        entry = {"method": method, "path": path, "query": parts.query, "params": query,
                 "headers": {k.lower(): ("<redacted>" if k.lower() == "authorization" else v)
                             for k, v in h.headers.items()},
                 "time": time.time()}
        self._count(method)
        status, headers, payload = 500, [], None
        try:
            if method in ("POST", "PATCH", "PUT", "MERGE", "DELETE"):
                raw = h.read_body()
                try:
                    entry["body"] = json.loads(raw.decode("utf-8")) if raw else None
                except (UnicodeDecodeError, ValueError):
                    entry["body"] = raw.decode("utf-8", "replace")
            fault = self.faults.take(method, path)
            if fault:
                if fault["delay_ms"]:
                    time.sleep(fault["delay_ms"] / 1000.0)
                if fault["status"]:
                    raise ODataError(fault["status"], fault.get("message", "Injected failure"))
            self._check_auth(h)
            if method in ("GET", "HEAD") and (h.headers.get("x-csrf-token") or "").lower() \
                    == "fetch":
                self._csrf_fetch(h, headers)
            if not path.startswith(SERVICE_PATH):
                raise ODataError(404, "Service not found: %s" % path)
            rest = path[len(SERVICE_PATH):]
            if method not in ("GET", "HEAD"):
                if rest == "$batch":
                    self._count("batch")
                self._check_csrf(h)
            status, more, payload = self._route(h, method, rest, query, entry)
            headers.extend(more)
        except ODataError as exc:
            status = exc.status
            headers.extend(exc.headers)
            payload = error_body(exc.message)
        if status >= 400:
            self._count(str(status))
        headers.append(("dataserviceversion", "2.0"))
        headers.append(("cache-control", "no-cache, no-store"))
        entry["status"] = status
        entry["response_etag"] = next((v for k, v in headers if k.lower() == "etag"), None)
        entry["response"] = payload if status >= 400 else None
        with self.lock:
            self.requests.append(entry)
        self.log("%s %s -> %d" % (method, h.path, status))
        if payload is None:
            return h.send_raw(status, b"", headers)
        if isinstance(payload, (bytes, str)):
            data = payload.encode("utf-8") if isinstance(payload, str) else payload
            return h.send_raw(status, data, headers, None)
        text = json.dumps(payload)
        # Real C4C escapes the slashes of /Date(...)/; \/ is legal JSON for /.
        text = text.replace('"/Date(', '"\\/Date(').replace(')/"', ')\\/"')
        return h.send_raw(status, text.encode("utf-8"), headers,
                          "application/json; charset=utf-8")

    def _wants_json(self, h, query):
        fmt = query.get("$format")
        if fmt is not None:
            if fmt.lower() != "json":
                raise ODataError(400, "Only $format=json is simulated")
            return
        if "json" not in (h.headers.get("Accept") or "").lower():
            # The real default is Atom XML; the simulator has no Atom writer,
            # and a client that forgot to ask for JSON must notice.
            raise ODataError(406, "Atom XML is the default format; request JSON with "
                                  "$format=json or Accept: application/json")

    def _route(self, h, method, rest, query, entry):
        if rest in ("", "/"):
            if method not in ("GET", "HEAD"):
                raise ODataError(405, "Method not allowed on the service document")
            return 200, [], {"d": {"EntitySets": ["ContactCollection"]}}
        if rest == "$metadata":
            return 200, [("Content-Type", "application/xml")], self._metadata()
        if rest == "$batch":
            raise ODataError(501, "$batch is not simulated")
        if rest in ("ContactCollection", "ContactCollection/"):
            if method == "GET" or method == "HEAD":
                self._wants_json(h, query)
                return self._list(query)
            if method == "POST":
                return self._post(h, query, entry)
            raise ODataError(405, "Method %s not allowed on ContactCollection" % method)
        if rest == "ContactCollection/$count":
            rows = self._select_rows(query)
            return 200, [("Content-Type", "text/plain")], str(len(rows))
        m = re.match(r"^ContactCollection\('([^']*)'\)$", rest)
        if m:
            oid = m.group(1)
            if method in ("GET", "HEAD"):
                self._wants_json(h, query)
                with self.lock:
                    ent = self.contacts.get(oid)
                    if ent is None:
                        raise ODataError(404, "Resource not found for segment "
                                              "'ContactCollection'")
                    sel = self._selection(query)
                    return 200, [("etag", etag_for(ent["_ticks"]))], {
                        "d": {"results": self.render(ent, sel)}}
            if method in ("PATCH", "PUT", "MERGE"):
                return self._update(h, method, oid, entry)
            if method == "DELETE":
                raise ODataError(405, "ContactCollection is not deletable")
        raise ODataError(404, "Resource not found for segment '%s'" % rest.split("(")[0])

    def _selection(self, query):
        sel = query.get("$select")
        if not sel:
            return None
        names = [x.strip() for x in sel.split(",") if x.strip()]
        for n in names:
            if n not in PROPS and n not in NAV_PROPS:
                raise ODataError(400, "Invalid property '%s' in $select" % n)
        return set(names)

    def _select_rows(self, query):
        flt = query.get("$filter")
        tree = parse_filter(flt) if flt else None
        with self.lock:
            rows = [self.contacts[o] for o in self.order]
            if tree is not None:
                rows = [e for e in rows if _eval(tree, e)]
        order = query.get("$orderby")
        if order:
            for term in reversed([t.strip() for t in order.split(",") if t.strip()]):
                name, _, direction = term.partition(" ")
                if name not in PROPS:
                    raise ODataError(400, "Invalid property '%s' in $orderby" % name)
                rows.sort(key=lambda e: (e.get(name) is not None, e.get(name) or ""),
                          reverse=direction.strip().lower() == "desc")
        return rows

    def _list(self, query):
        def as_int(name):
            if name not in query:
                return None
            try:
                n = int(query[name])
            except ValueError:
                raise ODataError(400, "Invalid value for %s" % name)
            if n < 0:
                raise ODataError(400, "Invalid value for %s" % name)
            return n

        top, skip, token = as_int("$top"), as_int("$skip") or 0, as_int("$skiptoken")
        sel = self._selection(query)
        rows = self._select_rows(query)
        start = token if token is not None else skip
        n = SERVER_PAGE if top is None else min(top, SERVER_PAGE)
        page = rows[start:start + n]
        d = {}
        if query.get("$inlinecount") == "allpages":
            d["__count"] = str(len(rows))
        with self.lock:
            d["results"] = [self.render(e, sel) for e in page]
        if start + n < len(rows) and (top is None or top > n):
            keep = [(k, v) for k, v in query.items()
                    if k not in ("$skip", "$skiptoken", "$top")]
            if top is not None:
                keep.append(("$top", str(top - n)))
            keep.append(("$skiptoken", str(start + n)))
            d["__next"] = "%sContactCollection?%s" % (
                self.service_root, "&".join("%s=%s" % (quote(k, safe="$"), quote(v, safe=",'"))
                                            for k, v in keep))
        return 200, [], {"d": d}

    def _post(self, h, query, entry):
        ctype = (h.headers.get("Content-Type") or "").lower()
        if "json" not in ctype:
            raise ODataError(415, "Content-Type must be application/json")
        body = entry.get("body")
        if not isinstance(body, dict):
            raise ODataError(400, "Malformed JSON request body")
        fields = self._validate(body, "POST")
        ent = self._create(fields, self.user)
        with self.lock:
            rendered = self.render(ent)
        tag = etag_for(ent["_ticks"])
        headers = [("location", rendered["__metadata"]["uri"]), ("etag", tag)]
        if (h.headers.get("odata-no-response-payload") or "").lower() == "true":
            return 201, headers, None
        return 201, headers, {"d": {"results": rendered}}

    def _update(self, h, method, oid, entry):
        ctype = (h.headers.get("Content-Type") or "").lower()
        if "json" not in ctype:
            raise ODataError(415, "Content-Type must be application/json")
        body = entry.get("body")
        if not isinstance(body, dict):
            raise ODataError(400, "Malformed JSON request body")
        with self.lock:
            ent = self.contacts.get(oid)
            if ent is None:
                raise ODataError(404, "Resource not found for segment 'ContactCollection'")
            match = h.headers.get("If-Match")
            if match is not None and match != "*" and match != etag_for(ent["_ticks"]):
                raise ODataError(412, "Entity was changed in the meantime; the ETag "
                                      "provided in If-Match is outdated")
            fields = self._validate(body, "PUT" if method == "PUT" else "PATCH", ent)
            if method == "PUT":
                for name, _, _, updatable, _, _ in CONTACT_PROPS:
                    if updatable and name not in fields:
                        ent[name] = None
            ent.update(fields)
            self._touch(ent, self.user)
            tag = etag_for(ent["_ticks"])
        return 204, [("etag", tag)], None

    def _metadata(self):
        props = []
        for name, typ, c, u, f, maxlen in CONTACT_PROPS:
            attrs = 'Name="%s" Type="%s" Nullable="%s"' % (
                name, typ, "false" if name in ("ObjectID", "LastName") else "true")
            if maxlen:
                attrs += ' MaxLength="%d"' % maxlen
            if name == "ETag":
                attrs += ' ConcurrencyMode="Fixed"'
            attrs += ' sap:creatable="%s" sap:updatable="%s" sap:filterable="%s"' % (
                str(c).lower(), str(u).lower(), str(f).lower())
            props.append("<Property %s/>" % attrs)
        return ('<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="1.0" '
                'xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"><edmx:DataServices '
                'm:DataServiceVersion="2.0" xmlns:m="http://schemas.microsoft.com/ado/2007/08/'
                'dataservices/metadata"><Schema Namespace="c4codata" '
                'xmlns="http://schemas.microsoft.com/ado/2008/09/edm" '
                'xmlns:sap="http://www.sap.com/Protocols/SAPData"><EntityType Name="Contact">'
                '<Key><PropertyRef Name="ObjectID"/></Key>%s</EntityType><EntityContainer '
                'Name="c4codata" m:IsDefaultEntityContainer="true"><EntitySet '
                'Name="ContactCollection" EntityType="c4codata.Contact" sap:creatable="true" '
                'sap:updatable="true" sap:deletable="false"/></EntityContainer></Schema>'
                '</edmx:DataServices></edmx:Edmx>' % "".join(props))

    # -- /__sim/ controls ---------------------------------------------------

    def all_contacts(self):
        with self.lock:
            return [self.render(self.contacts[o]) for o in self.order]

    def modify(self, object_id, fields, who="CRM_USER"):
        """A CRM user's edit: changes fields and the ETag, bypassing the API."""
        with self.lock:
            ent = self.contacts[object_id]
            for k, v in fields.items():
                if k not in PROPS or not PROPS[k][3]:
                    raise ODataError(400, "Property %s cannot be modified" % k)
                ent[k] = v
            self._touch(ent, who)
            return self.render(ent)

    def reset_stats(self):
        with self.lock:
            self.stats = {}
            self.requests = []

    def expire_csrf(self):
        with self.lock:
            self.sessions = {}

    def _control(self, h, method, path):
        if method == "GET" and path == "/__sim/contacts":
            return h.send_json(200, {"contacts": self.all_contacts()})
        if method == "GET" and path == "/__sim/requests":
            with self.lock:
                return h.send_json(200, {"requests": list(self.requests)})
        if method == "GET" and path == "/__sim/stats":
            with self.lock:
                return h.send_json(200, dict(self.stats))
        if method != "POST":
            return h.send_json(404, {"error": "unknown control %s %s" % (method, path)})
        body = {}
        raw = h.read_body()
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                return h.send_json(400, {"error": "malformed JSON: %s" % exc})
        try:
            if path == "/__sim/reset_stats":
                self.reset_stats()
                return h.send_json(200, {"ok": True})
            if path == "/__sim/expire_csrf":
                self.expire_csrf()
                return h.send_json(200, {"ok": True})
            if path == "/__sim/modify":
                with self.lock:
                    if body.get("ObjectID") not in self.contacts:
                        return h.send_json(404, {"error": "no such contact"})
                return h.send_json(200, {"contact": self.modify(body["ObjectID"],
                                                                body.get("fields", {}))})
            if path == "/__sim/contacts":
                made = []
                for item in body.get("contacts", []):
                    fields = self._validate(item, "POST")
                    made.append(self.render(self._create(fields, "CRM_USER")))
                return h.send_json(200, {"contacts": made})
            if path == "/__sim/faults":
                if body.get("clear"):
                    self.faults.clear()
                    return h.send_json(200, {"ok": True})
                return h.send_json(200, {"rule": self.faults.add(body)})
            if path == "/__sim/config":
                if "latency_ms" in body:
                    self.latency_ms = int(body["latency_ms"])
                return h.send_json(200, {"ok": True})
        except ODataError as exc:
            return h.send_json(exc.status, error_body(exc.message))
        return h.send_json(404, {"error": "unknown control %s %s" % (method, path)})


def main(argv=None):
    ap = base_arg_parser("SAP Sales Cloud (C4C OData v2) simulator")
    ap.add_argument("--user", default="FERRY_TECH")
    ap.add_argument("--password", default="sim-password")
    ap.add_argument("--latency-ms", type=int, default=0, help="delay every API request")
    args = ap.parse_args(argv)
    sim = SapSalesSim(user=args.user, password=args.password, latency_ms=args.latency_ms,
                      host=args.host, port=args.port, verbose=args.verbose,
                      log_path=args.log_file)
    return run_cli(sim, args.port_file)


if __name__ == "__main__":
    sys.exit(main())
