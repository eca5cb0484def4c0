#!/usr/bin/env bash
# Builds the Lambda functions' bootstrap zips with cargo-lambda, for x86_64 and arm64
# (provided.al2023): $HEALTHLAKE_CACHE/lambda/<arch>/<function>/bootstrap.zip,
# ready for infra/ (Terraform) or `aws lambda update-function-code`.
#
#   scripts/package-lambdas.sh [x86_64|arm64 ...]     default: both
#
# Installs what it needs when missing: cargo-lambda (~24 min cold on 2 cores, once, into the
# cache) and the zig linker it cross-compiles with (PyPI `ziglang`, into the cache's virtualenv).
# Not part of CI (see README): CI builds the same binaries with plain cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

FUNCTIONS=(healthlake-ingest healthlake-finalize healthlake-backfill)
arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(x86_64 arm64)

if ! cargo lambda --version >/dev/null 2>&1; then
  echo "installing cargo-lambda into $HEALTHLAKE_CACHE/tools (once; ~24 min on 2 cores)" >&2
  cargo install cargo-lambda --locked --root "$HEALTHLAKE_CACHE/tools"
fi
scripts/install-python-deps.sh
if ! "$HEALTHLAKE_PYTHON" -c 'import ziglang' 2>/dev/null; then
  "$HEALTHLAKE_CACHE/venv/bin/pip" install --quiet ziglang
fi
# cargo-zigbuild finds zig as `python3 -m ziglang`: the virtualenv's python first.
export PATH="$HEALTHLAKE_CACHE/venv/bin:$PATH"

out="$(dirname "$CARGO_TARGET_DIR")/lambda"
for arch in "${arches[@]}"; do
  case "$arch" in
    x86_64) arch_flag=(--x86-64) ;;
    arm64) arch_flag=(--arm64) ;;
    *) echo "unknown architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
  esac
  for function in "${FUNCTIONS[@]}"; do
    cargo lambda build --release --locked "${arch_flag[@]}" --bin "$function" \
      --output-format zip --lambda-dir "$out/$arch"
    echo "$out/$arch/$function/bootstrap.zip ($(du -h "$out/$arch/$function/bootstrap.zip" | cut -f1))"
  done
done
