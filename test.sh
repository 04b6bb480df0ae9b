#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests against a real
# CNCF distribution registry (Debian's docker-registry) and skopeo.
set -euo pipefail
cd "$(dirname "$0")"

# The integration tests start docker-registry and run skopeo: install them when missing.
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (the library and test kit; the CLI's doc comments are its --help text)"
RUSTDOCFLAGS="-D warnings" cargo doc -p ocisdk -p ocisdk-testkit --no-deps --locked --quiet
echo "== cargo test"
cargo test --workspace --locked
