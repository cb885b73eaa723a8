#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every field every shipped mapping writes, checked against a real tenant's
$metadata (C4C.edmx under FERRY_SPECS), including what the load-time check
cannot see: the intents that rule functions return (tasks, calls, the sales
order with its items) and deep-inserted children (CustomerOrderItem).

`ferry check` (test_metadata_tier.py) knows a mapping's top-level `fields`
only; a rule's fields exist only when the rule runs. So this runs
`ferry map test` on every fixture of every shipped mapping and checks each
intent it prints:

- the target is an entity set of the metadata;
- each field is a property of the set's entity type (or a navigation
  property holding a list of child objects, checked against the child type);
- the property is writable: creatable or updatable for an upsert (a
  create-only one is dropped from updates by the connector), updatable for
  an update intent; never one of the approval/action flags;
- strings fit MaxLength, booleans are booleans, decimals are decimal
  strings, DateTimeOffset values are ISO 8601;
- an upsert carries every property the metadata makes mandatory on create
  (creatable, Nullable="false");
- a value of the form {"$ref": {...}} (a reference the core resolves,
  lua/ferry/commerce.lua) is accepted where a string would be.

A deliberately wrong intent shows that the checker finds each kind of
problem. Skipped (77), saying so, when the specs are absent.
"""

import glob
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("FERRY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
SKIP = 77
EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
SAP = "{http://www.sap.com/Protocols/SAPData}"
# The SAP connector never sends these (docs/connectors/sap-sales-cloud.md).
NEVER = {"ApprovalStatusCode", "Submit", "SetAsWon", "SetAsLost", "SubmitForApproval",
         "WithdrawFromApproval", "Transfer", "Simulate", "SetAsCompleted", "PrimaryQuote",
         "UpdateOpportunity", "External"}
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def edmx_path():
    specs = os.environ.get("FERRY_SPECS") or os.path.join(REPO, "..", "shared", "specs")
    path = os.path.join(specs, "sap", "c4c-odata-v2", "C4C.edmx")
    return path if os.path.isfile(path) else None


class Metadata:
    """Entity sets -> types -> properties and navigations, from an EDMX file."""

    def __init__(self, path):
        root = ET.parse(path).getroot()
        self.types = {}
        self.assoc = {}
        self.sets = {}
        for schema in root.iter(EDM + "Schema"):
            ns = schema.get("Namespace")
            for et in schema.findall(EDM + "EntityType"):
                props = {}
                for p in et.findall(EDM + "Property"):
                    ml = p.get("MaxLength")
                    props[p.get("Name")] = {
                        "type": p.get("Type"),
                        "creatable": p.get(SAP + "creatable", "true") != "false",
                        "updatable": p.get(SAP + "updatable", "true") != "false",
                        "nullable": p.get("Nullable", "true") != "false",
                        "max": int(ml) if ml and ml.isdigit() else None,
                    }
                navs = {n.get("Name"): (n.get("Relationship"), n.get("ToRole"))
                        for n in et.findall(EDM + "NavigationProperty")}
                self.types["%s.%s" % (ns, et.get("Name"))] = {"props": props, "navs": navs}
            for a in schema.findall(EDM + "Association"):
                ends = {e.get("Role"): e.get("Type") for e in a.findall(EDM + "End")}
                self.assoc["%s.%s" % (ns, a.get("Name"))] = ends
            for ec in schema.findall(EDM + "EntityContainer"):
                for es in ec.findall(EDM + "EntitySet"):
                    self.sets[es.get("Name")] = es.get("EntityType")

    def child_type(self, type_name, nav):
        rel, role = self.types[type_name]["navs"][nav]
        return self.assoc.get(rel, {}).get(role)


def is_ref(v):
    return isinstance(v, dict) and set(v) == {"$ref"} and isinstance(v["$ref"], dict)


def check_fields(meta, type_name, fields, op, where, problems, create=True):
    t = meta.types[type_name]
    for name, value in sorted(fields.items()):
        at = "%s: %s" % (where, name)
        if name in t["navs"]:
            child = meta.child_type(type_name, name)
            if op != "upsert":
                problems.append("%s: a deep insert in an update (OData v2 has none)" % at)
            elif not isinstance(value, list) or not child or child not in meta.types:
                problems.append("%s: a navigation property needs a list of objects" % at)
            else:
                for i, item in enumerate(value):
                    if not isinstance(item, dict):
                        problems.append("%s[%d]: not an object" % (at, i))
                        continue
                    check_fields(meta, child, item, op, "%s[%d]" % (at, i), problems)
            continue
        p = t["props"].get(name)
        if p is None:
            problems.append("%s is not a property of %s" % (at, type_name))
            continue
        if name in NEVER:
            problems.append("%s is an approval/action field ferry never writes" % at)
        if op == "update" and not p["updatable"]:
            problems.append("%s is not updatable" % at)
        elif op == "upsert" and not (p["creatable"] or p["updatable"]):
            problems.append("%s is read-only" % at)
        if is_ref(value) or value is None:
            continue
        kind = p["type"]
        if kind == "Edm.String":
            if not isinstance(value, str):
                problems.append("%s: %r is not a string" % (at, value))
            elif p["max"] is not None and len(value) > p["max"]:
                problems.append("%s: %d characters, MaxLength %d" % (at, len(value), p["max"]))
        elif kind == "Edm.Boolean" and not isinstance(value, bool):
            problems.append("%s: %r is not a boolean" % (at, value))
        elif kind == "Edm.Decimal" and not (isinstance(value, str) and DECIMAL.match(value)):
            problems.append("%s: %r is not a decimal string" % (at, value))
        elif kind == "Edm.DateTimeOffset" and not (isinstance(value, str) and ISO.match(value)):
            problems.append("%s: %r is not ISO 8601 with a zone" % (at, value))
    if op == "upsert" and create and fields:
        for name, p in sorted(t["props"].items()):
            if p["creatable"] and not p["nullable"] and name != "ParentObjectID" \
                    and fields.get(name) in (None, ""):
                problems.append("%s: mandatory %s is missing (a create would fail)" % (where, name))


def check_intent(meta, intent, where, problems):
    target = intent.get("target", {}).get("object")
    type_name = meta.sets.get(target)
    if not type_name:
        problems.append("%s: %s is not an entity set" % (where, target))
        return
    fields = intent.get("fields", {})
    op = intent.get("op")
    if op == "update" and not fields and not intent.get("match"):
        return  # commerce.rules_only: the skipped stand-in intent
    check_fields(meta, type_name, fields, op, "%s -> %s" % (where, target), problems)


def self_test(meta):
    """The checker must be able to fail: one intent with every kind of mistake."""
    bad = {"op": "upsert", "target": {"system": "sap_sales", "object": "CustomerOrderCollection"},
           "fields": {"BuyerID": "x" * 36, "ApprovalStatusCode": "3", "NoSuchField": "1",
                      "ObjectID": "0001", "DateTime": "yesterday",
                      "CustomerOrderItem": [{"Quantity": 2, "SalesOrderID": {"$ref": {}},
                                             "LifeCycleStatusCode": "1"}]}}
    problems = []
    check_intent(meta, bad, "self-test", problems)
    wanted = ["BuyerID: 36 characters, MaxLength 35", "ApprovalStatusCode is an approval/action",
              "NoSuchField is not a property", "ObjectID is read-only",
              "DateTime: 'yesterday' is not ISO", "Quantity: 2 is not a decimal string",
              "LifeCycleStatusCode is read-only", "mandatory BuyerPartyID is missing"]
    missing = [w for w in wanted if not any(w in p for p in problems)]
    upd = {"op": "update", "target": {"system": "sap_sales", "object": "CustomerOrderItemCollection"},
           "fields": {"ParentObjectID": "1"}, "match": [{"rule": "link"}]}
    check_intent(meta, upd, "self-test", problems)
    if not any("ParentObjectID is not updatable" in p for p in problems):
        missing.append("ParentObjectID is not updatable")
    return missing, problems


def main():
    if not os.environ.get("FERRY_BIN"):
        print("FERRY_BIN is not set: run through ctest")
        return 1
    path = edmx_path()
    if not path:
        print("SKIP: no C4C.edmx under FERRY_SPECS; this check needs the vendor's metadata")
        return SKIP
    meta = Metadata(path)
    missing, seen = self_test(meta)
    if missing:
        print("the checker misses problems it must find: %s\nit found: %s"
              % (missing, "\n".join(seen)))
        return 1
    problems, intents, fixtures = [], 0, 0
    for fx in sorted(glob.glob(os.path.join(REPO, "mappings", "*", "fixtures", "*.in.json"))):
        mapdir = os.path.dirname(os.path.dirname(fx))
        rel = os.path.relpath(fx, REPO)
        proc = subprocess.run([os.environ["FERRY_BIN"], "map", "test", mapdir, fx],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, FERRY_LUA_PATH=os.path.join(REPO, "lua")))
        if proc.returncode != 0:
            problems.append("%s: ferry map test exited %d: %s" % (rel, proc.returncode,
                                                                   proc.stderr.strip()))
            continue
        fixtures += 1
        for i, intent in enumerate(json.loads(proc.stdout)):
            # Writes to the shop (two-way sync) are checked by the connector's
            # own describe, not by SAP's metadata; a refused write's
            # alternative ("instead") is a SAP record like any other.
            for where, it in (("%s[%d]" % (rel, i), intent),
                              ("%s[%d].instead" % (rel, i), intent.get("instead"))):
                if it and it.get("target", {}).get("system") == "sap_sales":
                    intents += 1
                    check_intent(meta, it, where, problems)
    if problems:
        print("fields the metadata does not allow:\n" + "\n".join(problems))
        return 1
    if fixtures == 0:
        print("no fixtures found under %s/mappings" % REPO)
        return 1
    print("ok: %d intents of %d fixtures checked against %s" % (intents, fixtures, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
