"""Another engine's commit on a healthlake table: a GDPR-style delete with pyiceberg, whose
snapshot summary carries none of healthlake's keys.

usage: foreign_delete.py CATALOG_NAME CATALOG_DB WAREHOUSE TABLE COLUMN VALUE
Prints the new snapshot's operation and the rows left, as `operation rows`.
"""

import sys

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo

name, db, warehouse, table_name, column, value = sys.argv[1:]
catalog = SqlCatalog(name, uri="sqlite:///" + db, warehouse=warehouse)
table = catalog.load_table(table_name)
before = table.current_snapshot().snapshot_id
table.delete(EqualTo(column, value))
table = catalog.load_table(table_name)
snapshot = table.current_snapshot()
if snapshot.snapshot_id == before:
    sys.exit("the delete committed no snapshot")
print(snapshot.summary.operation.value, table.scan().to_arrow().num_rows)
