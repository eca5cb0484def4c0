#!/bin/bash
# Runs inside LocalStack once it is ready: the same resources scripts/aws-emulator.sh creates on moto.
set -euo pipefail
python=/opt/code/localstack/.venv/bin/python
[[ -x "$python" ]] || python=python3
"$python" /opt/healthlake/aws_resources.py http://localhost:4566
