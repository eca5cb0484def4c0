#!/usr/bin/env bash
# The independent Iceberg reader of the tests: pyiceberg from PyPI, in a cached virtualenv,
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# and the AWS API emulator (moto server: S3, DynamoDB, Glue) for the AWS adapters' tests.
if ! "$HEALTHLAKE_PYTHON" -c 'import pyiceberg, pyarrow, sqlalchemy, boto3, moto.server, flask' >/dev/null 2>&1; then
  python3 -m venv "$HEALTHLAKE_CACHE/venv"
  "$HEALTHLAKE_CACHE/venv/bin/pip" install --quiet --disable-pip-version-check \
    'pyiceberg[sql-sqlite,pyarrow,glue]==0.12.0' 'moto[server]==5.2.5'
fi
"$HEALTHLAKE_PYTHON" -c 'import pyiceberg; print("pyiceberg", pyiceberg.__version__)'
