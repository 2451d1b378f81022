"""The JSON Schema of ``model.json`` (spec §11) and strict JSON parsing for untrusted files.

``model.schema.json`` ships in the package; :func:`build_schema` generates it from the
operator table :data:`spikeforge.graph.OPS` (``python -m spikeforge.modelschema`` prints it;
a test checks the shipped file is what it prints). :func:`parse_json` reads JSON text with
limits that hold before and while parsing (size, nesting depth, number range, duplicate keys,
NaN/Infinity); :func:`check_schema` validates with jschon (a maintained JSON Schema
2020-12 validator) and turns the first violation into one line.
"""

import functools
import importlib.resources
import json
import re
import urllib.parse
import warnings

import numpy as np

from .graph import MAX_NODES, OPS, SPEC_VERSION, ModelError

__all__ = ["build_schema", "load_schema", "parse_json", "check_schema", "DTYPES",
           "MAX_DEPTH", "MEMBER_RE", "NAME_PATTERN"]

FORMAT = "spikeforge-model"
#: Integer dtypes a tensor may be stored as (little-endian, as ``str(numpy.dtype)`` names them).
DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
#: Deepest nesting of JSON arrays and objects in ``model.json`` (the top-level object is 1).
MAX_DEPTH = 10
#: Deepest nesting inside ``metadata`` (``metadata`` itself is level 1).
META_DEPTH = 7
#: Largest JSON text (compact, keys sorted) of one node, one tensor table entry, the metadata.
PART_BYTES = {"node": 4096, "tensor": 512, "metadata": 16384}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
NAME_PATTERN = "^[A-Za-z0-9_]([A-Za-z0-9_.:-]{0,126}[A-Za-z0-9_])?$"
#: Archive members holding tensors: ``tensors/NAME.npy`` (no further separator, no ``..``).
MEMBER_PATTERN = "^tensors/[A-Za-z0-9_][A-Za-z0-9_.:-]{0,190}\\.npy$"
MEMBER_RE = re.compile(MEMBER_PATTERN[1:-1])
_NOT_PATH_TRICK = {"not": {"pattern": "\\.\\.|\\n"}}  # '$' also matches before a final newline


def build_schema():
    """The JSON Schema (draft 2020-12) of ``model.json``, version :data:`SPEC_VERSION`."""
    name = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NAME_PATTERN,
            **_NOT_PATH_TRICK}
    member = {"type": "string", "minLength": 13, "maxLength": 200, "pattern": MEMBER_PATTERN,
              **_NOT_PATH_TRICK}
    defs = {
        "name": name,
        "member": member,
        "tensor": {
            "type": "object", "required": ["dtype", "shape", "sha256"], "additionalProperties": False,
            "properties": {
                "dtype": {"enum": list(DTYPES)},
                "shape": {"type": "array", "minItems": 1, "maxItems": 4,
                          "items": {"type": "integer", "minimum": 1, "maximum": 4096}},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$", "maxLength": 64},
            },
        },
        "node": {
            "type": "object", "required": ["name", "op", "inputs", "attrs", "tensors"],
            "additionalProperties": False,
            "properties": {
                "name": {"$ref": "#/$defs/name"},
                "op": {"enum": list(OPS)},
                "inputs": {"type": "array", "maxItems": 3, "items": {"$ref": "#/$defs/name"}},
                "attrs": {"type": "object"},
                "tensors": {"type": "object", "maxProperties": 3},
            },
            "allOf": [{"if": {"properties": {"op": {"const": op}}},
                       "then": {"$ref": f"#/$defs/op_{op}"}} for op in OPS],
        },
    }
    for op, sch in OPS.items():
        attrs = {}
        for key, allowed in {**sch["attrs"], **sch.get("optional", {})}.items():
            if isinstance(allowed[0], str):
                attrs[key] = {"enum": list(allowed)}
            else:
                attrs[key] = {"type": "integer", "minimum": allowed[0], "maximum": allowed[1]}
        defs[f"op_{op}"] = {"properties": {
            "inputs": {"minItems": sch["inputs"], "maxItems": sch["inputs"]},
            "attrs": {"required": list(sch["attrs"]), "additionalProperties": False,
                      "properties": attrs},
            "tensors": {"required": list(sch["tensors"]), "additionalProperties": False,
                        "properties": {t: {"$ref": "#/$defs/member"} for t in sch["tensors"]}},
        }}
    # One schema per nesting level, no anyOf: each keyword applies to its own JSON type only.
    for level in range(1, META_DEPTH + 1):
        meta = {"type": ["null", "boolean", "number", "string"], "minimum": INT64_MIN,
                "maximum": INT64_MAX, "maxLength": 4096}
        if level < META_DEPTH:
            inner = {"$ref": f"#/$defs/meta{level + 1}"}
            meta["type"] = meta["type"] + ["array", "object"]
            meta.update({"maxItems": 1024, "items": inner, "maxProperties": 256,
                         "propertyNames": {"maxLength": 128}, "additionalProperties": inner})
        defs[f"meta{level}"] = meta
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:spikeforge:model-file:{SPEC_VERSION}",
        "title": f"spikeforge model file, model.json, version {SPEC_VERSION} (docs/spec.md §11)",
        "type": "object",
        "required": ["format", "version", "time_steps", "nodes", "tensors"],
        "additionalProperties": False,
        "properties": {
            "format": {"const": FORMAT},
            "version": {"const": SPEC_VERSION},
            "time_steps": {"type": "integer", "minimum": 1, "maximum": 64},
            "nodes": {"type": "array", "minItems": 2, "maxItems": MAX_NODES,
                      "items": {"$ref": "#/$defs/node"}},
            "tensors": {"type": "object", "maxProperties": 3 * MAX_NODES,
                        "propertyNames": {"$ref": "#/$defs/member"},
                        "additionalProperties": {"$ref": "#/$defs/tensor"}},
            "metadata": {"type": "object", "maxProperties": 256, "propertyNames": {"maxLength": 128},
                         "additionalProperties": {"$ref": "#/$defs/meta2"}},
        },
        "$defs": defs,
    }


def load_schema():
    """The shipped schema, ``spikeforge/model.schema.json``, as a dict."""
    return json.loads((importlib.resources.files("spikeforge") / "model.schema.json").read_text("utf-8"))


@functools.cache
def _validator():
    """jschon validators: the shipped schema with its per-node, per-table-entry and metadata
    subschemas split off (each validated on its own and remembered by its text: JSON Schema's
    ``items``/``additionalProperties`` apply a subschema to each element independently, so this
    is the same validation, done once per distinct node)."""
    from jschon import JSONSchema, create_catalog

    schema = load_schema()
    base = schema["$id"]
    top = json.loads(json.dumps(schema))
    top["$id"] = base + ":top"
    top["properties"]["nodes"]["items"] = {}
    top["properties"]["tensors"]["additionalProperties"] = {}
    top["properties"]["metadata"] = {"type": "object"}
    parts = {"node": "#/$defs/node", "tensor": "#/$defs/tensor",
             "metadata": "#/properties/metadata"}
    dicts = {base: schema, top["$id"]: top}
    with warnings.catch_warnings():  # jschon's URI library warns about its own deprecated calls
        warnings.simplefilter("ignore", DeprecationWarning)
        create_catalog("2020-12")
        JSONSchema(schema)
        validators = {"top": JSONSchema(top)}
        for part, ref in parts.items():
            validators[part] = JSONSchema({"$schema": schema["$schema"], "$id": f"{base}:{part}",
                                           "$ref": base + ref})
    return dicts, validators


_PART_VALID = set()


# --- strict parsing --------------------------------------------------------------------------

class _Refused(Exception):
    pass


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(raw):
    """Deepest nesting of ``[``/``{`` in JSON text ``raw`` (bytes), strings left out; for
    valid JSON exactly the depth the parser would recurse to. Linear time, no recursion."""
    skeleton = np.frombuffer(_STRINGS.sub(b"", raw), dtype=np.uint8)
    if skeleton.size == 0:
        return 0
    step = (np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64)
            - np.isin(skeleton, (ord("]"), ord("}"))))
    return int(np.cumsum(step).max(initial=0))


def _pairs(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _Refused(f"duplicate key {key!r}")
        seen.add(key)
    return dict(pairs)


def _int(text):
    if len(text.lstrip("-")) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
        raise _Refused(f"integer {text[:30]}{'...' if len(text) > 30 else ''} is beyond the signed "
                       "64-bit range")
    return int(text)


def _float(text):
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise _Refused(f"number {text[:30]} is beyond the double-precision range")
    return value


def _constant(text):
    raise _Refused(f"{text} is not JSON (NaN and Infinity are refused)")


def parse_json(raw, what="model.json"):
    """Parse JSON ``raw`` (UTF-8 bytes): duplicate keys, NaN/Infinity, integers beyond int64,
    floats beyond double and nesting deeper than :data:`MAX_DEPTH` raise :class:`ModelError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"{what} is not UTF-8 text (byte {e.start})") from None
    depth = json_depth(raw)
    if depth > MAX_DEPTH:
        raise ModelError(f"{what} nests arrays/objects {depth} deep; allowed: at most {MAX_DEPTH}")
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
    except _Refused as e:
        raise ModelError(f"{what} is refused: {e}") from None
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise ModelError(f"{what} is not valid JSON ({_one_line(e)})") from None


def _one_line(e, limit=160):
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def floats_outside_metadata(doc, path=""):
    """``(location, value)`` of the first non-integer number outside ``metadata`` (JSON
    Schema counts ``2.0`` as an integer; this format writes integers without fraction or
    exponent), or ``None``."""
    if isinstance(doc, float):
        return path or "/", doc
    items = (doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ())
    for k, v in items:
        if path == "" and k == "metadata":
            continue
        found = floats_outside_metadata(v, f"{path}/{k}")
        if found:
            return found
    return None


# --- schema validation -------------------------------------------------------------------------

_LEAVES = {"type", "enum", "const", "minimum", "maximum", "minLength", "maxLength", "pattern",
           "not", "minItems", "maxItems", "required", "additionalProperties", "maxProperties"}


def _pointer(doc, pointer):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]] if pointer else []
    for p in parts:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc, parts


def _schema_at(schema, uri):
    fragment = urllib.parse.unquote(uri.partition("#")[2])
    node = schema
    for p in fragment.split("/")[1:]:
        p = p.replace("~1", "/").replace("~0", "~")
        node = node[int(p)] if isinstance(node, list) else node[p]
    return node


def check_schema(doc):
    """Validate ``doc`` against the shipped schema; raise :class:`ModelError` with one line
    naming the first violation (the deepest location), its value and what is allowed."""
    dicts, validators = _validator()
    skeleton = _skeleton(doc)
    top = ("top", json.dumps(skeleton, sort_keys=True))
    if top not in _PART_VALID:
        _evaluate(dicts, validators["top"], skeleton, doc, "")
        _PART_VALID.add(top)
    parts = [("node", v, f"/nodes/{i}") for i, v in enumerate(doc["nodes"])]
    parts += [("tensor", v, "/tensors/" + k.replace("~", "~0").replace("/", "~1"))
              for k, v in doc["tensors"].items()]
    if "metadata" in doc:
        parts.append(("metadata", doc["metadata"], "/metadata"))
    for kind, value, prefix in parts:
        key = (kind, json.dumps(value, sort_keys=True))
        if len(key[1]) > PART_BYTES[kind]:  # bounds the validator's memory (it wraps every value)
            raise ModelError(f"model.json at {prefix} takes {len(key[1])} bytes as JSON; allowed: at "
                             f"most {PART_BYTES[kind]}")
        if key in _PART_VALID:
            continue
        _evaluate(dicts, validators[kind], value, doc, prefix)
        if len(_PART_VALID) >= 8192:
            _PART_VALID.clear()
        _PART_VALID.add(key)


def _skeleton(doc):
    """``doc`` with the contents of the split-off parts left out (``nodes`` items, table entries,
    ``metadata`` entries become ``null``): all the top-level schema looks at."""
    if not isinstance(doc, dict):
        return doc
    sk = dict(doc)
    if isinstance(doc.get("nodes"), list):
        sk["nodes"] = [None] * len(doc["nodes"])
    if isinstance(doc.get("tensors"), dict):
        sk["tensors"] = dict.fromkeys(doc["tensors"])
    if isinstance(doc.get("metadata"), dict):
        sk["metadata"] = {}
    return sk


def _evaluate(dicts, validator, value, doc, prefix):
    from jschon import JSON

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = validator.evaluate(JSON(value))
    if result.valid:
        return
    errors = [e for e in result.output("basic")["errors"]
              if e["keywordLocation"].rsplit("/", 1)[-1] in _LEAVES]
    if not errors:  # pragma: no cover - every failing schema ends in a leaf keyword
        raise ModelError(f"model.json at {prefix or '/'} does not match the model file schema")
    depth = max(e["instanceLocation"].count("/") for e in errors)
    deepest = [e for e in errors if e["instanceLocation"].count("/") == depth]
    err = next((e for e in deepest if not e["keywordLocation"].endswith(
        ("/not", "/additionalProperties", "/required"))), deepest[0])
    err = dict(err, instanceLocation=prefix + err["instanceLocation"])
    uri = err["absoluteKeywordLocation"]
    try:
        message = _message(doc, dicts[uri.partition("#")[0]], err)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):  # pragma: no cover
        message = (f"model.json at {err['instanceLocation'] or '/'} does not match the schema "
                   f"({err['keywordLocation'].rsplit('/', 1)[-1]}: {_one_line(err['error'])})")
    raise ModelError(message)


def _message(doc, schema, err):
    loc = err["instanceLocation"]
    keyword = err["keywordLocation"].rsplit("/", 1)[-1]
    value, parts = _pointer(doc, loc)
    if "/propertyNames/" in err["keywordLocation"]:
        value = parts[-1]  # the key itself is at fault
    here = _schema_at(schema, err["absoluteKeywordLocation"].rsplit("/", 1)[0])
    kw = _schema_at(schema, err["absoluteKeywordLocation"])
    # Node attributes and operators: the validator's own wording (spec §4-§8).
    if len(parts) >= 2 and parts[0] == "nodes":
        nd = doc["nodes"][int(parts[1])]
        who = (f"node {nd['name']!r} ({nd['op']})" if isinstance(nd, dict) and isinstance(nd.get("name"), str)
               and isinstance(nd.get("op"), str) and nd["op"] in OPS else f"node #{parts[1]}")
        if parts[2:3] == ["op"] and keyword == "enum":
            return f"{who}: unknown operator {_short(value)}; known: {', '.join(OPS)}"
        if parts[2:3] == ["attrs"] and len(parts) == 4:
            key = parts[3]
            if keyword in ("minimum", "maximum"):
                return f"{who}: attribute {key!r} is {value}; allowed {here['minimum']}..{here['maximum']}"
            if keyword == "type":
                return f"{who}: attribute {key!r} must be an integer, not {_short(value)}"
            if keyword == "enum":
                return f"{who}: attribute {key!r} is {_short(value)}; allowed: {', '.join(kw)}"
        if parts[2:3] == ["attrs"] and len(parts) == 3 and isinstance(value, dict):
            if keyword == "required":
                missing = [k for k in kw if k not in value]
                return f"{who}: missing attribute {missing[0]!r}"
            if keyword == "additionalProperties":
                extra = sorted(set(value) - set(here.get("properties", {})))
                return (f"{who}: unknown attribute(s) {_short(extra)}; "
                        f"allowed: {sorted(here.get('properties', {}))}")
    where = f"model.json at /{'/'.join(parts)}"
    if keyword == "type":
        depth = (f" (metadata nests at most {META_DEPTH - 1} levels of lists and mappings)"
                 if parts[:1] == ["metadata"] and isinstance(value, (list, dict)) else "")
        return (f"{where} is {_short(value)}; expected "
                f"{' or '.join(kw) if isinstance(kw, list) else kw}{depth}")
    if keyword in ("enum", "const"):
        allowed = kw if keyword == "enum" else [kw]
        return f"{where} is {_short(value)}; allowed: {', '.join(map(repr, allowed))}"
    if keyword in ("minimum", "maximum"):
        return f"{where} is {_short(value)}; allowed {here.get('minimum')}..{here.get('maximum')}"
    if keyword in ("minLength", "maxLength"):
        return (f"{where} is a string of {len(value)} characters; allowed "
                f"{here.get('minLength', 0)}..{here.get('maxLength')}")
    if keyword in ("pattern", "not"):
        pattern = here.get("pattern", "")
        return f"{where} is {_short(value)}; allowed: strings matching {pattern} without '..'"
    if keyword in ("minItems", "maxItems"):
        return (f"{where} is a list of {len(value)} items; allowed "
                f"{here.get('minItems', 0)}..{here.get('maxItems')}")
    if keyword == "maxProperties":
        return f"{where} has {len(value)} entries; allowed at most {kw}"
    if keyword == "required":
        missing = [k for k in kw if k not in value]
        return f"{where} lacks the key(s) {_short(missing)}"
    if keyword == "additionalProperties":
        extra = sorted(set(value) - set(here.get("properties", {})))
        allowed = sorted(here.get("properties", {}))
        return f"{where} has unexpected key(s) {_short(extra)}; allowed: {allowed}"
    return f"{where} is {_short(value)}; {_one_line(err['error'])}"  # pragma: no cover


if __name__ == "__main__":
    print(json.dumps(build_schema(), indent=1))
