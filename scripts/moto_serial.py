"""Starts the moto AWS API emulator on HOST PORT, handling one request at a time.

moto's own `moto_server` answers on several threads without locking its backends, so two
conditional writes racing on one DynamoDB item can both succeed there; real DynamoDB evaluates
conditions atomically. Handling one request at a time (connections still on threads, see
`OneRequestAtATime`) restores that guarantee for our tests (clients still race: their
read-modify-write cycles interleave).

moto's TransactWriteItems deep-copies every table it touches before applying, to roll back on a
failed condition: each transaction costs time and memory in proportion to the table (a 10,000-
record batch's 17,000 items took minutes per few hundred transactions and 10 GB). Served one
request at a time, checking every condition first and writing only when all hold is atomic
without the copy; transactions with Update or Delete items keep moto's own path.

moto's Query walks every item of the table, sorted, for each call, whatever its key: a query
for one partition key or one GSI key cost ~1 s on a table of 30,000 accumulator items, and the
finalizer queries every shard of the window index each round. Here a query first narrows the
items to those whose (table or index) hash attribute equals the key, by plain value comparison,
and moto's own filtering and sorting run on those.

moto's Glue also ignores the `VersionId` of UpdateTable, which real Glue uses for optimistic
locking (a stale one fails with ConcurrentModificationException). Iceberg commits through Glue
rely on it, so it is enforced here; with requests served one at a time the check and the update
are atomic, as in Glue.
"""

import inspect
import os
import sys
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.glue import responses as glue_responses
from moto.glue.exceptions import GlueClientError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class ConcurrentModificationException(GlueClientError):
    def __init__(self, message: str) -> None:
        super().__init__("ConcurrentModificationException", message)


_update_table = glue_responses.GlueResponse.update_table


def _update_table_with_version_check(self):  # type: ignore[no-untyped-def]
    expected = self.parameters.get("VersionId")
    if expected is not None:
        database = self.parameters.get("DatabaseName")
        name = (self.parameters.get("TableInput") or {}).get("Name")
        current = str(self.glue_backend.get_table(database, name)._current_version)
        if current != str(expected):
            raise ConcurrentModificationException(
                f"Table {database}.{name} is at version {current}, the update expected {expected}"
            )
    return _update_table(self)


glue_responses.GlueResponse.update_table = _update_table_with_version_check

_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_check_then_write(self, transact_items):  # type: ignore[no-untyped-def]
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    if any(len(item) != 1 for item in transact_items):
        raise TransactWriteSingleOpException
    if any(next(iter(item)) not in ("ConditionCheck", "Put") for item in transact_items):
        return _transact_write_items(self, transact_items)
    targets = set()
    reasons = []
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        target = (op["TableName"], str(sorted(key.items())))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        else:
            reasons.append((None, None, None))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        if op_type == "Put":
            self.put_item(op["TableName"], op["Item"])


DynamoDBBackend.transact_write_items = _transact_write_items_check_then_write


_moto_query = Table.query
_moto_all_items = Table.all_items


_QUERY_PARAMETERS = inspect.signature(_moto_query)


def _query_on_matching_items(self, hash_key, *args, **kwargs):
    # moto's backend passes index_name and the rest by position.
    bound = _QUERY_PARAMETERS.bind(self, hash_key, *args, **kwargs).arguments
    index_name = bound.get("index_name")
    conditions = bound.get("hash_key_conditions")
    narrowed = None
    if hash_key is not None and not (conditions and len(conditions) > 1):
        if index_name:
            schema = self.get_index(index_name).schema
            attr = next((k["AttributeName"] for k in schema if k["KeyType"] == "HASH"), None)
        else:
            attr = self.hash_key_attr
        if attr is not None:
            narrowed = (attr, hash_key.type, hash_key.value)
    self._healthlake_narrowed = narrowed
    try:
        return _moto_query(self, hash_key, *args, **kwargs)
    finally:
        self._healthlake_narrowed = None


def _all_items_narrowed(self):
    narrowed = getattr(self, "_healthlake_narrowed", None)
    if narrowed is None:
        return _moto_all_items(self)
    attr, kind, value = narrowed
    items = []
    for hash_set in self.items.values():
        for item in hash_set.values() if self.range_key_attr else [hash_set]:
            found = item.attrs.get(attr)
            if found is not None and found.type == kind and found.value == value:
                items.append(item)
    return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)


Table.query = _query_on_matching_items
Table.all_items = _all_items_narrowed


class OneRequestAtATime:
    """Runs the wrapped WSGI app for one request at a time, with the whole response body built
    under the lock. Connections are served on threads, so a client that is slow to read its
    answer (or holds a connection open) cannot stall the others; a single-threaded server could,
    and parallel S3 reads then hit their clients' I/O timeouts."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            started = []
            body = []

            def capture(status, headers, exc_info=None):
                started.append((status, headers, exc_info))
                return body.append

            result = self.app(environ, capture)
            try:
                body.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        status, headers, exc_info = started[-1]
        start_response(status, headers, exc_info)
        return body


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=True, use_reloader=False)
