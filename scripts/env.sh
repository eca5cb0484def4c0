# Shared by the scripts: one build cache outside the clone, tools installed there.
export HEALTHLAKE_CACHE="${HEALTHLAKE_CACHE:-$HOME/.cache/healthlake}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HEALTHLAKE_CACHE/target}"
export PATH="$HEALTHLAKE_CACHE/tools/bin:$HOME/.cargo/bin:$PATH"
export HEALTHLAKE_PYTHON="$HEALTHLAKE_CACHE/venv/bin/python"
