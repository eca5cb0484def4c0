"""The Terraform module against the Rust code it deploys, offline.

Parses every .tf file of infra/modules/healthlake with python-hcl2 and the Rust sources the
functions run with, and checks that the two agree: roles per function, the Kafka mapping and the
schedules wired to the right functions (finalize's inputs the window kinds, maintain's inputs
known tables and operations), environment variable names that lib/pipeline reads, the state table
exactly as lib/state uses it, s3:DeleteObject exactly for the functions that maintain tables, and
IAM without "*" resources.

    PYTHONPATH=$HEALTHLAKE_CACHE/venv-infra/python-hcl2 \
        $HEALTHLAKE_CACHE/venv-infra/bin/python tests/infra/test_wiring.py

(scripts/check-infra.sh runs it so.) Plain unittest: no pytest needed.
"""

import json
import re
import sys
import unittest
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "modules" / "healthlake"
ENV_RS = ROOT / "lib" / "pipeline" / "src" / "config" / "env.rs"
STATE_DYNAMODB = ROOT / "lib" / "state" / "src" / "dynamodb"
LAKE_SRC = ROOT / "lib" / "lake" / "src"
PIPELINE_SRC = ROOT / "lib" / "pipeline" / "src"
WINDOW_RS = ROOT / "lib" / "core" / "src" / "window.rs"
FINALIZE_MAIN = ROOT / "functions" / "finalize" / "src" / "main.rs"
MAINTAIN_SRC = ROOT / "functions" / "maintain" / "src"

# maintain's input (functions/maintain/src/main.rs): {"table": one of MAINTAIN_TABLES,
# "operations": a subset of MAINTAIN_OPERATIONS (run in this order), "recent_days": N (compact
# only the day partitions of the last N days), "grace_days": N (at least 1), "dry_run": bool}.
MAINTAIN_TABLES = {"raw", "errors", "daily", "weekly", "monthly"}
MAINTAIN_OPERATIONS = ["compact", "rewrite_manifests", "expire", "orphans"]
MAINTAIN_FIELDS = {"table", "operations", "recent_days", "grace_days", "dry_run"}
# The lib/lake files that delete objects, all of them table maintenance: snapshot expiry (files
# only expired snapshots read), old metadata files (those past the metadata log), orphan removal,
# and compaction (the files it wrote, when its commit loses). A new one is a new deleting code
# path: look at the grants first.
LAKE_DELETING_FILES = {"compact.rs", "expire.rs", "metadata_files.rs", "orphans.rs"}
DELETE_CALL = r"file_io\(\)\s*\.\s*delete|\.delete_prefix\(|\.delete_stream\("

# Lambda sets these itself; a function configuration may not.
LAMBDA_RESERVED = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME", "_HANDLER", "LAMBDA_TASK_ROOT"}


def unquote(value):
    """python-hcl2 keeps string literals quoted ("\"pk\"") and expressions as "${...}"."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def expr(value):
    """The expression inside "${...}", or the value itself."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return value


def load_module():
    """All blocks of the module's .tf files: {"resource": {type: {name: body}}, "data": ..., ...}."""
    merged = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "output": {}}
    files = sorted(MODULE.glob("*.tf"))
    assert files, f"no .tf files in {MODULE}"
    for path in files:
        with path.open() as f:
            doc = hcl2.load(f)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, by_name in block.items():
                    for name, body in by_name.items():
                        merged[kind].setdefault(unquote(rtype), {})[unquote(name)] = body
        for block in doc.get("locals", []):
            merged["locals"].update({k: v for k, v in block.items() if not k.startswith("__")})
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                for name, body in block.items():
                    merged[kind][unquote(name)] = body
    return merged


def blocks(body, name):
    """The nested blocks called `name` (python-hcl2 gives a list of dicts)."""
    found = body.get(name, [])
    return found if isinstance(found, list) else [found]


def statements(policy_body):
    """Static and dynamic statements of an aws_iam_policy_document, as dicts."""
    result = [dict(s) for s in blocks(policy_body, "statement")]
    for dyn in blocks(policy_body, "dynamic"):
        for dyn_name, dyn_body in dyn.items():
            if unquote(dyn_name) == "statement":
                for content in blocks(dyn_body, "content"):
                    result.append(dict(content))
    return result


def as_list(value):
    return value if isinstance(value, list) else [value]


def dynamic_statements(policy_body):
    """Dynamic statements of an aws_iam_policy_document: (for_each expression, content dict)."""
    result = []
    for dyn in blocks(policy_body, "dynamic"):
        for dyn_name, dyn_body in dyn.items():
            if unquote(dyn_name) == "statement":
                for content in blocks(dyn_body, "content"):
                    result.append((expr(dyn_body["for_each"]), dict(content)))
    return result


def snake_case(identifier):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", identifier).lower()


def rust_sources(*paths):
    """The text of the .rs files under the given files or directories (missing ones skipped)."""
    texts = []
    for path in paths:
        if path.is_file():
            texts.append(path.read_text())
        elif path.is_dir():
            texts += [p.read_text() for p in sorted(path.rglob("*.rs"))]
    return "\n".join(texts)


def calls_any(text, names):
    """Whether `text` calls one of the functions `names` (`name(` or `.name(`)."""
    return bool(names) and re.search(r"\b(?:%s)\s*\(" % "|".join(map(re.escape, names)), text) is not None


def pub_async_fns(text):
    return set(re.findall(r"\bpub\s+async\s+fn\s+(\w+)", text))


def deleting_lake_files():
    """The lib/lake files that delete objects themselves (storage.rs only passes the calls on)."""
    return sorted(path.name for path in LAKE_SRC.glob("*.rs")
                  if path.name != "storage.rs" and re.search(DELETE_CALL, path.read_text()))


def maintaining_pipeline_modules():
    """lib/lake's public entry points that delete (the `pub async fn`s of the deleting files, and
    those of other lib/lake files calling them), and lib/pipeline's modules (top-level file or
    directory names) calling one of them: the maintenance use case."""
    deleting = [LAKE_SRC / name for name in deleting_lake_files()]
    lake_calls = set().union(*[pub_async_fns(path.read_text()) for path in deleting])
    direct = set(lake_calls)
    for path in LAKE_SRC.glob("*.rs"):
        text = path.read_text()
        if path not in deleting and calls_any(text, direct):
            lake_calls |= pub_async_fns(text)
    modules = set()
    for path in PIPELINE_SRC.rglob("*.rs"):
        if calls_any(path.read_text(), lake_calls):
            module = path.relative_to(PIPELINE_SRC).parts[0].removesuffix(".rs")
            if module not in ("lib", "main"):
                modules.add(module)
    return lake_calls, modules


def resolve(value, tf):
    """A local's value with its references to locals and to variables (at their defaults)
    substituted and its strings unquoted: what Terraform would jsonencode."""
    if isinstance(value, list):
        return [resolve(v, tf) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, tf) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, str):
        inner = expr(value)
        if inner is not value:
            ref = re.fullmatch(r"(local|var)\.(\w+)", inner)
            if ref is None:
                raise AssertionError(f"cannot evaluate {value!r} offline: use a literal, local.X or var.X")
            kind, name = ref.groups()
            if kind == "local":
                return resolve(tf["locals"][name], tf)
            return resolve(tf["variable"][name]["default"], tf)
        return unquote(value)
    return value


def rust_consts(path):
    """`pub const X: &str = "NAME";` declarations: {X: NAME}."""
    text = path.read_text()
    return dict(re.findall(r'pub\s+const\s+([A-Z0-9_]+)\s*:\s*&str\s*=\s*"([^"]+)"\s*;', text))


class ModuleWiring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tf = load_module()
        cls.resources = cls.tf["resource"]
        cls.data = cls.tf["data"]
        cls.functions = cls.tf["locals"]["functions"]

    # --- functions and roles ---

    def test_functions_map_declares_the_four_binaries(self):
        self.assertEqual(set(self.functions), {"ingest", "finalize", "backfill", "maintain"})
        fields = {frozenset(k for k in f if not k.startswith("__")) for f in self.functions.values()}
        self.assertEqual(len(fields), 1, "every entry of local.functions must set the same fields (capabilities too)")
        for key, f in self.functions.items():
            self.assertEqual(unquote(f["binary"]), f"healthlake-{key}",
                             f"{key}: binary must be the cargo-lambda binary healthlake-{key}")
            self.assertTrue((ROOT / "functions" / key / "src" / "main.rs").exists(),
                            f"{key}: no functions/{key}/src/main.rs")

    def test_every_function_has_its_own_role(self):
        lambdas = self.resources.get("aws_lambda_function", {})
        self.assertEqual(set(lambdas), {"function"}, "functions must all come from the one map")
        fn = lambdas["function"]
        self.assertEqual(expr(fn["for_each"]), "local.functions")
        # The role is picked by the function's own key, so no two functions share one.
        self.assertEqual(expr(fn["role"]), "aws_iam_role.function[each.key].arn",
                         "each function must use the role of its own key")
        role = self.resources["aws_iam_role"]["function"]
        self.assertEqual(expr(role["for_each"]), "local.functions", "one role per function")
        self.assertIn("each.key", role["name"], "role names must differ per function")
        policy = self.resources["aws_iam_role_policy"]["function"]
        self.assertEqual(expr(policy["for_each"]), "local.functions")
        self.assertEqual(expr(policy["role"]), "aws_iam_role.function[each.key].id")
        self.assertEqual(expr(policy["policy"]), "data.aws_iam_policy_document.function[each.key].json")
        # No other role can be assumed by Lambda: the scheduler's trusts the scheduler only.
        for name, role_body in self.resources["aws_iam_role"].items():
            if name != "function":
                self.assertNotEqual(expr(role_body["assume_role_policy"]),
                                    "data.aws_iam_policy_document.lambda_assume_role.json",
                                    f"aws_iam_role.{name} would be a second function role")
        trust = json.dumps(self.data["aws_iam_policy_document"]["scheduler_assume_role"])
        self.assertNotIn("lambda.amazonaws.com", trust, "the scheduler's role is not a function role")

    def test_functions_run_the_packaged_zips(self):
        fn = self.resources["aws_lambda_function"]["function"]
        self.assertEqual(unquote(fn["runtime"]), "provided.al2023")
        self.assertEqual(unquote(fn["handler"]), "bootstrap")
        self.assertIn("filebase64sha256", fn["source_code_hash"])
        zip_path = self.tf["locals"]["function_config"]
        # <dir>/<arch>/<binary>/bootstrap.zip, the layout scripts/package-lambdas.sh writes.
        self.assertIn("${var.lambda_artifacts_dir}/${var.architecture}/${f.binary}/bootstrap.zip", zip_path)
        script = (ROOT / "scripts" / "package-lambdas.sh").read_text()
        self.assertIn('--lambda-dir "$out/$arch"', script, "package-lambdas.sh no longer writes <dir>/<arch>/")
        for key, f in self.functions.items():
            self.assertIn(unquote(f["binary"]), script, f"package-lambdas.sh does not build {key}")

    def test_ingest_timeout_fits_the_kafka_mapping(self):
        # Functions behind a Kafka event source mapping may run 14 minutes at most.
        self.assertLessEqual(self.functions["ingest"]["timeout"], 840)

    # --- the Kafka mapping ---

    def test_event_source_mapping_invokes_ingest(self):
        mappings = self.resources.get("aws_lambda_event_source_mapping", {})
        self.assertEqual(len(mappings), 1, "exactly one event source mapping")
        (mapping,) = mappings.values()
        self.assertEqual(expr(mapping["function_name"]), 'aws_lambda_function.function["ingest"].arn',
                         "the Kafka mapping must invoke ingest")
        self.assertEqual([expr(t) for t in mapping["topics"]], ["var.kafka.topic"])
        (destination,) = blocks(mapping, "destination_config")
        (on_failure,) = blocks(destination, "on_failure")
        self.assertEqual(expr(on_failure["destination_arn"]), "local.bucket_arn")
        # Only ingest's role carries the mapping's permissions.
        kafka_functions = {k for k, f in self.functions.items() if f["reads_kafka"] is True}
        self.assertEqual(kafka_functions, {"ingest"})

    # --- schedules ---

    def test_schedules_invoke_finalize_with_the_three_kinds(self):
        schedules = self.resources.get("aws_scheduler_schedule", {})
        self.assertEqual(set(schedules), {"finalize", "maintain"})
        schedule = schedules["finalize"]
        self.assertEqual(expr(schedule["for_each"]), "local.finalize_kinds")
        (target,) = blocks(schedule, "target")
        self.assertEqual(expr(target["arn"]), 'aws_lambda_function.function["finalize"].arn')
        self.assertEqual(expr(target["input"]), "jsonencode({kind = each.key})")
        self.assertTrue(blocks(target, "retry_policy"), "schedules need a retry_policy")
        self.assertTrue(blocks(target, "dead_letter_config"), "schedules need a dead_letter_config")
        kinds = set(self.tf["locals"]["finalize_kinds"])
        self.assertEqual(kinds, {"daily", "weekly", "monthly"})
        # ... which are exactly the inputs finalize's handler accepts.
        window = WINDOW_RS.read_text()
        enum = re.search(r'rename_all\s*=\s*"lowercase"\)\]\s*pub enum WindowKind\s*\{([^}]*)\}', window)
        self.assertIsNotNone(enum, "WindowKind (serde lowercase) not found in lib/core/src/window.rs")
        variants = {v.strip().lower() for v in enum.group(1).split(",") if v.strip()}
        self.assertEqual(kinds, variants)
        self.assertIn("kind: WindowKind", FINALIZE_MAIN.read_text())
        # The scheduler may invoke finalize and maintain and nothing else.
        scheduler = self.data["aws_iam_policy_document"]["scheduler"]
        invoke = [s for s in statements(scheduler)
                  if "lambda:InvokeFunction" in [unquote(a) for a in as_list(s["actions"])]]
        self.assertEqual(len(invoke), 1)
        self.assertEqual(as_list(invoke[0]["resources"]), ['${aws_lambda_function.function["finalize"].arn}',
                                                           '${aws_lambda_function.function["maintain"].arn}'])
        # The functions the schedules invoke are the asynchronously invoked ones (dead-letter queue).
        scheduled = {k for k, f in self.functions.items() if f["invoked_async"] is True}
        self.assertEqual(scheduled, {"finalize", "maintain"})

    def maintenance_runs(self):
        """local.maintenance_runs at the variables' defaults: {key: {"expression": ..., "json": the
        schedule's input as jsonencode renders it, "input": that JSON parsed back}}."""
        # The expressions' defaults are in the variable's type: optional(string, "...").
        defaults = dict(re.findall(r'(\w+)\s*=\s*optional\(string,\s*"([^"]+)"\)',
                                   self.tf["variable"]["maintenance_schedules"]["type"]))
        runs = {}
        for key, run in self.tf["locals"]["maintenance_runs"].items():
            if key.startswith("__"):
                continue
            self.assertEqual(expr(run["expression"]), f"var.maintenance_schedules.{key}",
                             "each run's expression is the variable's attribute of its key")
            rendered = json.dumps(resolve(run["input"], self.tf), separators=(",", ":"))
            runs[key] = {"expression": defaults[key], "json": rendered, "input": json.loads(rendered)}
        self.assertEqual(set(runs), set(defaults), "a run without a schedule expression, or the reverse")
        return runs

    def test_maintenance_schedules_invoke_maintain_with_known_inputs(self):
        schedule = self.resources["aws_scheduler_schedule"]["maintain"]
        self.assertEqual(expr(schedule["for_each"]), "local.maintenance_runs")
        (target,) = blocks(schedule, "target")
        self.assertEqual(expr(target["arn"]), 'aws_lambda_function.function["maintain"].arn')
        self.assertEqual(expr(target["role_arn"]), "aws_iam_role.scheduler.arn")
        self.assertEqual(expr(target["input"]), "jsonencode(each.value.input)")
        self.assertTrue(blocks(target, "retry_policy"), "schedules need a retry_policy")
        self.assertTrue(blocks(target, "dead_letter_config"), "schedules need a dead_letter_config")
        self.assertIn("var.maintenance_schedules_enabled", schedule["state"])

        runs = self.maintenance_runs()
        for key, run in runs.items():
            with self.subTest(run=key):
                payload = json.loads(run["json"])
                self.assertIsInstance(payload, dict)
                self.assertLessEqual(set(payload), MAINTAIN_FIELDS, "fields maintain's input does not take")
                self.assertIn(payload["table"], MAINTAIN_TABLES)
                ops = payload["operations"]
                self.assertTrue(ops, "a run with nothing to do")
                self.assertLessEqual(set(ops), set(MAINTAIN_OPERATIONS), "unknown operations")
                self.assertEqual(ops, [o for o in MAINTAIN_OPERATIONS if o in ops], "operations out of order or repeated")
                for days in ("recent_days", "grace_days"):
                    if days in payload:
                        self.assertIsInstance(payload[days], int)
                        self.assertGreaterEqual(payload[days], 1, days)
                self.assertFalse(payload.get("dry_run", False), "a scheduled run must act")
                if "recent_days" in payload:
                    self.assertIn(payload["table"], {"raw", "errors"}, "recent_days: day-partitioned tables only")
                if "orphans" in ops:
                    self.assertIn("grace_days", payload, "orphan removal with the module's grace period")

        # One daily run per table with all four operations, at five different times.
        full = {run["input"]["table"]: run["expression"] for run in runs.values()
                if run["input"]["operations"] == MAINTAIN_OPERATIONS and "recent_days" not in run["input"]}
        self.assertEqual(set(full), MAINTAIN_TABLES)
        self.assertEqual(len(set(full.values())), len(full), "the tables' runs must be staggered")
        for expression in full.values():
            self.assertRegex(expression, r"^cron\(\d+ \d+ \* \* \? \*\)$", "once a day")
        # The hourly one compacts raw's recent partitions, and nothing else.
        (recent,) = [run for run in runs.values() if "recent_days" in run["input"]]
        self.assertEqual(recent["input"], {"table": "raw", "operations": ["compact"], "recent_days": 2})
        self.assertRegex(recent["expression"], r"^(cron\(\d+ \* \* \* \? \*\)|rate\(1 hour\))$", "hourly")

        # The grace period: 3 days by default, never under 1.
        grace = self.tf["variable"]["orphan_grace_days"]
        self.assertEqual(grace["default"], 3)
        self.assertIn("var.orphan_grace_days >= 1", " ".join(v["condition"] for v in blocks(grace, "validation")))

        # Once the crate is there, its sources (or lib/pipeline's maintenance module) must name
        # every table and operation the schedules send (as text or as a snake_cased identifier).
        _, modules = maintaining_pipeline_modules()
        source = rust_sources(MAINTAIN_SRC, *[PIPELINE_SRC / f"{m}.rs" for m in modules],
                              *[PIPELINE_SRC / m for m in modules])
        if source:
            words = set(re.findall(r"[a-z_]+", source)) | {snake_case(w) for w in re.findall(r"\b[A-Z]\w*", source)}
            sent = {run["input"]["table"] for run in runs.values()}
            sent |= {op for run in runs.values() for op in run["input"]["operations"]}
            self.assertEqual(sorted(sent - words), [], "the schedules send names maintain's code never mentions")

    # --- environment ---

    def module_environment_names(self):
        """Every variable name the module can put in a function's environment."""
        locals_ = self.tf["locals"]
        names = set(locals_["default_settings"])
        # local.environment is one merge(...) expression: its keys are the NAME = ... pairs.
        names |= set(re.findall(r"\b([A-Z][A-Z0-9_]*)\s*=", locals_["environment"]))
        # The names var.settings accepts (its validation's allow-list).
        for validation in blocks(self.tf["variable"]["settings"], "validation"):
            if "startswith" in validation["condition"]:  # the reserved-names refusal, not a list
                continue
            names |= {unquote(n) for n in re.findall(r'"[A-Z][A-Z0-9_]*"', validation["condition"])}
        return names

    def test_functions_take_the_one_environment(self):
        fn = self.resources["aws_lambda_function"]["function"]
        (environment,) = blocks(fn, "environment")
        self.assertEqual(expr(environment["variables"]), "local.environment")

    def test_environment_names_are_those_lib_pipeline_reads(self):
        declared = set(rust_consts(ENV_RS).values())
        self.assertIn("ICEBERG_WAREHOUSE", declared, f"could not parse {ENV_RS}")
        names = self.module_environment_names()
        unknown = sorted(names - declared)
        self.assertEqual(unknown, [], f"environment variables not declared in {ENV_RS.relative_to(ROOT)}")
        for expected in ("ICEBERG_CATALOG_TYPE", "ICEBERG_WAREHOUSE", "HEALTHLAKE_STATE_STORE",
                         "HEALTHLAKE_DYNAMODB_TABLE", "KAFKA_TOPIC", "STATE_TTL_DAYS"):
            self.assertIn(expected, names, "the module's environment lacks it (or could not be parsed)")

    def test_aws_region_is_never_set(self):
        environment = self.tf["locals"]["environment"]
        set_names = set(re.findall(r"\b([A-Z][A-Z0-9_]*)\s*=", environment)) | set(self.tf["locals"]["default_settings"])
        self.assertFalse(set_names & LAMBDA_RESERVED, "Lambda reserves these names")
        # var.settings refuses AWS_* names, so a user cannot set it either.
        conditions = " ".join(v["condition"] for v in blocks(self.tf["variable"]["settings"], "validation"))
        self.assertIn('startswith(k, "AWS_")', conditions)

    # --- state table ---

    def test_state_table_matches_lib_state(self):
        table_rs = (STATE_DYNAMODB / "table.rs").read_text()
        mod_rs = (STATE_DYNAMODB / "mod.rs").read_text()
        index_name = re.search(r'const INDEX: &str = "([^"]+)";', mod_rs).group(1)
        types = {"S": "S", "N": "N", "B": "B"}
        rust_attrs = {name: types[t[0]] for name, t in
                      re.findall(r'attr\("([^"]+)",\s*ScalarAttributeType::(\w+)\)', table_rs)}
        table_part, index_part = table_rs.split("GlobalSecondaryIndex::builder()", 1)
        rust_table_keys = re.findall(r'key\("([^"]+)",\s*KeyType::(Hash|Range)\)', table_part)
        rust_index_keys = re.findall(r'key\("([^"]+)",\s*KeyType::(Hash|Range)\)', index_part)
        rust_projection = re.search(r"ProjectionType::(\w+)", index_part).group(1).upper()
        rust_non_key = re.findall(r'non_key_attributes\("([^"]+)"\)', index_part)
        ttl_names = set()
        for path in STATE_DYNAMODB.glob("*.rs"):
            ttl_names |= set(re.findall(r'expression_attribute_names\("#ttl",\s*"([^"]+)"\)', path.read_text()))
        self.assertTrue(rust_attrs and rust_table_keys and rust_index_keys and ttl_names,
                        "could not parse lib/state/src/dynamodb")
        self.assertIn("PayPerRequest", table_rs)

        table = self.resources["aws_dynamodb_table"]["state"]
        self.assertEqual(unquote(table["billing_mode"]), "PAY_PER_REQUEST")
        tf_attrs = {unquote(a["name"]): unquote(a["type"]) for a in blocks(table, "attribute")}
        self.assertEqual(tf_attrs, rust_attrs, "attribute definitions differ from table.rs")
        self.assertEqual([(unquote(table["hash_key"]), "Hash"), (unquote(table["range_key"]), "Range")],
                         rust_table_keys, "table keys differ from table.rs")
        (gsi,) = blocks(table, "global_secondary_index")
        self.assertEqual(unquote(gsi["name"]), index_name, "index name differs from mod.rs INDEX")
        self.assertEqual([(unquote(gsi["hash_key"]), "Hash"), (unquote(gsi["range_key"]), "Range")],
                         rust_index_keys, "index keys differ from table.rs")
        self.assertEqual(unquote(gsi["projection_type"]), rust_projection)
        self.assertEqual([unquote(a) for a in gsi["non_key_attributes"]], rust_non_key)
        (ttl,) = blocks(table, "ttl")
        self.assertEqual({unquote(ttl["attribute_name"])}, ttl_names, "TTL attribute differs from lib/state")
        self.assertIs(ttl["enabled"], True)
        (pitr,) = blocks(table, "point_in_time_recovery")
        self.assertIs(pitr["enabled"], True)
        # The IAM index resource names the same index.
        self.assertIn(f"/index/{index_name}", json.dumps(self.tf["locals"]["state_table_resources"]))

    def test_state_permissions_cover_every_call_lib_state_makes(self):
        # SDK call -> the IAM actions it is authorised by (TransactWriteItems per item).
        actions_of = {
            "get_item": {"GetItem"}, "batch_get_item": {"BatchGetItem"}, "query": {"Query"},
            "scan": {"Scan"}, "update_item": {"UpdateItem"}, "put_item": {"PutItem"},
            "delete_item": {"DeleteItem"}, "batch_write_item": {"BatchWriteItem"},
            "describe_table": {"DescribeTable"}, "transact_get_items": {"GetItem"},
        }
        needed_by_file = {}
        for path in STATE_DYNAMODB.glob("*.rs"):
            if path.name == "table.rs":  # CreateTable: emulators and tests only
                continue
            text = path.read_text()
            needed = set()
            for call in re.findall(r"\.(\w+)\(\)\s*\.", text):
                needed |= actions_of.get(call, set())
            if "transact_write_items()" in text:
                if "condition_check(" in text:
                    needed.add("ConditionCheckItem")
                if ".put(" in text:
                    needed.add("PutItem")
                if ".update(" in text:
                    needed.add("UpdateItem")
                if ".delete(" in text:
                    needed.add("DeleteItem")
            needed_by_file[path.name] = needed
        needed = set().union(*needed_by_file.values())
        self.assertTrue({"Query", "UpdateItem", "PutItem"} <= needed, "could not parse lib/state calls")
        granted = {key: {unquote(a).split(":", 1)[1] for a in f["dynamodb_actions"]}
                   for key, f in self.functions.items()}
        union = set().union(*granted.values())
        self.assertEqual(sorted(needed - union), [], "calls of lib/state no function is allowed to make")
        self.assertEqual(sorted(union - needed), [], "actions granted that lib/state never calls")
        # Ingest merges and keeps the bookkeeping items; finalize reads and marks the items.
        ingest_needs = needed_by_file["merge.rs"] | needed_by_file["bookkeeping.rs"]
        self.assertEqual(sorted(ingest_needs - granted["ingest"]), [], "ingest cannot merge")
        finalize_needs = needed_by_file["finalize.rs"] | needed_by_file["bookkeeping.rs"]
        self.assertEqual(sorted(finalize_needs - granted["finalize"]), [], "finalize cannot close windows")

    # --- IAM ---

    def test_no_wildcard_resources_but_network_interfaces(self):
        for name, policy in self.data["aws_iam_policy_document"].items():
            for statement in statements(policy):
                resources = as_list(statement.get("resources", []))
                if "*" in [unquote(r) for r in resources]:
                    self.assertEqual(unquote(statement.get("sid")), "NetworkInterfaces",
                                     f'{name}: Resource "*" outside the network-interface statement')
                    self.assertTrue(all(unquote(a).startswith("ec2:") for a in as_list(statement["actions"])),
                                    f"{name}: only ec2 network-interface actions may use Resource *")
                if unquote(statement.get("effect", '"Allow"')) != "Deny":
                    for action in as_list(statement.get("actions", [])):
                        self.assertFalse(unquote(action) == "*" or unquote(action).endswith(":*"),
                                         f"{name}: wildcard action {action}")

    def test_lake_permissions_cover_what_lib_lake_does(self):
        policy_body = self.data["aws_iam_policy_document"]["function"]
        policy = json.dumps(policy_body)
        for action in ("glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetDatabase",
                       "s3:GetObject", "s3:PutObject"):
            self.assertIn(action, policy)
        # Every function reads and commits; only those with creates_tables may create.
        (catalog,) = [s for s in statements(policy_body) if unquote(s.get("sid")) == "IcebergCatalog"]
        self.assertEqual(sorted(unquote(a) for a in catalog["actions"]),
                         ["glue:GetDatabase", "glue:GetTable", "glue:UpdateTable"])
        creating = [(for_each, c) for for_each, c in dynamic_statements(policy_body)
                    if any(unquote(a).startswith("glue:Create") for a in as_list(c["actions"]))]
        self.assertEqual(len(creating), 1)
        self.assertIn("each.value.creates_tables", creating[0][0])
        self.assertIs(self.functions["maintain"]["creates_tables"], False, "maintain loads existing tables only")

    def test_object_deletes_granted_exactly_to_the_functions_that_maintain(self):
        # Deletes: lib/lake deletes files only in maintenance (LAKE_DELETING_FILES).
        deletes = deleting_lake_files()
        self.assertLessEqual({"expire.rs", "orphans.rs"}, set(deletes), "could not find lib/lake's deletes")
        self.assertLessEqual(set(deletes), LAKE_DELETING_FILES, "a new deleting code path: look at the grants")
        # The rule: a deployed function maintains (and so gets s3:DeleteObject) when its own
        # sources call lib/lake's deleting entry points (compact, expire_snapshots,
        # delete_old_metadata, remove_orphan_files), or call into a lib/pipeline module that does
        # (the use case healthlake_pipeline::maintain): `healthlake_pipeline::<module>`, in a path
        # or in a `use` group, or `app.<module>` (a handler App holds, as app.finalize).
        # functions/healthlake is the CLI, run with an operator's credentials: never deployed.
        lake_calls, modules = maintaining_pipeline_modules()
        maintaining = set()
        for key in self.functions:
            source = rust_sources(ROOT / "functions" / key / "src")
            via_pipeline = any(
                re.search(rf"healthlake_pipeline::(?:\{{[^;]*?\b)?{m}\b|\bapp\s*\.\s*{m}\b", source)
                for m in modules
            )
            if via_pipeline or calls_any(source, lake_calls):
                maintaining.add(key)
        flagged = {key for key, f in self.functions.items() if f["deletes_objects"] is True}
        self.assertEqual(flagged, maintaining,
                         f"deletes_objects must be set exactly for the functions that maintain "
                         f"(lib/lake entry points that delete: {sorted(lake_calls)}; lib/pipeline "
                         f"modules calling them: {sorted(modules)})")
        # ... and s3:DeleteObject exists only in the statement that flag switches on, on the
        # warehouse prefix; no other policy document allows it.
        grants = [(for_each, c) for for_each, c in dynamic_statements(self.data["aws_iam_policy_document"]["function"])
                  if "s3:DeleteObject" in [unquote(a) for a in as_list(c["actions"])]]
        self.assertEqual(len(grants), 1, "one statement grants s3:DeleteObject")
        (for_each, content), = grants
        self.assertEqual(for_each, "each.value.deletes_objects ? [1] : []")
        self.assertEqual([unquote(r) for r in as_list(content["resources"])],
                         ["${local.bucket_arn}/${var.warehouse_prefix}/*"])
        for name, policy in self.data["aws_iam_policy_document"].items():
            for statement in statements(policy):
                actions = [unquote(a) for a in as_list(statement.get("actions", []))]
                if "s3:DeleteObject" in actions and unquote(statement.get("effect", '"Allow"')) != "Deny":
                    self.assertEqual((name, unquote(statement.get("sid"))), ("function", "WarehouseDeletes"))

    # --- documentation ---

    def test_module_readme_lists_every_input_and_output(self):
        readme = (MODULE / "README.md").read_text()
        missing = [f"variable {n}" for n in self.tf["variable"] if f"| `{n}` |" not in readme]
        missing += [f"output {n}" for n in self.tf["output"] if f"| `{n}` |" not in readme]
        kafka_type = self.tf["variable"]["kafka"]["type"]
        kafka_attributes = re.findall(r"\b([a-z_]+)\s*=\s*(?:optional|string|number|bool|list|object)", kafka_type)
        self.assertIn("provisioned_pollers", kafka_attributes, "could not parse the kafka variable's type")
        top_level = [a for a in kafka_attributes if a not in ("subnet_ids", "security_group_ids", "minimum", "maximum")]
        missing += [f"kafka.{n}" for n in top_level if f"| `{n}` |" not in readme]
        missing += [f"setting {n}" for n in self.tf["locals"]["default_settings"] if f"`{n}`" not in readme]
        self.assertEqual(missing, [], "not documented in infra/modules/healthlake/README.md")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
