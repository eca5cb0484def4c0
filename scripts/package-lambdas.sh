#!/usr/bin/env bash
# Builds the Lambda functions' bootstrap zips with cargo-lambda, for arm64 and x86_64
# (provided.al2023): $HEALTHLAKE_CACHE/lambda/<arch>/<function>/bootstrap.zip, the layout
# infra/modules/healthlake reads (its `lambda_artifacts_dir` variable), or for
# `aws lambda update-function-code --zip-file fileb://...`.
#
#   scripts/package-lambdas.sh [arm64|x86_64 ...]     default: both
#
# Installs what it needs when missing, into the cache: cargo-lambda and the zig toolchain it
# cross-links with, both from PyPI (seconds, where `cargo install cargo-lambda` takes ~24 min on
# 2 cores), and the Rust standard library of each target (rustup). Builds in a target directory
# of its own (the `lambda` profile: release without symbols), so packaging never holds the lock
# of the development build. Not part of CI (see README): CI runs the same binaries, built with
# plain cargo for the host, under a local Lambda Runtime API (tests/e2e_lambda_runtime.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

FUNCTIONS=(healthlake-ingest healthlake-finalize healthlake-backfill healthlake-maintain)
arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(arm64 x86_64)

venv="$HEALTHLAKE_CACHE/venv-lambda"
if ! "$venv/bin/cargo-lambda" lambda --version >/dev/null 2>&1; then
  echo "installing cargo-lambda and ziglang from PyPI into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.17.0
fi
# cargo-lambda finds zig as `python3 -m ziglang`: the virtualenv's python first.
export PATH="$venv/bin:$PATH"
export CARGO_TARGET_DIR="$HEALTHLAKE_CACHE/lambda-target"

out="$HEALTHLAKE_CACHE/lambda"
for arch in "${arches[@]}"; do
  case "$arch" in
    x86_64) arch_flag=--x86-64 triple=x86_64-unknown-linux-gnu ;;
    arm64) arch_flag=--arm64 triple=aarch64-unknown-linux-gnu ;;
    *) echo "unknown architecture $arch (arm64 or x86_64)" >&2; exit 2 ;;
  esac
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  bins=()
  for function in "${FUNCTIONS[@]}"; do bins+=(--bin "$function"); done
  cargo lambda build --profile lambda --locked "$arch_flag" "${bins[@]}" \
    --output-format zip --lambda-dir "$out/$arch"
  for function in "${FUNCTIONS[@]}"; do
    zip="$out/$arch/$function/bootstrap.zip"
    echo "$zip $(stat -c %s "$zip") bytes"
  done
done
