#!/usr/bin/python3
"""check_crds.py — latchkey's CustomResourceDefinitions and the manifests that use them.

  /usr/bin/python3 tests/deploy/check_crds.py [SRCDIR]

Needs Debian's python3-yaml and python3-jsonschema (tools/deps.sh). Checks:
  (a) every YAML file under deploy/ and tests/fixtures/compat-crds/ parses (all documents,
      no repeated keys);
  (b) every CRD names apiextensions.k8s.io/v1 and the group, scope, names, versions and
      printer columns expected of it, and its schemas are structural as the API server
      demands (kubernetes/apiextensions-apiserver pkg/apiserver/schema/validation.go and
      pkg/apis/apiextensions/validation/validation.go); defaults are valid against their
      own schema;
  (c) every example under deploy/examples/ and every ExternalSecret, SecretStore,
      ClusterSecretStore and SealedSecret in a ```yaml block of docs/*.md validates
      against its CRD (the OpenAPI v3 subset translated to JSON Schema, defaults applied
      first, unknown fields refused as `kubectl apply` with strict field validation does);
  (d) deliberately broken documents and schemas are rejected, so that the checks above
      can fail.
Prints one line per failure and a summary; exit status 1 when anything failed.
"""
import base64
import copy
import glob
import os
import re
import sys

import jsonschema
import yaml

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("LATCHKEY_SRCDIR", "."))

failures = []
counts = {"yaml files": 0, "CRDs": 0, "examples": 0, "doc blocks": 0, "rejections": 0}


def fail(where, msg):
    failures.append(f"{where}: {msg}")


# ---------------------------------------------------------------------------- YAML

class Loader(yaml.SafeLoader):
    """YAML as the API machinery reads it: timestamps stay strings, repeated keys are errors."""


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"repeated key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)


def load_all(text, where):
    try:
        return [d for d in yaml.load_all(text, Loader=Loader) if d is not None]
    except yaml.YAMLError as e:
        fail(where, f"YAML does not parse: {e}")
        return None


def rel(path):
    return os.path.relpath(path, SRC)


# ---------------------------------------------------------------------------- expectations

ES_COLUMNS = [("StoreType", "string", ".spec.secretStoreRef.kind"),
              ("Store", "string", ".spec.secretStoreRef.name"),
              ("Refresh Interval", "string", ".spec.refreshInterval"),
              ("Status", "string", '.status.conditions[?(@.type=="Ready")].reason'),
              ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
              ("Last Sync", "date", ".status.refreshTime")]
STORE_COLUMNS_ESO = [("AGE", "date", ".metadata.creationTimestamp"),
                     ("Status", "string", '.status.conditions[?(@.type=="Ready")].reason'),
                     ("Capabilities", "string", ".status.capabilities"),
                     ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status')]
AGE = ("Age", "date", ".metadata.creationTimestamp")
STORE_COLUMNS = STORE_COLUMNS_ESO[1:] + [AGE]

# name -> (group, kind, plural, singular, scope, shortNames, categories,
#          [(version, served, storage, deprecated)], columns)
EXPECTED = {
    "externalsecrets.latchkey.io": (
        "latchkey.io", "ExternalSecret", "externalsecrets", "externalsecret", "Namespaced",
        ["es"], ["latchkey"], [("v1", True, True, False)], ES_COLUMNS + [AGE]),
    "secretstores.latchkey.io": (
        "latchkey.io", "SecretStore", "secretstores", "secretstore", "Namespaced",
        ["ss"], ["latchkey"], [("v1", True, True, False)], STORE_COLUMNS),
    "clustersecretstores.latchkey.io": (
        "latchkey.io", "ClusterSecretStore", "clustersecretstores", "clustersecretstore",
        "Cluster", ["css"], ["latchkey"], [("v1", True, True, False)], STORE_COLUMNS),
    "sealedsecrets.latchkey.io": (
        "latchkey.io", "SealedSecret", "sealedsecrets", "sealedsecret", "Namespaced",
        ["lks"], ["latchkey"], [("v1", True, True, False)],
        [("Status", "string", '.status.conditions[?(@.type=="Synced")].message'),
         ("Synced", "string", '.status.conditions[?(@.type=="Synced")].status'), AGE]),
    # Upstream's, as external-secrets @cc5bfbc2 and sealed-secrets @86671a88 declare them.
    "externalsecrets.external-secrets.io": (
        "external-secrets.io", "ExternalSecret", "externalsecrets", "externalsecret",
        "Namespaced", ["es"], ["external-secrets"],
        [("v1", True, True, False), ("v1beta1", False, False, True)], ES_COLUMNS),
    "secretstores.external-secrets.io": (
        "external-secrets.io", "SecretStore", "secretstores", "secretstore", "Namespaced",
        ["ss"], ["external-secrets"],
        [("v1", True, True, False), ("v1beta1", False, False, True)], STORE_COLUMNS_ESO),
    "clustersecretstores.external-secrets.io": (
        "external-secrets.io", "ClusterSecretStore", "clustersecretstores",
        "clustersecretstore", "Cluster", ["css"], ["external-secrets"],
        [("v1", True, True, False), ("v1beta1", False, False, True)], STORE_COLUMNS_ESO),
    "sealedsecrets.bitnami.com": (
        "bitnami.com", "SealedSecret", "sealedsecrets", "sealedsecret", "Namespaced",
        [], [], [("v1alpha1", True, True, False)],
        [("Status", "string", ".status.conditions[0].message"),
         ("Synced", "string", ".status.conditions[0].status"), AGE]),
}
LATCHKEY_CRDS = {n for n in EXPECTED if n.endswith(".latchkey.io")}
COMPAT_CRDS = set(EXPECTED) - LATCHKEY_CRDS
CHECKED_KINDS = {"ExternalSecret", "SecretStore", "ClusterSecretStore", "SealedSecret"}

OPENAPI_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
COLUMN_TYPES = {"integer", "number", "string", "boolean", "date"}
COLUMN_FORMATS = {"int32", "int64", "float", "double", "byte", "date", "date-time", "password"}
ROOT_ALLOWED = {"description", "type", "format", "title", "maximum", "exclusiveMaximum",
                "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
                "minItems", "uniqueItems", "multipleOf", "required", "items", "properties",
                "externalDocs", "example", "x-kubernetes-preserve-unknown-fields",
                "x-kubernetes-validations"}
KNOWN_KEYS = {"$schema", "description", "type", "format", "title", "default", "maximum",
              "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
              "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "enum",
              "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf",
              "not", "properties", "additionalProperties", "externalDocs", "example",
              "nullable", "x-kubernetes-preserve-unknown-fields",
              "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
              "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
              "x-kubernetes-validations"}
UNSUPPORTED = {"$ref", "definitions", "dependencies", "patternProperties", "additionalItems",
               "id", "propertyNames", "const", "if", "then", "else"}
JUNCTORS = ("allOf", "anyOf", "oneOf")
INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]


def req(*names):
    return {"required": list(names)}


# The CEL rules the CRDs use, each with the JSON Schema that means the same: the API server
# runs the CEL, this script the twin. A new rule needs its twin here (an unknown rule fails).
CEL_TWINS = {
    "has(self.recipient) != has(self.recipientFrom)":
        {"oneOf": [req("recipient"), req("recipientFrom")]},
    "has(self.data) || has(self.dataFrom)":
        {"anyOf": [req("data"), req("dataFrom")]},
    "has(self.roleId) != has(self.roleRef)":
        {"oneOf": [req("roleId"), req("roleRef")]},
    "!has(self.serviceAccountRef) || !has(self.secretRef)":
        {"not": req("serviceAccountRef", "secretRef")},
    "[has(self.tokenSecretRef), has(self.appRole), has(self.kubernetes)].filter(x, x).size() == 1":
        {"oneOf": [req("tokenSecretRef"), req("appRole"), req("kubernetes")]},
    "!has(self.caProvider) || has(self.caProvider.namespace)":
        {"properties": {"caProvider": req("namespace")}},
    "!has(self.type) || self.type != 'bootstrap.kubernetes.io/token'":
        {"not": {"required": ["type"],
                 "properties": {"type": {"const": "bootstrap.kubernetes.io/token"}}}},
    "!has(self.type) || self.type != 'kubernetes.io/service-account-token' || "
    "!has(self.metadata) || !has(self.metadata.annotations) || "
    "!('kubernetes.io/service-account.name' in self.metadata.annotations)":
        {"not": {"required": ["type", "metadata"], "properties": {
            "type": {"const": "kubernetes.io/service-account-token"},
            "metadata": {"required": ["annotations"], "properties": {
                "annotations": req("kubernetes.io/service-account.name")}}}}},
    "!has(self.deletionPolicy) || !has(self.creationPolicy) || "
    "self.deletionPolicy != 'Delete' || self.creationPolicy in ['Owner', 'Orphan']":
        {"not": {"required": ["deletionPolicy", "creationPolicy"], "properties": {
            "deletionPolicy": {"const": "Delete"},
            "creationPolicy": {"not": {"enum": ["Owner", "Orphan"]}}}}},
    "!has(self.deletionPolicy) || !has(self.creationPolicy) || "
    "self.deletionPolicy != 'Merge' || self.creationPolicy != 'None'":
        {"not": {"required": ["deletionPolicy", "creationPolicy"], "properties": {
            "deletionPolicy": {"const": "Merge"}, "creationPolicy": {"const": "None"}}}},
}


# ---------------------------------------------------------------------------- structural

def check_structural(schema, where):
    """The API server's rules for a CRD version's openAPIV3Schema. Returns error strings."""
    errs = []
    if not isinstance(schema, dict):
        return [f"{where}: not a schema object"]
    if schema.get("type") != "object":
        errs.append(f"{where}.type: must be object at the root")
    if schema.get("nullable"):
        errs.append(f"{where}.nullable: cannot be true at the root")
    if "additionalProperties" in schema:
        errs.append(f"{where}.additionalProperties: must not be used at the root")
    for k in schema:
        if k not in ROOT_ALLOWED:
            errs.append(f"{where}.{k}: not allowed at the root with the status subresource")
    props = schema.get("properties", {})
    for k in ("apiVersion", "kind"):
        if k in props and props[k].get("type") != "string":
            errs.append(f"{where}.properties.{k}.type: must be string")
    meta = props.get("metadata")
    if meta is not None:
        extra = set(meta) - {"type", "description"}
        mprops = set(meta.get("properties", {}))
        if meta.get("type") != "object":
            errs.append(f"{where}.properties.metadata.type: must be object")
        if extra - {"properties"} or not mprops <= {"name", "generateName"}:
            errs.append(f"{where}.properties.metadata: must not specify anything other than "
                        "name and generateName")
    walk(schema, where, "root", errs, in_meta=False)
    return errs


def walk(s, where, level, errs, in_meta):
    if not isinstance(s, dict):
        errs.append(f"{where}: must be a schema object")
        return
    for k in s:
        if k in UNSUPPORTED:
            errs.append(f"{where}.{k}: not supported in a CRD schema")
        elif k not in KNOWN_KEYS:
            errs.append(f"{where}.{k}: unknown schema keyword")
    t = s.get("type")
    ios = s.get("x-kubernetes-int-or-string", False)
    pres = s.get("x-kubernetes-preserve-unknown-fields")
    if t is not None and t not in OPENAPI_TYPES:
        errs.append(f"{where}.type: {t!r} is not an OpenAPI type")
    if not t and not ios and not pres and not s.get("x-kubernetes-embedded-resource"):
        what = {"root": "at the root", "item": "for specified array items",
                "field": "for specified object fields"}[level]
        errs.append(f"{where}.type: must not be empty {what}")
    if pres is not None and pres is not True:
        errs.append(f"{where}.x-kubernetes-preserve-unknown-fields: must be true or undefined")
    if ios and pres:
        errs.append(f"{where}: x-kubernetes-preserve-unknown-fields must be false with "
                    "x-kubernetes-int-or-string")
    if t == "array" and "items" not in s:
        errs.append(f"{where}.items: must be specified for an array")
    if "items" in s and not isinstance(s["items"], dict):
        errs.append(f"{where}.items: must be a schema object and not an array")
    if "properties" in s and "additionalProperties" in s:
        ap = s["additionalProperties"]
        if ap is not True:
            errs.append(f"{where}: additionalProperties and properties are mutual exclusive")
    if s.get("uniqueItems"):
        errs.append(f"{where}.uniqueItems: cannot be true")
    if s.get("x-kubernetes-map-type") and t != "object":
        errs.append(f"{where}: x-kubernetes-map-type needs type object")
    if s.get("x-kubernetes-map-type") not in (None, "atomic", "granular"):
        errs.append(f"{where}.x-kubernetes-map-type: must be atomic or granular")
    lt = s.get("x-kubernetes-list-type")
    if lt is not None:
        if t != "array":
            errs.append(f"{where}: x-kubernetes-list-type needs type array")
        if lt not in ("atomic", "set", "map"):
            errs.append(f"{where}.x-kubernetes-list-type: must be atomic, set or map")
    if s.get("x-kubernetes-list-map-keys") and lt != "map":
        errs.append(f"{where}: x-kubernetes-list-map-keys needs x-kubernetes-list-type map")
    if "pattern" in s:
        try:
            re.compile(s["pattern"])
        except re.error as e:
            errs.append(f"{where}.pattern: not a regular expression: {e}")
    if "enum" in s and t in OPENAPI_TYPES:
        for v in s["enum"]:
            if not type_ok(v, t, s.get("nullable")):
                errs.append(f"{where}.enum: {v!r} is not of type {t}")
    for i, rule in enumerate(s.get("x-kubernetes-validations", [])):
        r = rule.get("rule")
        if not r:
            errs.append(f"{where}.x-kubernetes-validations[{i}].rule: must be set")
        elif r not in CEL_TWINS:
            errs.append(f"{where}.x-kubernetes-validations[{i}]: rule {r!r} has no JSON Schema "
                        "twin in check_crds.py")
        m = rule.get("message")
        if m is not None and (not m or "\n" in m):
            errs.append(f"{where}.x-kubernetes-validations[{i}].message: must be one "
                        "non-empty line")
    if "default" in s:
        if in_meta:
            errs.append(f"{where}.default: not allowed in metadata")
        else:
            errs.extend(check_default(s, where))
    for k, v in s.get("properties", {}).items():
        walk(v, f"{where}.properties.{k}", "field", errs,
             in_meta or (level == "root" and k == "metadata"))
    if isinstance(s.get("items"), dict):
        walk(s["items"], f"{where}.items", "item", errs, in_meta)
    if isinstance(s.get("additionalProperties"), dict):
        walk(s["additionalProperties"], f"{where}.additionalProperties", "field", errs, in_meta)
    # logic junctors hold value validations only, and name only fields specified outside
    ios_pattern = ios and s.get("anyOf") == INT_OR_STRING_ANYOF
    for j in JUNCTORS:
        for i, sub in enumerate(s.get(j, [])):
            if j == "anyOf" and ios_pattern:
                continue
            check_nested(sub, s, f"{where}.{j}[{i}]", errs)
    if "not" in s:
        check_nested(s["not"], s, f"{where}.not", errs)


def check_nested(v, outer, where, errs):
    if not isinstance(v, dict):
        errs.append(f"{where}: must be a schema object")
        return
    for k in ("type", "default", "description", "title", "additionalProperties", "nullable",
              "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
              "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-map-type",
              "x-kubernetes-list-map-keys", "x-kubernetes-validations"):
        if v.get(k):
            errs.append(f"{where}.{k}: must be undefined to be structural")
    if "metadata" in v.get("properties", {}):
        errs.append(f"{where}.properties.metadata: must not be specified in a nested context")
    for k, sub in v.get("properties", {}).items():
        if k not in outer.get("properties", {}):
            errs.append(f"{where}.properties.{k}: not specified outside the logic junctor")
        else:
            check_nested(sub, outer["properties"][k], f"{where}.properties.{k}", errs)
    if "items" in v:
        check_nested(v["items"], outer.get("items", {}), f"{where}.items", errs)
    for j in JUNCTORS:
        for i, sub in enumerate(v.get(j, [])):
            check_nested(sub, outer, f"{where}.{j}[{i}]", errs)
    if "not" in v:
        check_nested(v["not"], outer, f"{where}.not", errs)


def type_ok(v, t, nullable=False):
    if v is None:
        return bool(nullable)
    return {"string": isinstance(v, str), "boolean": isinstance(v, bool),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "object": isinstance(v, dict), "array": isinstance(v, list)}[t]


def check_default(s, where):
    """A default must validate against its own schema and survive pruning."""
    errs = []
    value = copy.deepcopy(s["default"])
    apply_defaults(s, value)
    for e in validator_for(s).iter_errors(value):
        errs.append(f"{where}.default: {e.message}")
    return errs


# ---------------------------------------------------------------------------- OpenAPI -> JSON Schema

OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253,
                 "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def to_json_schema(s, nested=False, root=True):
    """The CRD's OpenAPI v3 subset as JSON Schema (draft 7). Outside logic junctors an object
    refuses fields its schema does not name, unless it preserves unknown fields."""
    out = {}
    t = s.get("type")
    ios = s.get("x-kubernetes-int-or-string")
    for k, v in s.items():
        if k in ("description", "default", "example", "externalDocs", "title", "nullable",
                 "type", "format") or k.startswith("x-kubernetes-"):
            continue
        if k == "properties":
            out[k] = {}
            for name, sub in v.items():
                if root and name == "metadata":
                    out[k][name] = OBJECT_META
                else:
                    out[k][name] = to_json_schema(sub, nested, root=False)
        elif k == "items":
            out[k] = to_json_schema(v, nested, root=False)
        elif k == "additionalProperties":
            out[k] = v if isinstance(v, bool) else to_json_schema(v, nested, root=False)
        elif k in JUNCTORS:
            if k == "anyOf" and ios and v == INT_OR_STRING_ANYOF:
                continue
            out[k] = [to_json_schema(x, True, root=False) for x in v]
        elif k == "not":
            out[k] = to_json_schema(v, True, root=False)
        elif k in ("exclusiveMinimum", "exclusiveMaximum"):
            if v is True:
                out[k] = s["minimum" if k == "exclusiveMinimum" else "maximum"]
        elif k == "enum":
            out[k] = list(v) + ([None] if s.get("nullable") else [])
        else:
            out[k] = v
    if out.get("exclusiveMinimum") is not None and "minimum" in out:
        del out["minimum"]
    if out.get("exclusiveMaximum") is not None and "maximum" in out:
        del out["maximum"]
    if "format" in s:
        out["format"] = s["format"]
    if ios:
        out.setdefault("allOf", []).append({"anyOf": [{"type": "integer"}, {"type": "string"}]})
    elif t:
        out["type"] = [t, "null"] if s.get("nullable") else t
    if not nested and t == "object" and not s.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in s:
        out["additionalProperties"] = False
    rules = [CEL_TWINS[r["rule"]] for r in s.get("x-kubernetes-validations", [])
             if r.get("rule") in CEL_TWINS]
    if rules:
        out.setdefault("allOf", []).extend(rules)
    return out


def is_base64(v):
    if not isinstance(v, str):
        return True
    try:
        base64.b64decode(v, validate=True)
        return True
    except ValueError:
        return False


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(())
FORMATS.checks("byte")(is_base64)
FORMATS.checks("date-time")(lambda v: not isinstance(v, str) or bool(RFC3339.match(v)))
FORMATS.checks("int32")(lambda v: not isinstance(v, int) or -2**31 <= v < 2**31)
FORMATS.checks("int64")(lambda v: not isinstance(v, int) or -2**63 <= v < 2**63)


def validator_for(s, root=False):
    js = to_json_schema(s, root=root)
    jsonschema.Draft7Validator.check_schema(js)
    return jsonschema.Draft7Validator(js, format_checker=FORMATS)


def apply_defaults(s, value):
    """Fills defaults as the API server does before it validates: for each object, every
    property with a default that is absent, then deeper (defaults included)."""
    if not isinstance(s, dict):
        return
    if isinstance(value, dict):
        for k, sub in s.get("properties", {}).items():
            if k not in value and "default" in sub:
                value[k] = copy.deepcopy(sub["default"])
            if k in value:
                apply_defaults(sub, value[k])
        ap = s.get("additionalProperties")
        if isinstance(ap, dict):
            for k in value:
                if k not in s.get("properties", {}):
                    apply_defaults(ap, value[k])
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for v in value:
            apply_defaults(s["items"], v)


# ---------------------------------------------------------------------------- CRDs

def resolve(schema, path):
    """The schema node a printer column or selectable field path names, or None; "preserve"
    when the path goes below a node that keeps unknown fields."""
    node = schema
    tokens = re.findall(r"\.([A-Za-z0-9_-]+)|\[([^\]]*)\]", path)
    if not path.startswith(".") or not tokens:
        return None
    for name, index in tokens:
        if node.get("x-kubernetes-preserve-unknown-fields") and \
                name not in node.get("properties", {}):
            return "preserve"
        if name:
            if name == "metadata" and node is schema:
                return "metadata"
            props = node.get("properties", {})
            if name in props:
                node = props[name]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                return None
        else:
            if node.get("type") != "array":
                return None
            node = node["items"]
    return node


def check_crd(doc, where, crds):
    name = doc.get("metadata", {}).get("name", "")
    where = f"{where} ({name})"
    counts["CRDs"] += 1
    if doc.get("apiVersion") != "apiextensions.k8s.io/v1":
        fail(where, f"apiVersion {doc.get('apiVersion')!r}, not apiextensions.k8s.io/v1")
    spec = doc.get("spec", {})
    names = spec.get("names", {})
    if name != f"{names.get('plural')}.{spec.get('group')}":
        fail(where, "metadata.name is not <plural>.<group>")
    if name in crds:
        fail(where, "declared twice")
    crds[name] = doc
    exp = EXPECTED.get(name)
    if exp is None:
        fail(where, "not a CRD this check knows")
        return
    group, kind, plural, singular, scope, shorts, cats, versions, columns = exp
    got = (spec.get("group"), names.get("kind"), names.get("plural"), names.get("singular"),
           spec.get("scope"), names.get("shortNames", []), names.get("categories", []))
    want = (group, kind, plural, singular, scope, shorts, cats)
    for label, g, w in zip(("group", "kind", "plural", "singular", "scope", "shortNames",
                            "categories"), got, want):
        if g != w:
            fail(where, f"{label} is {g!r}, expected {w!r}")
    if names.get("listKind") != kind + "List":
        fail(where, f"listKind is {names.get('listKind')!r}")
    if spec.get("preserveUnknownFields"):
        fail(where, "spec.preserveUnknownFields must be false (pruning and defaults need it)")
    vers = spec.get("versions", [])
    gotv = [(v.get("name"), v.get("served"), v.get("storage"), bool(v.get("deprecated")))
            for v in vers]
    if gotv != versions:
        fail(where, f"versions {gotv}, expected {versions}")
    if sum(1 for v in vers if v.get("storage")) != 1:
        fail(where, "must have exactly one storage version")
    for v in vers:
        vw = f"{where} {v.get('name')}"
        if v.get("subresources", {}).get("status") != {}:
            fail(vw, "no status subresource")
        schema = v.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            fail(vw, "no openAPIV3Schema")
            continue
        for e in check_structural(schema, "openAPIV3Schema"):
            fail(vw, e)
        cols = [(c.get("name"), c.get("type"), c.get("jsonPath"))
                for c in v.get("additionalPrinterColumns", [])]
        if cols != columns:
            fail(vw, f"printer columns {cols}, expected {columns}")
        for c in v.get("additionalPrinterColumns", []):
            if c.get("type") not in COLUMN_TYPES:
                fail(vw, f"column {c.get('name')}: type {c.get('type')!r}")
            if "format" in c and c["format"] not in COLUMN_FORMATS:
                fail(vw, f"column {c.get('name')}: format {c['format']!r}")
            if resolve(schema, c.get("jsonPath", "")) is None:
                fail(vw, f"column {c.get('name')}: {c.get('jsonPath')} names no field")
        for f in v.get("selectableFields", []):
            node = resolve(schema, f.get("jsonPath", ""))
            if not isinstance(node, dict) or node.get("type") not in ("string", "integer",
                                                                      "boolean"):
                fail(vw, f"selectable field {f.get('jsonPath')}: not a string, integer or "
                         "boolean field")
        try:
            validator_for(schema, root=True)
        except jsonschema.SchemaError as e:
            fail(vw, f"does not translate to JSON Schema: {e.message}")


def served_schema(crds, api_version, kind):
    group, _, version = api_version.rpartition("/")
    for name, doc in crds.items():
        spec = doc["spec"]
        if spec.get("group") == group and spec.get("names", {}).get("kind") == kind:
            for v in spec.get("versions", []):
                if v.get("name") == version:
                    if not v.get("served"):
                        return None, f"{api_version} {kind} is not served"
                    return v["schema"]["openAPIV3Schema"], None
            return None, f"{name} has no version {version}"
    return None, f"no CRD for {api_version} {kind}"


def validation_errors(crds, obj):
    """Why the API server would refuse obj (a list; empty when it would take it), and a
    namespace on a cluster-scoped kind, which the server would silently drop."""
    schema, why = served_schema(crds, obj.get("apiVersion", ""), obj.get("kind", ""))
    if schema is None:
        return [why]
    value = copy.deepcopy(obj)
    apply_defaults(schema, value)
    errs = []
    for e in sorted(validator_for(schema, root=True).iter_errors(value), key=str):
        path = ".".join(str(p) for p in e.absolute_path)
        errs.append(f"{path or '(root)'}: {e.message}")
    crd = next(d for d in crds.values() if d["spec"]["group"] == obj["apiVersion"].split("/")[0]
               and d["spec"]["names"]["kind"] == obj["kind"])
    ns = obj.get("metadata", {}).get("namespace")
    if crd["spec"]["scope"] == "Cluster" and ns:
        errs.append(f"metadata.namespace: {obj['kind']} is cluster-scoped")
    return errs


# ---------------------------------------------------------------------------- negative cases

def broken_documents(examples):
    """(why, document) pairs that must be refused, made from valid examples."""
    def find(api, kind, pred=lambda d: True):
        for d in examples:
            if d.get("apiVersion") == api and d.get("kind") == kind and pred(d):
                return copy.deepcopy(d)
        raise LookupError(f"no example {api} {kind} to break")

    es = lambda: find("latchkey.io/v1", "ExternalSecret", lambda d: "data" in d["spec"])
    ss = lambda: find("latchkey.io/v1", "SecretStore",
                      lambda d: "kubernetes" in d["spec"]["provider"]["vault"]["auth"])
    sealed = lambda: find("latchkey.io/v1", "SealedSecret")
    cases = []

    def case(why, doc, change):
        change(doc)
        cases.append((why, doc))

    case("unknown creationPolicy", es(),
         lambda d: d["spec"].setdefault("target", {}).update(creationPolicy="Adopt"))
    case("missing secretStoreRef.name", es(),
         lambda d: d["spec"]["secretStoreRef"].pop("name"))
    case("missing secretStoreRef", es(), lambda d: d["spec"].pop("secretStoreRef"))
    case("refreshInterval as a number", es(), lambda d: d["spec"].update(refreshInterval=3600))
    case("refreshInterval not a duration", es(),
         lambda d: d["spec"].update(refreshInterval="hourly"))
    case("immutable as a string", es(),
         lambda d: d["spec"].setdefault("target", {}).update(immutable="yes"))
    case("secretKey with a slash", es(), lambda d: d["spec"]["data"][0].update(secretKey="a/b"))
    case("remoteRef without key", es(), lambda d: d["spec"]["data"][0]["remoteRef"].pop("key"))
    case("unknown decodingStrategy", es(),
         lambda d: d["spec"]["data"][0]["remoteRef"].update(decodingStrategy="Hex"))
    case("unknown field target.manifest", es(),
         lambda d: d["spec"].setdefault("target", {}).update(
             manifest={"apiVersion": "v1", "kind": "ConfigMap"}))
    case("neither data nor dataFrom", es(), lambda d: d["spec"].pop("data"))
    case("deletionPolicy Delete with creationPolicy Merge", es(),
         lambda d: d["spec"].setdefault("target", {}).update(creationPolicy="Merge",
                                                             deletionPolicy="Delete"))
    case("template type bootstrap token", es(),
         lambda d: d["spec"].setdefault("target", {}).setdefault("template", {}).update(
             type="bootstrap.kubernetes.io/token"))
    case("encryption with both recipient and recipientFrom", es(),
         lambda d: d["spec"].setdefault("target", {}).update(encryption={
             "recipient": "lk1pub:" + "A" * 43 + "=",
             "recipientFrom": {"configMapKeyRef": {"name": "k", "key": "k"}}}))
    case("encryption with neither", es(),
         lambda d: d["spec"].setdefault("target", {}).update(encryption={}))
    case("recipient not an lk1 public key", es(),
         lambda d: d["spec"].setdefault("target", {}).update(
             encryption={"recipient": "lk1priv:" + "A" * 43 + "="}))
    case("metadata without a name", es(), lambda d: d["metadata"].pop("name"))
    case("store kind not a store", es(),
         lambda d: d["spec"]["secretStoreRef"].update(kind="Secret"))
    case("store version v3", ss(), lambda d: d["spec"]["provider"]["vault"].update(version="v3"))
    case("store without server", ss(), lambda d: d["spec"]["provider"]["vault"].pop("server"))
    case("store server without a scheme", ss(),
         lambda d: d["spec"]["provider"]["vault"].update(server="vault.example.com:8200"))
    case("store with two auth methods", ss(),
         lambda d: d["spec"]["provider"]["vault"]["auth"].update(
             tokenSecretRef={"name": "t", "key": "token"}))
    case("store with an auth method latchkey lacks", ss(),
         lambda d: d["spec"]["provider"]["vault"].update(
             auth={"ldap": {"path": "ldap", "username": "u"}}))
    case("store with another provider", ss(),
         lambda d: d["spec"]["provider"].update(aws={"service": "SecretsManager"}))
    case("kubernetes auth without role", ss(),
         lambda d: d["spec"]["provider"]["vault"]["auth"]["kubernetes"].pop("role"))
    case("sealed secret without encryptedData", sealed(), lambda d: d["spec"].pop("encryptedData"))
    case("sealed value not a string", sealed(),
         lambda d: d["spec"]["encryptedData"].update(password=42))
    case("deprecated spec.data", sealed(), lambda d: d["spec"].update(data="AAAA"))
    case("cluster store with a namespace",
         find("latchkey.io/v1", "ClusterSecretStore"),
         lambda d: d["metadata"].update(namespace="app"))
    case("compat ExternalSecret whose spec is not an object",
         find("external-secrets.io/v1", "ExternalSecret"),
         lambda d: d.update(spec="not an object"))
    case("compat ExternalSecret with a numeric store name",
         find("external-secrets.io/v1", "ExternalSecret"),
         lambda d: d["spec"]["secretStoreRef"].update(name=5))
    case("unserved version v1beta1",
         find("external-secrets.io/v1", "ExternalSecret"),
         lambda d: d.update(apiVersion="external-secrets.io/v1beta1"))
    return cases


def accepted_documents(examples):
    """(why, document) pairs that must be taken: what the upstream kinds keep and latchkey's
    leave out."""
    eso = next(copy.deepcopy(d) for d in examples if d.get("apiVersion") == "external-secrets.io/v1")
    eso["spec"]["syncWindows"] = {"kind": "deny", "windows": [{"schedule": "@daily",
                                                               "duration": "1h"}]}
    eso["spec"]["target"]["template"]["templateFrom"] = [{"configMap": {
        "name": "t", "items": [{"key": "k", "templateAs": "Values"}]}}]
    return [("compat ExternalSecret with fields only ESO has", eso)]


def defaulted(crds, obj):
    schema, _ = served_schema(crds, obj["apiVersion"], obj["kind"])
    value = copy.deepcopy(obj)
    apply_defaults(schema, value)
    return value


BROKEN_SCHEMAS = [
    ("a field without type",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {
         "a": {"description": "no type"}}}}}),
    ("properties and additionalProperties",
     {"type": "object", "properties": {"spec": {"type": "object",
                                                "properties": {"a": {"type": "string"}},
                                                "additionalProperties": {"type": "string"}}}}),
    ("an array without items",
     {"type": "object", "properties": {"spec": {"type": "array"}}}),
    ("a default that does not validate",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {
         "mode": {"type": "string", "enum": ["a", "b"], "default": "c"}}}}}),
    ("a default of the wrong type",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {
         "n": {"type": "integer", "default": "1"}}}}}),
    ("a default with a field that is pruned",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {
         "t": {"type": "object", "default": {"x": "1"},
               "properties": {"y": {"type": "string"}}}}}}}),
    ("a type inside anyOf",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {
         "a": {"type": "string"}}, "anyOf": [{"type": "object"}]}}}),
    ("a junctor naming a field not specified outside",
     {"type": "object", "properties": {"spec": {"type": "object", "properties": {
         "a": {"type": "string"}}, "oneOf": [{"required": ["b"], "properties": {
             "b": {"pattern": "x"}}}]}}}),
    ("metadata with more than name",
     {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
         "labels": {"type": "object"}}}}}),
    ("a CEL rule without a twin",
     {"type": "object", "properties": {"spec": {"type": "object",
                                                "x-kubernetes-validations": [
                                                    {"rule": "self.size() > 0"}]}}}),
    ("int-or-string that also preserves unknown fields",
     {"type": "object", "properties": {"spec": {"x-kubernetes-int-or-string": True,
                                                "x-kubernetes-preserve-unknown-fields": True}}}),
    ("a $ref", {"type": "object", "properties": {"spec": {"$ref": "#/x"}}}),
]


# ---------------------------------------------------------------------------- main

def main():
    crds = {}
    # Kustomizations named "Kustomization" (no extension, so that `kubectl apply -f DIR`
    # leaves them alone) are YAML too.
    files = sorted(glob.glob(os.path.join(SRC, "deploy", "**", "*.yaml"), recursive=True) +
                   glob.glob(os.path.join(SRC, "deploy", "**", "*.yml"), recursive=True) +
                   glob.glob(os.path.join(SRC, "deploy", "**", "Kustomization"), recursive=True) +
                   glob.glob(os.path.join(SRC, "tests", "fixtures", "compat-crds", "*.yaml")))
    if not files:
        fail(SRC, "no YAML under deploy/ (wrong source directory?)")
    parsed = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs = load_all(f.read(), rel(path))
        counts["yaml files"] += 1
        if docs is None:
            continue
        parsed[path] = docs
        for i, d in enumerate(docs):
            if not isinstance(d, dict):
                fail(f"{rel(path)} document {i + 1}", "not a mapping")
            elif d.get("kind") == "CustomResourceDefinition":
                check_crd(d, rel(path), crds)

    # what lives where
    crd_dir = os.path.join(SRC, "deploy", "crds")
    in_dir = {d["metadata"]["name"] for p, ds in parsed.items()
              if os.path.dirname(p) == crd_dir for d in ds
              if d.get("kind") == "CustomResourceDefinition"}
    if in_dir != LATCHKEY_CRDS:
        fail("deploy/crds", f"holds {sorted(in_dir)}, expected {sorted(LATCHKEY_CRDS)}")
    compat_dir = os.path.join(SRC, "tests", "fixtures", "compat-crds")
    in_compat = {d["metadata"]["name"] for p, ds in parsed.items()
                 if os.path.dirname(p) == compat_dir for d in ds
                 if d.get("kind") == "CustomResourceDefinition"}
    if in_compat != COMPAT_CRDS:
        fail("tests/fixtures/compat-crds", f"holds {sorted(in_compat)}, expected "
             f"{sorted(COMPAT_CRDS)}")
    if os.path.exists(os.path.join(crd_dir, "kustomization.yaml")):
        fail("deploy/crds/kustomization.yaml", "would break `kubectl apply -f deploy/crds/`: "
             "name it Kustomization")
    kust = parsed.get(os.path.join(crd_dir, "Kustomization"))
    if not kust:
        fail("deploy/crds/Kustomization", "missing")
    else:
        listed = sorted(kust[0].get("resources", []))
        present = sorted(os.path.basename(p) for p in parsed
                         if os.path.dirname(p) == crd_dir and
                         os.path.basename(p) != "Kustomization")
        if listed != present:
            fail("deploy/crds/Kustomization", f"lists {listed}, the folder has {present}")

    # (c) examples and docs
    examples = []
    for path, docs in parsed.items():
        if not rel(path).startswith(os.path.join("deploy", "examples") + os.sep):
            continue
        for i, d in enumerate(docs):
            where = f"{rel(path)} document {i + 1}"
            if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
                fail(where, "not a Kubernetes object")
                continue
            if d["kind"] not in CHECKED_KINDS:
                continue
            counts["examples"] += 1
            examples.append(d)
            for e in validation_errors(crds, d):
                fail(where, e)
    if not examples:
        fail("deploy/examples", "no examples found")
    block = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.S | re.M)
    for path in sorted(glob.glob(os.path.join(SRC, "docs", "*.md"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in block.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            where = f"{rel(path)}:{line}"
            if not re.search(r"^kind:\s*(%s)\s*$" % "|".join(CHECKED_KINDS), m.group(1), re.M):
                continue
            docs = load_all(m.group(1), where)
            for d in docs or []:
                if isinstance(d, dict) and d.get("kind") in CHECKED_KINDS:
                    counts["doc blocks"] += 1
                    for e in validation_errors(crds, d):
                        fail(where, f"{d.get('kind')} {d.get('metadata', {}).get('name')}: {e}")

    # (d) what must be refused
    try:
        cases = broken_documents(examples)
    except LookupError as e:
        fail("deploy/examples", str(e))
        cases = []
    for why, doc in cases:
        if not validation_errors(crds, doc):
            fail("rejection", f"a document with {why} was accepted")
        else:
            counts["rejections"] += 1
    for why, doc in accepted_documents(examples):
        for e in validation_errors(crds, doc):
            fail("acceptance", f"a {why} was refused: {e}")
    # defaults as ESO's: a bare ExternalSecret gets the same target and refresh as there
    bare = {"apiVersion": "latchkey.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "x", "namespace": "app"},
            "spec": {"secretStoreRef": {"name": "vault"},
                     "data": [{"secretKey": "k", "remoteRef": {"key": "a/b"}}]}}
    spec = defaulted(crds, bare)["spec"]
    want = {"creationPolicy": "Owner", "deletionPolicy": "Retain"}
    if spec.get("target") != want or spec.get("refreshInterval") != "1h" or \
            spec["secretStoreRef"].get("kind") != "SecretStore":
        fail("defaults", f"a bare ExternalSecret defaults to {spec}")
    store = {"apiVersion": "latchkey.io/v1", "kind": "SecretStore",
             "metadata": {"name": "v", "namespace": "app"},
             "spec": {"provider": {"vault": {"server": "https://v:8200", "auth": {
                 "kubernetes": {"role": "r"}, }}}}}
    vault = defaulted(crds, store)["spec"]["provider"]["vault"]
    if vault.get("version") != "v2" or vault["auth"]["kubernetes"].get("mountPath") != "kubernetes":
        fail("defaults", f"a bare SecretStore defaults to {vault}")
    elif validation_errors(crds, store):
        fail("defaults", f"a bare SecretStore is refused: {validation_errors(crds, store)}")
    for why, schema in BROKEN_SCHEMAS:
        if not check_structural(schema, "openAPIV3Schema"):
            fail("rejection", f"a schema with {why} passed the structural check")
        else:
            counts["rejections"] += 1
    bad = load_all("a: 1\na: 2\n", "(repeated key)")
    if bad is not None:
        fail("rejection", "a YAML mapping with a repeated key parsed")
    else:
        failures.pop()
        counts["rejections"] += 1

    for f in failures:
        print(f"FAIL {f}")
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"{'FAILED' if failures else 'ok'}: {summary}; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
