"""Extracts the argument and block names of the hashicorp/aws provider from the jsii assembly of
npm's @cdktf/provider-aws (generated from the provider's own schema), for offline checks of the
module's argument names without `terraform validate` (which needs the provider binary).

    python3 tests/infra/extract_provider_schema.py path/to/package/.jsii out.json

out.json: {"provider_version": "6.25.0", "resource": {type: node}, "data": {type: node}} where
node = {"attributes": {name: {"required": bool}}, "blocks": {name: node}, "required": bool}
(a block's "required": the provider refuses the resource without it).
"""

import json
import re
import sys

LINK = re.compile(r"registry\.terraform\.io/providers/hashicorp/aws/([0-9.]+)/docs/(resources|data-sources)/(\w+)(?:#(\w+))?")


def main(jsii_path, out_path):
    with open(jsii_path) as f:
        assembly = json.load(f)
    types = assembly["types"]
    version = None

    def link_of(docs):
        text = " ".join(str(docs.get(k, "")) for k in ("summary", "remarks"))
        return LINK.search(text)

    def struct_fqn(type_ref):
        """The provider struct a property refers to (directly, in a list/map, or in a union)."""
        if "fqn" in type_ref:
            return type_ref["fqn"] if type_ref["fqn"] in types and types[type_ref["fqn"]].get("datatype") else None
        if "collection" in type_ref:
            return struct_fqn(type_ref["collection"]["elementtype"])
        if "union" in type_ref:
            for t in type_ref["union"]["types"]:
                found = struct_fqn(t)
                if found:
                    return found
        return None

    def node(fqn, seen=(), required=False):
        result = {"attributes": {}, "blocks": {}, "required": required}
        if fqn in seen:
            return result
        for prop in types[fqn].get("properties", []):
            match = link_of(prop.get("docs", {}))
            if not match or not match.group(4):
                continue
            name = match.group(4)
            nested = struct_fqn(prop["type"])
            if nested:
                result["blocks"][name] = node(nested, seen + (fqn,), not prop.get("optional", False))
            else:
                result["attributes"][name] = {"required": not prop.get("optional", False)}
        return result

    schema = {"resource": {}, "data": {}}
    for t in types.values():
        if t.get("kind") != "class" or "initializer" not in t:
            continue
        match = link_of(t.get("docs", {}))
        params = t["initializer"].get("parameters", [])
        if not match or len(params) < 3 or "fqn" not in params[2]["type"]:
            continue
        version = version or match.group(1)
        kind = "resource" if match.group(2) == "resources" else "data"
        schema[kind][f"aws_{match.group(3)}"] = node(params[2]["type"]["fqn"])
    schema["provider_version"] = version
    with open(out_path, "w") as f:
        json.dump(schema, f, sort_keys=True)
    print(f"{out_path}: hashicorp/aws {version}, {len(schema['resource'])} resources, "
          f"{len(schema['data'])} data sources", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
