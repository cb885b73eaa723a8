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
import copy
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


TOKEN_PATH = "/sap/bc/sec/oauth2/token"
EXPAND_PAGE = 100
# Navigation property -> the entity set of its children (deep insert, $expand).
NAV_CHILD = {
    "CorporateAccountAddress": "CorporateAccountAddressCollection",
    "CorporateAccountTextCollection": "CorporateAccountTextCollectionCollection",
    "ContactIsContactPersonFor": "ContactIsContactPersonForCollection",
    "ContactTextCollection": "ContactTextCollectionCollection",
    "OpportunityParty": "OpportunityPartyCollection",
    "OpportunityTextCollection": "OpportunityTextCollectionCollection",
    "TasksInvolvedParties": "TasksInvolvedPartiesCollection",
    "TasksTextCollection": "TasksTextCollectionCollection",
    "PhoneCallParties": "PhoneCallPartiesCollection",
    "PhoneCallNotes": "PhoneCallNotesCollection",
    "AppointmentInvolvedParties": "AppointmentInvolvedPartiesCollection",
    "AppointmentTextCollection": "AppointmentTextCollectionCollection",
    "CustomerOrderItem": "CustomerOrderItemCollection",
    "SalesQuoteItem": "SalesQuoteItemCollection",
}
# Entity set -> its number-range business ID when that is not "ID".
BP_ID = {"CorporateAccountCollection": "AccountID", "IndividualCustomerCollection": "CustomerID"}
HERE = os.path.dirname(os.path.abspath(__file__))
BUILTIN_METADATA = os.path.join(HERE, "..", "fixtures", "sap", "c4c-small.edmx")
_META_CACHE = {}
_META_LOCK = threading.Lock()
NS_EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
NS_SAP = "{http://www.sap.com/Protocols/SAPData}"


class _Answered(Exception):
    """The response is already decided (e.g. the OAuth endpoint's own JSON)."""


def default_metadata_path():
    """The tenant EDMX under FERRY_SPECS when present, else our small built-in document."""
    specs = os.environ.get("FERRY_SPECS")
    if specs:
        path = os.path.join(specs, "sap", "c4c-odata-v2", "C4C.edmx")
        if os.path.exists(path):
            return path
    return BUILTIN_METADATA


def load_metadata(path):
    """(text, {set: {"type", "props": {name: (name, type, C, U, F, maxlen, nullable)},
    "navs": [...]}}) for an EDMX file; parsed once per path and process."""
    import xml.etree.ElementTree as ET
    with _META_LOCK:
        if path in _META_CACHE:
            return _META_CACHE[path]
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        root = ET.fromstring(text)
        types = {}

        def flag(el, name):
            return el.get(NS_SAP + name, "true") != "false"

        for schema in root.iter(NS_EDM + "Schema"):
            ns = schema.get("Namespace")
            for et in schema.findall(NS_EDM + "EntityType"):
                props = {}
                for p in et.findall(NS_EDM + "Property"):
                    ml = p.get("MaxLength")
                    props[p.get("Name")] = (p.get("Name"), p.get("Type"), flag(p, "creatable"),
                                            flag(p, "updatable"), flag(p, "filterable"),
                                            int(ml) if ml and ml.isdigit() else None,
                                            p.get("Nullable", "true") != "false")
                navs = [n.get("Name") for n in et.findall(NS_EDM + "NavigationProperty")]
                types["%s.%s" % (ns, et.get("Name"))] = {"type": "%s.%s" % (ns, et.get("Name")),
                                                         "props": props, "navs": navs}
        sets = {}
        for schema in root.iter(NS_EDM + "Schema"):
            for ec in schema.findall(NS_EDM + "EntityContainer"):
                for es in ec.findall(NS_EDM + "EntitySet"):
                    t = types.get(es.get("EntityType"))
                    if t and "ObjectID" in t["props"]:
                        sets[es.get("Name")] = t
        _META_CACHE[path] = (text, sets)
        return _META_CACHE[path]


def _xml_escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _atom_value(name, val):
    if val is None:
        return '<d:%s m:null="true"/>' % name
    if isinstance(val, bool):
        return '<d:%s m:type="Edm.Boolean">%s</d:%s>' % (name, str(val).lower(), name)
    if isinstance(val, str):
        m = re.match(r"^/Date\((-?\d+)\)/$", val)
        if m:
            ms = int(m.group(1))
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
            return '<d:%s m:type="Edm.DateTimeOffset">%s.%03dZ</d:%s>' % (name, stamp, ms % 1000,
                                                                          name)
    return "<d:%s>%s</d:%s>" % (name, _xml_escape(val), name)


ATOM_NS = ('xmlns="http://www.w3.org/2005/Atom" '
           'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
           'xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices"')


def atom_entry(rendered, base, root=False):
    md = rendered.get("__metadata", {})
    links, props = [], []
    for k, v in rendered.items():
        if k == "__metadata":
            continue
        if isinstance(v, dict) and "__deferred" in v:
            links.append('<link href="%s" rel="http://schemas.microsoft.com/ado/2007/08/'
                         'dataservices/related/%s" type="application/atom+xml;type=feed" '
                         'title="%s"/>' % (_xml_escape(v["__deferred"]["uri"]), k, k))
        elif isinstance(v, dict):
            continue
        else:
            props.append(_atom_value(k, v))
    return ('%s<entry %s%s m:etag="%s"><id>%s</id><category term="%s" scheme="http://'
            'schemas.microsoft.com/ado/2007/08/dataservices/scheme"/>%s<content '
            'type="application/xml"><m:properties>%s</m:properties></content></entry>'
            % ('<?xml version="1.0" encoding="utf-8"?>' if root else "",
               ATOM_NS if root else "", ' xml:base="%s"' % base if root else "",
               _xml_escape(md.get("etag", "")), _xml_escape(md.get("uri", "")),
               md.get("type", ""), "".join(links), "".join(props)))


def atom_feed(d, entity_set, base):
    extra = ""
    if "__count" in d:
        extra += "<m:count>%s</m:count>" % d["__count"]
    entries = "".join(atom_entry(e, base) for e in d["results"])
    nxt = '<link rel="next" href="%s"/>' % _xml_escape(d["__next"]) if d.get("__next") else ""
    return ('<?xml version="1.0" encoding="utf-8"?><feed %s xml:base="%s"><id>%s%s</id>'
            '<title type="text">%s</title>%s%s%s</feed>'
            % (ATOM_NS, base, base, entity_set, entity_set, extra, entries, nxt))


def atom_error(message):
    return ('<?xml version="1.0" encoding="utf-8"?><error xmlns="http://schemas.microsoft.com/'
            'ado/2007/08/dataservices/metadata"><code/><message xml:lang="en">%s</message>'
            '</error>' % _xml_escape(message))


class _FakeHeaders(dict):
    """Case-insensitive header lookup for requests inside a $batch."""

    def __init__(self, raw):
        super().__init__({k.strip().lower(): v.strip() for k, v in raw.items()})

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def items(self):
        return super().items()


class _FakeHandler:
    def __init__(self, headers):
        self.headers = headers


def _split_multipart(text, boundary):
    """[(headers lower-cased, rest)] of each part between --boundary delimiters."""
    out = []
    text = text.replace("\r\n", "\n")
    chunks = re.split(r"(?m)^--%s(--)?[ \t]*$" % re.escape(boundary), text)
    # re.split with a group yields text, group, text, group...; parts sit between delimiters
    for piece, closing in zip(chunks[2::2], chunks[1::2]):
        if closing:
            break
        piece = piece.lstrip("\n")
        head = piece.partition("\n\n")[0]
        hdrs = {}
        for ln in head.split("\n"):
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        out.append((hdrs, piece))
    return out


def _http_part(status, headers, payload):
    reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
              403: "Forbidden", 404: "Not Found", 412: "Precondition Failed"}.get(status, "")
    body = "" if payload is None else (payload if isinstance(payload, str) else
                                       json.dumps(payload))
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary", "",
             "HTTP/1.1 %d %s" % (status, reason)]
    if body:
        lines.append("Content-Type: application/json")
        lines.append("Content-Length: %d" % len(body.encode("utf-8")))
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    lines.append("dataserviceversion: 2.0")
    return "\r\n".join(lines) + "\r\n\r\n" + body + "\r\n"


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

    def __init__(self, text, props=None):
        self.toks = _tokenize(text)
        self.i = 0
        self.props = props if props is not None else PROPS

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
        if name not in self.props:
            raise ODataError(400, "Invalid property '%s' in $filter" % name)
        if not self.props[name][4]:
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


def parse_filter(text, props=None):
    return _FilterParser(text, props).parse()


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

    def __init__(self, user="FERRY_TECH", password="sim-password", latency_ms=0,
                 metadata_path=None, client_id="ferry-client", client_secret="client-secret",
                 **kw):
        super().__init__(**kw)
        self.metadata_path = metadata_path or default_metadata_path()
        self.metadata_text, self.meta_sets = load_metadata(self.metadata_path)
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens = {}              # bearer token -> expiry (epoch seconds)
        self.token_ttl = 3600
        self.store = {}               # entity set -> {ObjectID: internal dict}
        self.store_order = {}         # entity set -> [ObjectID] in creation order
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
        elif hdr.startswith("Bearer "):
            with self.lock:
                ok = self.tokens.get(hdr[7:].strip(), 0) > time.time()
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
                self._apply_fault(fault)
            if path == TOKEN_PATH:
                status, more, payload = self._oauth_token(h, method, entry)
                headers.extend(more)
                raise _Answered()
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
        except _Answered:
            pass
        except ODataError as exc:
            status = exc.status
            headers.extend(exc.headers)
            payload = error_body(exc.message)
            if not self._json_requested(h, query) and method in ("GET", "HEAD"):
                payload = atom_error(exc.message)
                headers.append(("Content-Type", "application/xml"))
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

    def _json_requested(self, h, query):
        fmt = (query.get("$format") or "").lower()
        if fmt:
            return fmt == "json"
        return "json" in (h.headers.get("Accept") or "").lower()

    def _wants_json(self, h, query):
        """True for JSON; False when the client gets C4C's default, Atom XML."""
        fmt = query.get("$format")
        if fmt is not None and fmt.lower() not in ("json", "atom", "xml"):
            raise ODataError(400, "Unknown $format '%s'" % fmt)
        return self._json_requested(h, query)

    def _route(self, h, method, rest, query, entry):
        if rest in ("", "/"):
            if method not in ("GET", "HEAD"):
                raise ODataError(405, "Method not allowed on the service document")
            return 200, [], {"d": {"EntitySets": sorted(set(self.meta_sets) |
                                                        {"ContactCollection"})}}
        if rest == "$metadata":
            return 200, [("Content-Type", "application/xml")], self._metadata()
        if rest == "$batch":
            if method != "POST":
                raise ODataError(405, "$batch needs POST")
            return self._batch(h, entry)
        generic = self._generic_route(h, method, rest, query, entry)
        if generic is not None:
            return generic
        if rest in ("ContactCollection", "ContactCollection/"):
            if method == "GET" or method == "HEAD":
                if not self._wants_json(h, query):
                    return self._atom(self._list(query), "ContactCollection")
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
                json_ok = self._wants_json(h, query)
                with self.lock:
                    ent = self.contacts.get(oid)
                    if ent is None:
                        raise ODataError(404, "Resource not found for segment "
                                              "'ContactCollection'")
                    sel = self._selection(query)
                    out = (200, [("etag", etag_for(ent["_ticks"]))], {
                        "d": {"results": self.render(ent, sel)}})
                return out if json_ok else self._atom(out, "ContactCollection")
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
        return self.metadata_text

    # -- every other entity set, driven by $metadata ----------------------------

    def _set_props(self, entity_set):
        return self.meta_sets[entity_set]["props"]

    def _generic_route(self, h, method, rest, query, entry):
        m = re.match(r"^([A-Za-z0-9_]+)(?:\('([^']*)'\))?/?$", rest)
        if not m or m.group(1) == "ContactCollection" or m.group(1) not in self.meta_sets:
            return None
        entity_set, oid = m.group(1), m.group(2)
        if oid is None:
            if method in ("GET", "HEAD"):
                json_ok = self._wants_json(h, query)
                out = self._generic_list(entity_set, query)
                return out if json_ok else self._atom(out, entity_set)
            if method == "POST":
                return self._generic_post(h, entity_set, entry)
            raise ODataError(405, "Method %s not allowed on %s" % (method, entity_set))
        if method in ("GET", "HEAD"):
            json_ok = self._wants_json(h, query)
            with self.lock:
                ent = self.store.get(entity_set, {}).get(oid)
                if ent is None:
                    raise ODataError(404, "Resource not found for segment '%s'" % entity_set)
                out = (200, [("etag", etag_for(ent["_ticks"]))],
                       {"d": {"results": self.render_generic(entity_set, ent,
                                                             self._gen_select(entity_set, query),
                                                             self._expand(entity_set, query))}})
            return out if json_ok else self._atom(out, entity_set)
        if method in ("PATCH", "MERGE"):
            return self._generic_patch(h, entity_set, oid, entry)
        raise ODataError(405, "Method %s not allowed on %s('...')" % (method, entity_set))

    def _gen_select(self, entity_set, query):
        sel = query.get("$select")
        if not sel:
            return None
        names = {x.strip() for x in sel.split(",") if x.strip()}
        for n in names:
            if n not in self._set_props(entity_set) and n not in self.meta_sets[entity_set]["navs"]:
                raise ODataError(400, "Invalid property '%s' in $select" % n)
        return names

    def _expand(self, entity_set, query):
        exp = query.get("$expand")
        if not exp:
            return set()
        names = {x.strip() for x in exp.split(",") if x.strip()}
        for n in names:
            if n not in self.meta_sets[entity_set]["navs"]:
                raise ODataError(400, "Invalid navigation property '%s' in $expand" % n)
        return names

    def render_generic(self, entity_set, ent, select=None, expand=()):
        uri = "%s%s('%s')" % (self.service_root, entity_set, ent["ObjectID"])
        out = {"__metadata": {"uri": uri, "type": self.meta_sets[entity_set]["type"],
                              "etag": etag_for(ent["_ticks"])}}
        for name, (_, typ, *_rest) in self._set_props(entity_set).items():
            if select and name not in select:
                continue
            val = ent.get(name)
            if typ in (DTO, "Edm.DateTime") and isinstance(val, int):
                val = odata_date(val)
            out[name] = val
        for nav in self.meta_sets[entity_set]["navs"]:
            if select and nav not in select:
                continue
            child_set = NAV_CHILD.get(nav)
            if nav in expand and child_set in self.meta_sets:
                kids = [self.render_generic(child_set, self.store[child_set][o])
                        for o in self.store_order.get(child_set, [])
                        if self.store[child_set][o].get("ParentObjectID") == ent["ObjectID"]]
                out[nav] = {"results": kids}
            else:
                out[nav] = {"__deferred": {"uri": "%s/%s" % (uri, nav)}}
        return out

    def _check_fields(self, entity_set, body, mode, current=None):
        props = self._set_props(entity_set)
        navs = self.meta_sets[entity_set]["navs"]
        fields, children = {}, {}
        if not isinstance(body, dict):
            raise ODataError(400, "The request body must be a JSON object")
        for k, v in body.items():
            if k == "__metadata":
                continue
            if k in navs:
                if mode != "POST" or not isinstance(v, list) or NAV_CHILD.get(k) not in \
                        self.meta_sets:
                    raise ODataError(400, "Deep insert of '%s' is not possible here" % k)
                children[k] = v
                continue
            if k not in props:
                raise ODataError(400, "Property '%s' is invalid" % k)
            _, typ, creatable, updatable, _, maxlen, _ = props[k]
            if mode == "POST" and not creatable:
                raise ODataError(400, "Property %s is read-only" % k)
            if mode == "PATCH" and not updatable:
                cur = current.get(k) if current else None
                if v != cur and not (typ == DTO and isinstance(cur, int) and v == odata_date(cur)):
                    raise ODataError(400, "Property %s is read-only" % k)
                continue
            if v is not None:
                if typ == B and not isinstance(v, bool):
                    raise ODataError(400, "Invalid value for property %s (Edm.Boolean)" % k)
                if typ == S and not isinstance(v, str):
                    raise ODataError(400, "Invalid value for property %s (%s)" % (k, typ))
                if maxlen and isinstance(v, str) and len(v) > maxlen:
                    raise ODataError(400, "Value for property %s exceeds maximum length %d"
                                     % (k, maxlen))
                if typ in (DTO, "Edm.DateTime") and isinstance(v, str):
                    try:
                        v = _parse_literal(("lit", "datetimeoffset'%s'" % v))
                    except ODataError:
                        raise ODataError(400, "Invalid value for property %s (%s)" % (k, typ))
            fields[k] = v
        if mode == "POST":
            for name, (_, _, creatable, _, _, _, nullable) in props.items():
                if creatable and not nullable and name != "ParentObjectID" and \
                        fields.get(name) in (None, ""):
                    raise ODataError(400, "Mandatory property %s is missing or empty" % name)
        return fields, children

    def _new_generic(self, entity_set, fields, who):
        with self.lock:
            oid = "00163E" + secrets.token_hex(13).upper()
            ent = {name: None for name in self._set_props(entity_set)}
            ent.update(fields)
            ent["ObjectID"] = oid
            props = self._set_props(entity_set)
            # The business ID SAP draws from its number range when the client
            # sends none (ContactID on contacts, above): ID on documents,
            # AccountID and CustomerID on business partners.
            bp_id = BP_ID.get(entity_set, "ID")
            if bp_id in props and not ent.get(bp_id):
                ent[bp_id] = str(self.next_contact_id)
                self.next_contact_id += 1
            self._touch_generic(ent, who)
            self.store.setdefault(entity_set, {})[oid] = ent
            self.store_order.setdefault(entity_set, []).append(oid)
            return ent

    def _touch_generic(self, ent, who):
        t = self._ticks()
        ms = t // 10000
        ent["_ticks"] = t
        for name in ("ETag", "EntityLastChangedOn", "ChangedOn", "LastChangeDateTime"):
            if name in ent:
                ent[name] = ms

    def _generic_post(self, h, entity_set, entry):
        if "json" not in (h.headers.get("Content-Type") or "").lower():
            raise ODataError(415, "Content-Type must be application/json")
        fields, children = self._check_fields(entity_set, entry.get("body"), "POST")
        checked = []
        for nav, items in children.items():
            child_set = NAV_CHILD[nav]
            for item in items:
                cf, _ = self._check_fields(child_set, item, "POST")
                checked.append((child_set, cf))
        ent = self._new_generic(entity_set, fields, self.user)
        for child_set, cf in checked:
            cf["ParentObjectID"] = ent["ObjectID"]
            self._new_generic(child_set, cf, self.user)
        with self.lock:
            rendered = self.render_generic(entity_set, ent, expand=set(children))
        headers = [("location", rendered["__metadata"]["uri"]), ("etag", etag_for(ent["_ticks"]))]
        if (h.headers.get("odata-no-response-payload") or "").lower() == "true":
            return 201, headers, None
        return 201, headers, {"d": {"results": rendered}}

    def _generic_patch(self, h, entity_set, oid, entry):
        if "json" not in (h.headers.get("Content-Type") or "").lower():
            raise ODataError(415, "Content-Type must be application/json")
        with self.lock:
            ent = self.store.get(entity_set, {}).get(oid)
            if ent is None:
                raise ODataError(404, "Resource not found for segment '%s'" % entity_set)
            match = h.headers.get("If-Match")
            if match is not None and match != "*" and match != etag_for(ent["_ticks"]):
                raise ODataError(412, "Entity was changed in the meantime; the ETag provided "
                                      "in If-Match is outdated")
            if ent.get("ApprovalStatusCode") == "3":
                raise ODataError(400, "Document is in approval and cannot be changed")
            fields, _ = self._check_fields(entity_set, entry.get("body"), "PATCH", ent)
            ent.update(fields)
            self._touch_generic(ent, self.user)
            return 204, [("etag", etag_for(ent["_ticks"]))], None

    def _generic_list(self, entity_set, query):
        props = self._set_props(entity_set)
        flt = query.get("$filter")
        tree = parse_filter(flt, props) if flt else None
        sel = self._gen_select(entity_set, query)
        expand = self._expand(entity_set, query)
        with self.lock:
            rows = [self.store.get(entity_set, {})[o] for o in self.store_order.get(entity_set, [])]
            if tree is not None:
                rows = [e for e in rows if _eval(tree, e)]
        order = query.get("$orderby")
        if order:
            for term in reversed([t.strip() for t in order.split(",") if t.strip()]):
                name, _, direction = term.partition(" ")
                if name not in props:
                    raise ODataError(400, "Invalid property '%s' in $orderby" % name)
                rows.sort(key=lambda e: (e.get(name) is not None, e.get(name) or 0),
                          reverse=direction.strip().lower() == "desc")
        try:
            top = int(query["$top"]) if "$top" in query else None
            start = int(query.get("$skiptoken") or query.get("$skip") or 0)
        except ValueError:
            raise ODataError(400, "Invalid paging option")
        cap = EXPAND_PAGE if expand else SERVER_PAGE
        n = cap if top is None else min(top, cap)
        page = rows[start:start + n]
        d = {}
        if query.get("$inlinecount") == "allpages":
            d["__count"] = str(len(rows))
        with self.lock:
            d["results"] = [self.render_generic(entity_set, e, sel, expand) for e in page]
        if start + n < len(rows) and (top is None or top > n):
            keep = [(k, v) for k, v in query.items() if k not in ("$skip", "$skiptoken", "$top")]
            if top is not None:
                keep.append(("$top", str(top - n)))
            keep.append(("$skiptoken", str(start + n)))
            d["__next"] = "%s%s?%s" % (self.service_root, entity_set, "&".join(
                "%s=%s" % (quote(k, safe="$"), quote(v, safe=",'")) for k, v in keep))
        return 200, [], {"d": d}

    # -- Atom, C4C's default format --------------------------------------------

    def _atom(self, answer, entity_set):
        status, headers, payload = answer
        d = payload["d"]
        if isinstance(d.get("results"), dict):
            body = atom_entry(d["results"], self.service_root, root=True)
            ctype = "application/atom+xml;type=entry"
        else:
            body = atom_feed(d, entity_set, self.service_root)
            ctype = "application/atom+xml;type=feed"
        return status, headers + [("Content-Type", ctype)], body

    # -- OAuth 2.0 token endpoint (client credentials, SAML bearer) ------------

    def _oauth_token(self, h, method, entry):
        if method != "POST":
            raise ODataError(405, "POST the token request")
        hdr = h.headers.get("Authorization") or ""
        try:
            cid, _, sec = base64.b64decode(hdr[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            cid, sec = "", ""
        if not hdr.startswith("Basic ") or not (hmac.compare_digest(cid, self.client_id)
                                                and hmac.compare_digest(sec, self.client_secret)):
            return 401, [], {"error": "invalid_client",
                             "error_description": "client authentication failed"}
        raw = entry.get("body")
        form = _parse_query(raw if isinstance(raw, str) else "")
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:saml2-bearer":
            if not form.get("assertion"):
                return 400, [], {"error": "invalid_grant", "error_description": "no assertion"}
        elif grant != "client_credentials":
            return 400, [], {"error": "unsupported_grant_type"}
        tok = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[tok] = time.time() + self.token_ttl
        self._count("token")
        return 200, [], {"access_token": tok, "token_type": "Bearer",
                         "expires_in": self.token_ttl}

    def revoke_tokens(self):
        with self.lock:
            self.tokens = {}

    # -- faults beyond a plain status -------------------------------------------

    def _apply_fault(self, fault):
        if fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000.0)
        action = fault.get("action")
        if action == "expire_csrf":
            self.expire_csrf()          # stale CSRF token: the next write gets 403 Required
            return
        if action == "expire_session":
            with self.lock:             # the server forgot the session cookie too
                self.sessions = {}
            return
        if action == "revoke_tokens":
            self.revoke_tokens()
            return
        if fault.get("status"):
            raise ODataError(fault["status"], fault.get("message", "Injected failure"),
                             [tuple(x) for x in fault.get("headers", [])])

    # -- $batch ---------------------------------------------------------------------

    def _batch(self, h, entry):
        ctype = h.headers.get("Content-Type") or ""
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if not ctype.lower().startswith("multipart/mixed") or not m:
            raise ODataError(400, "$batch needs Content-Type multipart/mixed with a boundary")
        raw = entry.get("body")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        entry["body"] = "<multipart>"
        out_b = "batchresponse_" + secrets.token_hex(6)
        out = []
        for part_headers, part_body in _split_multipart(text, m.group(1)):
            pct = part_headers.get("content-type", "")
            out.append("--%s\r\n" % out_b)
            cm = re.search(r'boundary="?([^";]+)"?', pct)
            if pct.lower().startswith("multipart/mixed") and cm:
                out.append(self._changeset(part_body, cm.group(1)))
            else:
                status, hdrs, payload = self._batch_op(part_body, allow_write=False)
                out.append(_http_part(status, hdrs, payload))
        out.append("--%s--\r\n" % out_b)
        body = "".join(out)
        return 202, [("Content-Type", "multipart/mixed; boundary=%s" % out_b)], body

    def _changeset(self, text, boundary):
        ops = list(_split_multipart(text, boundary))
        with self.lock:
            # A one-operation changeset that fails has changed nothing, so the
            # (whole-store) snapshot is only needed for several operations.
            snapshot = None
            if len(ops) > 1:
                snapshot = copy.deepcopy((self.contacts, self.order, self.store,
                                          self.store_order, self.next_contact_id))
            answers = []
            for _, body in ops:
                status, hdrs, payload = self._batch_op(body, allow_write=True)
                if status >= 400:
                    # One LUW: roll back what this changeset did, answer with its error only.
                    if snapshot is not None:
                        (self.contacts, self.order, self.store, self.store_order,
                         self.next_contact_id) = snapshot
                    self._count("changeset_failed")
                    return _http_part(status, hdrs, payload)
                answers.append((status, hdrs, payload))
        cb = "changesetresponse_" + secrets.token_hex(6)
        parts = ["Content-Type: multipart/mixed; boundary=%s\r\n\r\n" % cb]
        for status, hdrs, payload in answers:
            parts.append("--%s\r\n" % cb)
            parts.append(_http_part(status, hdrs, payload))
        parts.append("--%s--\r\n\r\n" % cb)
        return "".join(parts)

    def _batch_op(self, text, allow_write):
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        # head = MIME headers of the part; body = the inner request
        req_head, _, req_body = body.partition("\n\n")
        lines = req_head.split("\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            return 400, [], error_body("Malformed request line in $batch part")
        hdrs = _FakeHeaders(dict(ln.split(":", 1) for ln in lines[1:] if ":" in ln))
        parts = urlsplit(target)
        query = _parse_query(parts.query)
        inner = _FakeHandler(hdrs)
        body_obj = None
        if req_body.strip():
            try:
                body_obj = json.loads(req_body)
            except ValueError:
                return 400, [], error_body("Malformed JSON in $batch part")
        if method != "GET" and not allow_write:
            return 400, [], error_body("Changing requests must be inside a changeset")
        entry = {"method": method, "path": SERVICE_PATH + parts.path, "body": body_obj}
        try:
            fault = self.faults.take(method, "$batch/" + parts.path)
            if fault and fault.get("status"):
                raise ODataError(fault["status"], fault.get("message", "Injected failure"))
            self._count("batch_" + method)
            self.before_batch_part(method, parts.path, hdrs)
            return self._route(inner, method, parts.path, query, entry)
        except ODataError as exc:
            return exc.status, [], error_body(exc.message)

    def before_batch_part(self, method, path, headers):
        """Called before each operation of a $batch runs, so that a test's
        simulator can make the CRM change things between ferry's read and a
        batched write, as it can before a direct request."""

    # -- test controls for every set ---------------------------------------------

    def entities(self, entity_set):
        with self.lock:
            return [self.render_generic(entity_set, self.store[entity_set][o])
                    for o in self.store_order.get(entity_set, [])]

    def seed(self, entity_set, fields, who="CRM_USER"):
        """Adds a record as a CRM user would, bypassing the API's read-only checks."""
        ent = self._new_generic(entity_set, dict(fields), who)
        with self.lock:
            return self.render_generic(entity_set, ent)

    def modify_entity(self, entity_set, object_id, fields, who="CRM_USER"):
        with self.lock:
            ent = self.store[entity_set][object_id]
            ent.update(fields)
            self._touch_generic(ent, who)
            return self.render_generic(entity_set, ent)

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
    ap.add_argument("--metadata", help="EDMX file to serve and validate against (default: "
                                       "$FERRY_SPECS tenant EDMX, else the built-in fixture)")
    ap.add_argument("--client-id", default="ferry-client", help="OAuth client id")
    ap.add_argument("--client-secret", default="client-secret", help="OAuth client secret")
    args = ap.parse_args(argv)
    sim = SapSalesSim(user=args.user, password=args.password, latency_ms=args.latency_ms,
                      metadata_path=args.metadata, client_id=args.client_id,
                      client_secret=args.client_secret,
                      host=args.host, port=args.port, verbose=args.verbose,
                      log_path=args.log_file)
    return run_cli(sim, args.port_file)


if __name__ == "__main__":
    sys.exit(main())
