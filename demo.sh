#!/usr/bin/env bash
# The main job end to end: build ocisdk, start a local CNCF distribution registry, publish
# sample SDKs, then list, resolve, install and verify them — and prove interop with skopeo.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

say "building ocisdk (release)"
cargo build --release --locked -q -p ocisdk-cli
# Where cargo put it: CARGO_TARGET_DIR (relative to this folder) when set, else ./target.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir="$PWD/$target_dir"
ocisdk() { "$target_dir/release/ocisdk" "$@"; }

work=$(mktemp -d)
registry_pid=""
cleanup() {
  status=$?
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# A free loopback port: one nothing answers on.
port=$((20000 + RANDOM % 20000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
cat >"$work/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $work/storage }
  delete: { enabled: true }
  redirect: { disable: true }
http: { addr: 127.0.0.1:$port }
YAML
say "starting a CNCF distribution registry on 127.0.0.1:$port"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log"; exit 1; }
  sleep 0.1
done
host="127.0.0.1:$port"
export OCISDK_REGISTRY="http://$host" DYNAMIC_INSTALL_ROOT_DIR="$work/platforms" OCISDK_CACHE_DIR="$work/cache"

say "making sample SDK tarballs"
for v in 3.10.14 3.11.9 3.11.10 3.12.4 3.13.0rc1; do
  src="$work/src/python-$v"
  mkdir -p "$src/bin"
  printf '#!/bin/sh\necho "Python %s (demo build)"\n' "$v" >"$src/bin/python3"
  chmod 755 "$src/bin/python3"
  ln -s python3 "$src/bin/python"
  tar -czf "$work/python-bookworm-$v.tar.gz" -C "$src" .
done
ls -l "$work"/*.tar.gz

say "publishing them (3.12.4 is the default)"
for v in 3.10.14 3.11.9 3.11.10 3.13.0rc1; do
  run ocisdk sdk publish python "$v" "$work/python-bookworm-$v.tar.gz"
done
run ocisdk sdk publish python 3.12.4 "$work/python-bookworm-3.12.4.tar.gz" --default

say "discovering"
run ocisdk tags "$host/oryx/python-sdk"
run ocisdk sdk versions python
run ocisdk sdk default python
run ocisdk sdk resolve python 3.11
run ocisdk sdk resolve python '>=3.10,<3.12'
run ocisdk sdk resolve python latest
printf '$ ocisdk sdk resolve python 3.13   # only a pre-release matches: exit 3\n'
set +e; ocisdk sdk resolve python 3.13; code=$?; set -e
echo "exit code $code"; [ "$code" -eq 3 ]
run ocisdk sdk resolve python 3.13 --pre
printf '$ ocisdk sdk resolve python 3.14   # no such version: exit 3\n'
set +e; ocisdk sdk resolve python 3.14; code=$?; set -e
echo "exit code $code"; [ "$code" -eq 3 ]

say "installing and verifying"
run ocisdk sdk install python 3.11 default
run ocisdk sdk install python default --json   # already there: nothing downloaded
run ocisdk sdk list-installed
out=$("$work/platforms/python/3.11.10/bin/python" --version)
echo "installed interpreter says: $out"
[ "$out" = "Python 3.11.10 (demo build)" ]
run ocisdk sdk pull python 3.11 -o "$work/pulled"
cmp "$work/pulled/python-bookworm-3.11.10.tar.gz" "$work/python-bookworm-3.11.10.tar.gz"
echo "pulled tarball is byte-identical to the published one"
run ocisdk sdk pull python 3.11 -o "$work/pulled" --json   # cached: nothing downloaded
run ocisdk sdk uninstall python 3.11.10
run ocisdk sdk list-installed
[ ! -e "$work/platforms/python/3.11.10" ] && [ -x "$work/platforms/python/3.12.4/bin/python" ]
echo "3.11.10 is gone, 3.12.4 is still installed"

say "the core commands"
ref="$host/oryx/python-sdk:bookworm-3.12.4"
run ocisdk digest "$ref"
printf '$ ocisdk manifest %s | sha256sum\n' "$ref"
ocisdk manifest "$ref" | sha256sum
run ocisdk config "$ref"
run ocisdk pull "$ref" -o "$work/layer.tar.gz"
cmp "$work/layer.tar.gz" "$work/python-bookworm-3.12.4.tar.gz" && echo "layer is byte-identical"

say "interop with skopeo"
policy="$work/policy.json"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
printf '$ skopeo inspect docker://%s   (labels and digest)\n' "$ref"
skopeo inspect --tls-verify=false "docker://$ref" | grep -E '"org.oryx|"Digest"' 
run skopeo copy -q --policy "$policy" --src-tls-verify=false --dest-tls-verify=false --format v2s2 \
  "docker://$ref" "docker://$host/mirror/python:v2s2"
run ocisdk manifest "$host/mirror/python:v2s2" --json | head -c 300; echo
run ocisdk pull "$host/mirror/python:v2s2" -o "$work/from-v2s2.tar.gz"
cmp "$work/from-v2s2.tar.gz" "$work/python-bookworm-3.12.4.tar.gz" && echo "Docker schema 2 copy made by skopeo pulls the same bytes"

say "done: every step above was verified"
