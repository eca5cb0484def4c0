"""Every argument and block the module and the examples write exists in the hashicorp/aws
provider's schema, nested where the provider expects it, and no required one is missing: the part
of `terraform validate` that can be done without downloading the provider.

The schemas come from npm's @cdktf/provider-aws (generated from the provider's own schema:
19.45.0 = hashicorp/aws 5.79.0, the oldest versions.tf allows; 21.22.1 = 6.25.0), extracted by
extract_provider_schema.py into the files HEALTHLAKE_AWS_PROVIDER_SCHEMAS lists (separated by
":"); scripts/check-infra.sh fetches and extracts them once. Without that variable the test is
skipped.
"""

import json
import os
import sys
import unittest
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TF_DIRS = [ROOT / "infra" / "modules" / "healthlake", *sorted((ROOT / "infra" / "examples").iterdir())]
SCHEMAS = [p for p in os.environ.get("HEALTHLAKE_AWS_PROVIDER_SCHEMAS", "").split(os.pathsep) if p]
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider"}


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def is_block_list(value):
    return isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def check_body(body, node, where, problems):
    """Compares one block body with the schema node; appends what is wrong to `problems`."""
    present = set()
    for key, value in body.items():
        if key.startswith("__") or key in META_ARGUMENTS:
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, dyn_body in dynamic.items():
                    name = unquote(name)
                    present.add(name)
                    if name not in node["blocks"]:
                        problems.append(f"{where}: no block {name!r} (dynamic)")
                        continue
                    for content in dyn_body.get("content", []):
                        check_body(content, node["blocks"][name], f"{where}.{name}", problems)
            continue
        present.add(key)
        if is_block_list(value):
            if key not in node["blocks"]:
                problems.append(f"{where}: no block {key!r}" +
                                (" (it is an argument: write `=`)" if key in node["attributes"] else ""))
                continue
            for item in value:
                check_body(item, node["blocks"][key], f"{where}.{key}", problems)
        elif key not in node["attributes"]:
            problems.append(f"{where}: no argument {key!r}" +
                            (" (it is a block: drop the `=`)" if key in node["blocks"] else ""))
    for name, attribute in node["attributes"].items():
        if attribute["required"] and name not in present:
            problems.append(f"{where}: required argument {name!r} missing")
    for name, block in node["blocks"].items():
        if block.get("required") and name not in present:
            problems.append(f"{where}: required block {name!r} missing")


@unittest.skipUnless(SCHEMAS, "HEALTHLAKE_AWS_PROVIDER_SCHEMAS not set (scripts/check-infra.sh sets it)")
class ProviderSchema(unittest.TestCase):
    def test_arguments_and_blocks_exist_in_the_provider(self):
        for schema_path in SCHEMAS:
            with open(schema_path) as f:
                schema = json.load(f)
            with self.subTest(provider=schema["provider_version"]):
                self.check_against(schema)

    def check_against(self, schema):
        problems, checked = [], 0
        for directory in TF_DIRS:
            for path in sorted(directory.glob("*.tf")):
                with path.open() as f:
                    doc = hcl2.load(f)
                for kind in ("resource", "data"):
                    for block in doc.get(kind, []):
                        for rtype, by_name in block.items():
                            rtype = unquote(rtype)
                            for name, body in by_name.items():
                                where = f"{path.relative_to(ROOT)}: {rtype}.{unquote(name)}"
                                node = schema[kind].get(rtype)
                                if node is None:
                                    problems.append(f"{where}: no {kind} type {rtype} in hashicorp/aws")
                                    continue
                                check_body(body, node, where, problems)
                                checked += 1
        self.assertGreater(checked, 20, "too few resources found")
        self.assertEqual(problems, [], f"against hashicorp/aws {schema['provider_version']}")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed, {len(result.skipped)} skipped")
    sys.exit(1 if failed else 0)
