#!/usr/bin/env bash
# ocisdk's benchmark against its peers (issue #6), one command on a fresh Debian machine
# with Rust:
#
#   bench/run.sh                 # full run: ~9 minutes on 2 cores once built
#   BENCH_QUICK=1 bench/run.sh   # fewer runs per case, for trying the harness out
#
# It installs what it needs from Debian (hyperfine, skopeo, docker-registry, iproute2,
# curl, time, python3-matplotlib), builds ocisdk and the oci-client comparison
# (bench/oci-client-pull, a standalone Cargo project) in release, starts a CNCF
# distribution registry on a free loopback port with temporary storage, creates the
# fixtures, runs every comparison and prints the table (also written to
# bench/results/table.md; the chart goes to docs/performance.png).
#
# Settings (environment):
#   BENCH_QUICK=1          2 runs per big case instead of 5 (and fewer elsewhere)
#   BENCH_WAIT_QUIET=1     before measuring, wait (up to 15 min) for load average < 0.5
#   BENCH_RESULTS=DIR      where the JSON results go (default bench/results)
#   BENCH_TMPDIR=DIR       where the registry storage and downloads go (default /tmp)
#   BENCH_JOBS=N           --jobs for the multi-install case (default 8)
#   BENCH_LINK=auto|kernel|userspace|off   how to emulate the slow link (default auto)
#   BENCH_LINK_DELAY_MS=20 BENCH_LINK_RATE_MBIT=100   one-way delay, per-connection cap
#   BENCH_OCISDK=PATH      measure this ocisdk binary instead of building target/release/ocisdk
#   BENCH_NO_PLOT=1        skip docs/performance.png
#   BENCH_KEEP=1           keep the temporary folder (registry storage, fixtures)
#   BENCH_ONLY=GROUP,...   run only these groups: blob1g blob100m tags startup sdk sdkzst sdkfs multi link
#
# Never run by ./test.sh or CI: it takes minutes and needs a quiet machine.
set -euo pipefail

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
results=${BENCH_RESULTS:-$bench_dir/results}
quick=${BENCH_QUICK:-0}
jobs=${BENCH_JOBS:-8}
link_mode=${BENCH_LINK:-auto}
link_delay_ms=${BENCH_LINK_DELAY_MS:-20}
link_rate_mbit=${BENCH_LINK_RATE_MBIT:-100}

# Runs per case. Big blobs take seconds per run, so fewer of them; the sub-10 ms cases
# need many runs to get a stable median.
# runs_multi: 100 installs take seconds per run; runs_link: one stream over the slow link
# takes ~9 s per run.
if [ "$quick" = 1 ]; then
  runs_big=2 runs_mid=3 runs_fast=10 runs_tiny=20 runs_multi=1 runs_link=1 warmup=1 rss_runs=1
else
  runs_big=5 runs_mid=10 runs_fast=30 runs_tiny=100 runs_multi=3 runs_link=3 warmup=1 rss_runs=3
fi

# wanted GROUP: whether BENCH_ONLY (comma or space separated) selects GROUP; all when unset.
wanted() { [ -z "${BENCH_ONLY:-}" ] || [[ " ${BENCH_ONLY//,/ } " == *" $1 "* ]]; }
say() { printf '\n\033[1m== %s\033[0m  [%dm%02ds, load %s]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)) "$(cut -d' ' -f1 /proc/loadavg)"; }
note() { printf '   %s\n' "$*"; }

# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------
say "checking tools"
need=()
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
# Debian's own python3 (not a pyenv or venv one) is the one python3-matplotlib serves.
/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1 || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
  note "installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
PY=/usr/bin/python3

# ---------------------------------------------------------------------------------------
# Builds (each project its own target folder, so they never wait on each other's lock)
# ---------------------------------------------------------------------------------------
if [ -n "${BENCH_OCISDK:-}" ]; then
  OCISDK=$(realpath "$BENCH_OCISDK")
  say "using the prebuilt $OCISDK (BENCH_OCISDK)"
else
  say "building ocisdk (release)"
  (cd "$repo" && CARGO_TARGET_DIR="$repo/target" cargo build --release --locked -q -p ocisdk-cli)
  OCISDK="$repo/target/release/ocisdk"
fi
say "building the oci-client comparison (bench/oci-client-pull, release)"
CARGO_TARGET_DIR="$bench_dir/oci-client-pull/target" \
  cargo build --release --locked -q --manifest-path "$bench_dir/oci-client-pull/Cargo.toml"
OCI_CLIENT_PULL="$bench_dir/oci-client-pull/target/release/oci-client-pull"

# ---------------------------------------------------------------------------------------
# Work folder, registry, cleanup
# ---------------------------------------------------------------------------------------
work=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/ocisdk-bench.XXXXXX")
rm -rf "$results"
mkdir -p "$results"
log="$results/hyperfine.log"
: >"$log"
pids=()          # processes this script started (registries, link emulator)
netns=""         # the network namespace, once created
veth_root=""     # the root-namespace end of the veth pair, once created

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # Deleting one end of a veth pair deletes both; deleting the namespace removes its end.
  [ -n "$veth_root" ] && ip link del "$veth_root" 2>/dev/null || true
  [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local port=$((20000 + RANDOM % 20000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# start_registry ADDR:PORT NAME: a distribution registry serving the shared storage.
start_registry() {
  local addr=$1 name=$2
  cat >"$work/$name.yml" <<YAML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $work/storage }
  delete: { enabled: true }
  redirect: { disable: true }
http: { addr: $addr }
YAML
  docker-registry serve "$work/$name.yml" >"$work/$name.log" 2>&1 &
  pids+=($!)
  local pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log"; return 1; }
    sleep 0.1
  done
  echo "registry on $addr did not start" >&2
  return 1
}

port=$(free_port)
host="127.0.0.1:$port"
say "starting a CNCF distribution registry on $host"
start_registry "$host" registry

export OCISDK_REGISTRY="http://$host"
export OCISDK_CACHE_DIR="$work/cache"
export DYNAMIC_INSTALL_ROOT_DIR="$work/root"
export DEBIAN_FLAVOR=bookworm
# A user's ~/.config/ocisdk/config.toml must not change what is measured: an empty one.
: >"$work/ocisdk-config.toml"
export OCISDK_CONFIG="$work/ocisdk-config.toml"
ocisdk() { "$OCISDK" "$@"; }

# Installs create hundreds of files per run; deleting them between runs would make the next
# runs slower than a fresh machine: ext4 without a journal (as here) skips inodes freed in
# the last 60-360 s when it allocates new ones (ialloc.c, recently_deleted()), and perf
# showed inode allocation at about half of an install's CPU after a few rm -rf. So the
# install cases move the previous run's output aside (a rename) and everything is deleted
# once, when the benchmark exits. `aside PATH...` is that move, as a script for --prepare.
mkdir -p "$work/trash"
cat >"$work/aside" <<ASIDE
#!/bin/sh
t=\$(mktemp -d "$work/trash/XXXXXX")
for p in "\$@"; do if [ -e "\$p" ]; then mv "\$p" "\$t/"; fi; done
ASIDE
chmod +x "$work/aside"
aside="$work/aside"

# layer_digest REF: the first layer's digest from the manifest as served.
layer_digest() {
  ocisdk manifest "$1" | $PY -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])'
}

# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------
say "creating fixtures"
mkdir -p "$work/fixtures" "$work/out"
fx="$work/fixtures"

size_100m=$((100 * 1024 * 1024))
size_1g=$((1024 * 1024 * 1024))
head -c "$size_100m" /dev/urandom >"$fx/blob100m"
head -c "$size_1g" /dev/urandom >"$fx/blob1g"
ocisdk -q push "$fx/blob100m" "$host/bench/blob100m:latest" >/dev/null
ocisdk -q push "$fx/blob1g" "$host/bench/blob1g:latest" >/dev/null
digest_100m=$(layer_digest "$host/bench/blob100m:latest")
digest_1g=$(layer_digest "$host/bench/blob1g:latest")
note "random blobs: 100 MiB $digest_100m, 1 GiB $digest_1g"

# 300 tags on one small manifest: push once, then PUT the same manifest bytes under 299
# more tags (the registry stores one manifest and 300 tag links).
printf 'tagged\n' >"$fx/small.txt"
ocisdk -q push "$fx/small.txt" "$host/bench/tags:t000" >/dev/null
ocisdk manifest "$host/bench/tags:t000" >"$fx/tags-manifest.json"
manifest_type=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["mediaType"])' "$fx/tags-manifest.json")
for i in $(seq 1 299); do
  curl -sf -o /dev/null -X PUT -H "Content-Type: $manifest_type" \
    --data-binary "@$fx/tags-manifest.json" "http://$host/v2/bench/tags/manifests/t$(printf %03d "$i")"
done
tag_count=$(curl -sf "http://$host/v2/bench/tags/tags/list" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["tags"]))')
note "tag repository: $tag_count tags"
[ "$tag_count" -eq 300 ]

# A ~100 MiB SDK tarball that makes unpacking work: base64 text of random bytes
# compresses to ~78 %, so gzip has real inflating to do, spread over 127 files.
mkdir -p "$fx/big-src"
for i in $(seq 0 126); do
  d="$fx/big-src/lib/pkg$((i / 16))"
  mkdir -p "$d"
  head -c 786432 /dev/urandom | base64 -w 76 >"$d/module$i.txt"
done
tar -C "$fx/big-src" -cf - . | gzip -1 >"$fx/big.tar.gz"
size_big=$(stat -c %s "$fx/big.tar.gz")
ocisdk -q sdk publish big 1.0.0 "$fx/big.tar.gz" >/dev/null
note "SDK big 1.0.0: $((size_big / 1024 / 1024)) MiB tarball"
# The same tar compressed with zstd (informational): what an install costs when
# decompressing is cheap, which separates the inflating from the rest of the pipeline.
gzip -dc "$fx/big.tar.gz" | zstd -q -3 -o "$fx/big.tar.zst"
size_bigzst=$(stat -c %s "$fx/big.tar.zst")
ocisdk -q sdk publish bigzst 1.0.0 "$fx/big.tar.zst" >/dev/null
note "SDK bigzst 1.0.0: the same tar, $((size_bigzst / 1024 / 1024)) MiB with zstd"

# The same tarball in the shape MCR publishes (`FROM scratch` + `COPY`): an image whose
# one layer is a filesystem tar holding the tarball, pushed with skopeo (`sdk publish`
# makes the other shape, where the layer is the tarball).
policy="$work/policy.json"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
size_bigfs=$($PY "$repo/bench/fs_layer_image.py" "$fx/bigfs-layout" "$fx/big.tar.gz" \
  bigfs-bookworm-1.0.0.tar.gz 1.0.0)
skopeo copy -q --policy "$policy" --dest-tls-verify=false "oci:$fx/bigfs-layout:latest" \
  "docker://$host/oryx/bigfs-sdk:bookworm-1.0.0"
rm -rf "$fx/bigfs-layout"
note "SDK bigfs 1.0.0 (MCR layout): the same tarball in a $((size_bigfs / 1024 / 1024)) MiB filesystem layer"

# 100 distinct 1 MiB SDKs (random bytes: distinct blobs, so no download is skipped).
size_tiny_total=0
for i in $(seq 0 99); do
  src="$fx/tiny-src/$i"
  mkdir -p "$src/bin" "$src/lib"
  printf '1.0.%s\n' "$i" >"$src/VERSION"
  for j in 0 1 2 3; do head -c 262144 /dev/urandom >"$src/lib/part$j.bin"; done
  tar -C "$src" -cf - . | gzip -1 >"$fx/tiny-1.0.$i.tar.gz"
  size_tiny_total=$((size_tiny_total + $(stat -c %s "$fx/tiny-1.0.$i.tar.gz")))
  ocisdk -q sdk publish tiny "1.0.$i" "$fx/tiny-1.0.$i.tar.gz" >/dev/null
done
note "100 SDKs tiny 1.0.0 … 1.0.99: $((size_tiny_total / 1024)) KiB in all"

# ---------------------------------------------------------------------------------------
# What this build of ocisdk supports
# ---------------------------------------------------------------------------------------
say "probing this ocisdk build"
ocisdk_version=$(ocisdk --version)
git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$repo" diff --quiet HEAD -- crates 2>/dev/null || git_rev="$git_rev+uncommitted"
has_chunks=0
ocisdk blob --help 2>/dev/null | grep -q -- '--chunks' && has_chunks=1
has_pull_chunks=0
ocisdk pull --help 2>/dev/null | grep -q -- '--chunks' && has_pull_chunks=1
has_jobs=0
ocisdk sdk install --help 2>/dev/null | grep -q -- '--jobs' && has_jobs=1
has_sync=0
ocisdk sdk sync --help >/dev/null 2>&1 && has_sync=1
note "$ocisdk_version ($git_rev): --chunks $([ $has_chunks = 1 ] && echo yes || echo no)," \
  "install --jobs $([ $has_jobs = 1 ] && echo yes || echo no), sdk sync $([ $has_sync = 1 ] && echo yes || echo no)"

# How to install many SDKs in one command: the syntax is the lead's choice, so try the
# plausible shapes on two SDKs and keep the first that installs both. multi_cmd VERSION…
# is then a function that prints the command line for those versions.
multi_shape=""
jobs_flag() { [ "$has_jobs" = 1 ] && printf -- ' --jobs %s' "$1"; true; }
multi_cmd() {
  local n=$1; shift
  case "$multi_shape" in
    install-args) printf '%s -q sdk install tiny %s%s' "$OCISDK" "$*" "$(jobs_flag "$n")" ;;
    install-at) printf '%s -q sdk install' "$OCISDK"; printf ' tiny@%s' "$@"; jobs_flag "$n" ;;
    install-eq) printf '%s -q sdk install' "$OCISDK"; printf ' tiny=%s' "$@"; jobs_flag "$n" ;;
    sync-space | sync-at | sync-eq)
      local file="$work/sync-$multi_shape-$#.txt" sep=" "
      [ "$multi_shape" = sync-at ] && sep="@"
      [ "$multi_shape" = sync-eq ] && sep="="
      printf "tiny$sep%s\n" "$@" >"$file"
      printf '%s -q sdk sync %s%s' "$OCISDK" "$file" "$(jobs_flag "$n")" ;;
  esac
}
shapes=()
if [ "$has_jobs" = 1 ] || ocisdk sdk install --help 2>/dev/null | grep -Eq '<SPEC[S]?>\.\.\.|\[SPEC'; then
  shapes+=(install-args install-at install-eq)
fi
[ "$has_sync" = 1 ] && shapes+=(sync-space sync-at sync-eq)
for shape in "${shapes[@]}"; do
  multi_shape=$shape
  probe_root="$work/probe-root"
  "$aside" "$probe_root" "$OCISDK_CACHE_DIR"
  if DYNAMIC_INSTALL_ROOT_DIR="$probe_root" bash -c "$(multi_cmd 2 1.0.0 1.0.1)" >/dev/null 2>&1 &&
    [ -d "$probe_root/tiny/1.0.0" ] && [ -d "$probe_root/tiny/1.0.1" ]; then
    break
  fi
  multi_shape=""
done
"$aside" "$work/probe-root" "$OCISDK_CACHE_DIR"
note "multi-install: ${multi_shape:-not supported by this build}"

# ---------------------------------------------------------------------------------------
# The case runner
# ---------------------------------------------------------------------------------------
# Every case: one /usr/bin/time run for peak RSS (it doubles as a check that the command
# works and produces the expected output), then hyperfine for the timing runs, whose
# --prepare deletes the previous output (and drops nothing else: caches stay warm, as the
# registry's blob is in the page cache for every client alike).
#
# case_run ID GROUP "LABEL" BYTES REF_ID RUNS WARMUP "PREPARE" "COMMAND" [EXPECT_PATH [EXPECT_SIZE]]
# Environment knobs for the next case only: CASE_NO_SHELL=1 (hyperfine -N, for the
# millisecond cases), CASE_NETNS=1 (run inside the benchmark's network namespace),
# CASE_NOTE="…".
cases="$results/cases.tsv"
printf 'id\tgroup\tlabel\tbytes\tref\tstatus\tnote\tload\n' >"$cases"

# The load column: the 1-minute load average as the case started (the benchmark's own
# processes count in it too: a client and the registry keep ~1-2 cores busy).
case_record() { # ID GROUP LABEL BYTES REF STATUS NOTE
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "${case_load:-}" >>"$cases"
}

case_na() { # ID GROUP LABEL REF WHY
  wanted "$2" || return 0
  case_load=""
  note "$3: n/a ($5)"
  case_record "$1" "$2" "$3" 0 "$4" na "$5"
}

# CPU clock ticks used so far by the server side: the registries and the link emulator.
server_ticks() {
  local t=0 pid
  for pid in "${pids[@]}"; do
    [ -r "/proc/$pid/stat" ] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$t"
}

case_run() {
  local id=$1 group=$2 label=$3 bytes=$4 ref=$5 runs=$6 warm=$7 prepare=$8 cmd=$9
  local expect_path=${10:-} expect_size=${11:-}
  # Every run starts with no dirty pages: the writes of the run before (curl's and
  # oci-client's stay in the page cache; an install moved aside still has its files there)
  # are written out by `sync` in --prepare, untimed, instead of during whichever client
  # runs next, which would then pay for them (and, with its own fsync or syncfs, wait
  # for them). A client that never syncs still never pays for its own writes.
  [ -n "$prepare" ] && prepare="$prepare; sync"
  if ! wanted "$group"; then
    unset CASE_NETNS CASE_NO_SHELL CASE_NOTE
    return 0
  fi
  local wrap=() hf_shell=() note_text=${CASE_NOTE:-}
  [ "${CASE_NETNS:-0}" = 1 ] && wrap=(ip netns exec "$netns")
  [ "${CASE_NO_SHELL:-0}" = 1 ] && hf_shell=(-N)
  unset CASE_NETNS CASE_NO_SHELL CASE_NOTE

  case_load=$(cut -d' ' -f1 /proc/loadavg)
  printf '   %-44s ' "$label"
  # Peak RSS: a separate run under GNU time (the largest process of the command's tree),
  # which also records that run's wall and CPU seconds (%e %U %S) to show what limits it.
  # The server side's CPU during that run goes to ID.srv (seconds).
  [ -n "$prepare" ] && bash -c "$prepare"
  local ticks_before
  ticks_before=$(server_ticks)
  if ! "${wrap[@]}" /usr/bin/time -f '%M %e %U %S' -o "$results/$id.rss" sh -c "$cmd" >"$results/$id.out" 2>&1; then
    echo "FAILED"
    sed 's/^/      /' "$results/$id.out" | tail -5
    case_record "$id" "$group" "$label" "$bytes" "$ref" failed "$(tail -1 "$results/$id.out" | tr '\t' ' ')"
    return 0
  fi
  awk -v t=$(($(server_ticks) - ticks_before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }' >"$results/$id.srv"
  # A peak is a worst case, and one run's varies by ~1.5 MiB (how far the socket reader got
  # ahead of the disk): the reported peak is the highest of RSS_RUNS runs (CPU and wall
  # stay the first run's).
  local extra peak
  peak=$(awk '{ print $1 }' "$results/$id.rss")
  for ((extra = 2; extra <= rss_runs; extra++)); do
    [ -n "$prepare" ] && bash -c "$prepare"
    "${wrap[@]}" /usr/bin/time -f '%M' -o "$results/$id.rss.more" sh -c "$cmd" >/dev/null 2>&1 || break
    peak=$(awk -v p="$peak" '{ print ($1 > p ? $1 : p) }' "$results/$id.rss.more")
  done
  rm -f "$results/$id.rss.more"
  awk -v p="$peak" '{ $1 = p; print }' "$results/$id.rss" >"$results/$id.rss.tmp" && mv "$results/$id.rss.tmp" "$results/$id.rss"
  if [ -n "$expect_path" ]; then
    if [ ! -e "$expect_path" ] || { [ -n "$expect_size" ] && [ "$(stat -c %s "$expect_path")" != "$expect_size" ]; }; then
      echo "FAILED (no output of the expected size at $expect_path)"
      case_record "$id" "$group" "$label" "$bytes" "$ref" failed "output missing or wrong size"
      return 0
    fi
  fi
  local hf_cmd=$cmd
  if [ ${#wrap[@]} -gt 0 ]; then
    if [ ${#hf_shell[@]} -gt 0 ]; then hf_cmd="${wrap[*]} $cmd"; else hf_cmd="${wrap[*]} sh -c '$cmd'"; fi
  fi
  if [ "$interleaving" = 1 ]; then
    echo "checked; timed in rounds below"
    il_ids+=("$id") il_groups+=("$group") il_labels+=("$label") il_bytes+=("$bytes")
    il_refs+=("$ref") il_runs+=("$runs") il_warm+=("$warm") il_preps+=("$prepare")
    il_cmds+=("$hf_cmd") il_shell+=("${hf_shell[*]}") il_notes+=("$note_text") il_loads+=("$case_load")
    return 0
  fi
  local prep=()
  [ -n "$prepare" ] && prep=(--prepare "$prepare")
  echo "### $id: $hf_cmd" >>"$log"
  if ! hyperfine "${hf_shell[@]}" --style basic --warmup "$warm" --runs "$runs" "${prep[@]}" \
    --export-json "$results/$id.json" "$hf_cmd" >>"$log" 2>&1; then
    echo "FAILED (hyperfine: see $log)"
    case_record "$id" "$group" "$label" "$bytes" "$ref" failed "hyperfine failed"
    return 0
  fi
  case_summary "$id" "$bytes"
  case_record "$id" "$group" "$label" "$bytes" "$ref" ok "$note_text"
}

case_summary() { # ID BYTES: the line printed under each case
  $PY - "$results/$1.json" "$results/$1.rss" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
rss = int(open(sys.argv[2]).read().splitlines()[-1].split()[0]) / 1024
b = int(sys.argv[3])
tp = f"  {b / r['median'] / 1e6:8.1f} MB/s" if b else ""
print(f"median {r['median'] * 1000:9.1f} ms{tp}  peak RSS {rss:6.1f} MiB")
EOF
}

# Interleaved timing. The clients a group compares are timed in rounds, one run of each
# per round, instead of all runs of one client and then the next: this machine's speed
# drifts by 20-40 % over minutes (a shared VM), and a drift then falls on every client of
# the group alike instead of on whichever ran during it. Between interleave_begin and
# interleave_end, case_run only checks a case (the peak-RSS run) and queues it;
# interleave_end runs the warm-up rounds, then the timed rounds (each run is one
# `hyperfine --runs 1` with the case's --prepare) and merges each case's runs into ID.json.
interleaving=0
interleave_begin() {
  interleaving=1
  il_ids=() il_groups=() il_labels=() il_bytes=() il_refs=() il_runs=() il_warm=()
  il_preps=() il_cmds=() il_shell=() il_notes=() il_loads=()
}

interleave_end() {
  interleaving=0
  local n=${#il_ids[@]} i r rounds=0 warm=0 failed=()
  [ "$n" -gt 0 ] || return 0
  for ((i = 0; i < n; i++)); do
    [ "${il_runs[i]}" -gt "$rounds" ] && rounds=${il_runs[i]}
    [ "${il_warm[i]}" -gt "$warm" ] && warm=${il_warm[i]}
    failed[i]=0
    rm -f "$results/${il_ids[i]}".r*.json
  done
  printf '   %d clients, %d warm-up + %d timed rounds ' "$n" "$warm" "$rounds"
  for ((r = 1 - warm; r <= rounds; r++)); do
    printf '.'
    for ((i = 0; i < n; i++)); do
      { [ "${failed[i]}" = 1 ] || [ "$r" -gt "${il_runs[i]}" ]; } && continue
      local prep=() shell=() out=/dev/null
      [ -n "${il_preps[i]}" ] && prep=(--prepare "${il_preps[i]}")
      [ -n "${il_shell[i]}" ] && shell=(-N)
      [ "$r" -ge 1 ] && out="$results/${il_ids[i]}.r$r.json"
      echo "### ${il_ids[i]} round $r: ${il_cmds[i]}" >>"$log"
      hyperfine "${shell[@]}" --style basic --runs 1 "${prep[@]}" --export-json "$out" \
        "${il_cmds[i]}" >>"$log" 2>&1 || failed[i]=1
    done
  done
  echo
  for ((i = 0; i < n; i++)); do
    local id=${il_ids[i]}
    case_load=${il_loads[i]}
    printf '   %-44s ' "${il_labels[i]}"
    if [ "${failed[i]}" = 1 ]; then
      echo "FAILED (hyperfine: see $log)"
      case_record "$id" "${il_groups[i]}" "${il_labels[i]}" "${il_bytes[i]}" "${il_refs[i]}" failed "hyperfine failed"
      continue
    fi
    # One hyperfine-shaped result from the rounds (report.py reads times and median).
    $PY - "$results/$id.json" "$results/$id".r*.json <<'EOF'
import json, statistics, sys
runs = [json.load(open(p))["results"][0] for p in sys.argv[2:]]
times = [t for r in runs for t in r["times"]]
merged = dict(runs[0], times=times, mean=statistics.mean(times), median=statistics.median(times),
              min=min(times), max=max(times), stddev=statistics.stdev(times) if len(times) > 1 else None,
              user=statistics.mean(r["user"] for r in runs), system=statistics.mean(r["system"] for r in runs),
              exit_codes=[c for r in runs for c in r.get("exit_codes", [])], interleaved=True)
json.dump({"results": [merged]}, open(sys.argv[1], "w"), indent=1)
EOF
    rm -f "$results/$id".r*.json
    case_summary "$id" "${il_bytes[i]}"
    case_record "$id" "${il_groups[i]}" "${il_labels[i]}" "${il_bytes[i]}" "${il_refs[i]}" ok "${il_notes[i]}"
  done
}

# ---------------------------------------------------------------------------------------
# Waiting for a quiet machine (optional; after the fixtures, whose own load must decay
# too) and recording the load
# ---------------------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
if [ "${BENCH_WAIT_QUIET:-0}" = 1 ]; then
  say "waiting for load average < 0.5 (up to 15 minutes)"
  for _ in $(seq 1 30); do
    awk -v l="$(load1)" 'BEGIN { exit !(l < 0.5) }' && break
    note "load $(load1), waiting 30 s"
    sleep 30
  done
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
note "load average before measuring: $load_start"

# ---------------------------------------------------------------------------------------
# 1. One blob, verified, against the peers (1 GiB and 100 MiB)
# ---------------------------------------------------------------------------------------

blob_group() { # GROUP REPO DIGEST SIZE RUNS
  local g=$1 repo=$2 digest=$3 size=$4 runs=$5
  local out="$work/out/$g" url="http://$host/v2/$repo/blobs/$digest"
  local rm_out="rm -rf $out $OCISDK_CACHE_DIR"
  say "$g: one blob of $((size / 1024 / 1024)) MiB"
  interleave_begin
  case_run "$g-curl-null" "$g" "curl -o /dev/null (wire, unverified)" "$size" "$g-curl-file" "$runs" "$warmup" \
    "" "curl -sf -o /dev/null $url"
  case_run "$g-curl-file" "$g" "curl -o file (unverified: reference)" "$size" "" "$runs" "$warmup" \
    "$rm_out" "curl -sf -o $out $url" "$out" "$size"
  case_run "$g-curl-tee" "$g" "curl | tee file | sha256sum" "$size" "$g-curl-file" "$runs" "$warmup" \
    "$rm_out" "curl -sf $url | tee $out | sha256sum" "$out" "$size"
  case_run "$g-ocisdk-blob" "$g" "ocisdk blob" "$size" "$g-curl-file" "$runs" "$warmup" \
    "$rm_out" "$OCISDK -q blob $host/$repo@$digest -o $out" "$out" "$size"
  case_run "$g-ocisdk-pull" "$g" "ocisdk pull" "$size" "$g-curl-file" "$runs" "$warmup" \
    "$rm_out" "$OCISDK -q pull $host/$repo:latest -o $out" "$out" "$size"
  # The parallel ranged path on loopback, for information (it is meant for slow links).
  # `pull` knows the size from the manifest, which the ranged path needs up front.
  if [ "$has_pull_chunks" = 1 ]; then
    CASE_NOTE="loopback: informational" case_run "$g-ocisdk-chunks4" "$g" "ocisdk pull --chunks 4" "$size" "$g-curl-file" \
      "$runs" "$warmup" "$rm_out" "$OCISDK -q pull $host/$repo:latest -o $out --chunks 4" "$out" "$size"
  else
    case_na "$g-ocisdk-chunks4" "$g" "ocisdk pull --chunks 4" "$g-curl-file" "not supported by this build"
  fi
  case_run "$g-oci-client" "$g" "oci-client pull_blob" "$size" "$g-curl-file" "$runs" "$warmup" \
    "$rm_out" "$OCI_CLIENT_PULL $host/$repo@$digest $out" "$out" "$size"
  case_run "$g-skopeo" "$g" "skopeo copy (to dir:)" "$size" "$g-curl-file" "$runs" "$warmup" \
    "$rm_out" "skopeo copy -q --policy $policy --src-tls-verify=false docker://$host/$repo:latest dir:$out" \
    "$out/${digest#sha256:}" "$size"
  interleave_end
}
blob_group blob1g bench/blob1g "$digest_1g" "$size_1g" "$runs_big"
blob_group blob100m bench/blob100m "$digest_100m" "$size_100m" "$runs_mid"
rm -rf "$work/out"/*

# ---------------------------------------------------------------------------------------
# 2. Small requests: tags of a 300-tag repository, and start-up
# ---------------------------------------------------------------------------------------
say "tags: 300-tag repository; start-up"
CASE_NO_SHELL=1 case_run tags-curl tags "curl tags/list (reference)" 0 "" "$runs_fast" 3 \
  "" "curl -sf -o /dev/null http://$host/v2/bench/tags/tags/list"
CASE_NO_SHELL=1 case_run tags-ocisdk tags "ocisdk tags" 0 tags-curl "$runs_fast" 3 \
  "" "$OCISDK tags $host/bench/tags"
CASE_NO_SHELL=1 case_run version-ocisdk startup "ocisdk --version" 0 "" "$runs_tiny" 5 \
  "" "$OCISDK --version"

# ---------------------------------------------------------------------------------------
# 3. Installing a 100 MiB SDK: download + verify + unpack against download alone
# ---------------------------------------------------------------------------------------
say "sdk install of a $((size_big / 1024 / 1024)) MiB SDK"
root="$DYNAMIC_INSTALL_ROOT_DIR"
pulled="$work/out/pulled"
interleave_begin
case_run sdk-pull sdk "ocisdk sdk pull (download alone: reference)" "$size_big" "" "$runs_mid" "$warmup" \
  "$aside $pulled $OCISDK_CACHE_DIR" "$OCISDK -q sdk pull big 1.0.0 -o $pulled" \
  "$pulled/big-bookworm-1.0.0.tar.gz" "$size_big"
case_run sdk-install sdk "ocisdk sdk install" "$size_big" sdk-pull "$runs_mid" "$warmup" \
  "$aside $root $OCISDK_CACHE_DIR" "$OCISDK -q sdk install big 1.0.0" "$root/big/1.0.0"
CASE_NOTE="the unpacking floor: no network" case_run sdk-tar sdk "tar -xzf of the same tarball (local)" "$size_big" sdk-pull \
  "$runs_mid" "$warmup" "$aside $work/out/untar" "mkdir -p $work/out/untar && tar -xzf $fx/big.tar.gz -C $work/out/untar" \
  "$work/out/untar/lib"
interleave_end
# The same tar with zstd: decompressing costs ~0.15 s of a core instead of ~0.45 s.
interleave_begin
CASE_NOTE="zstd: informational" case_run sdkzst-pull sdkzst "ocisdk sdk pull, zstd tarball (download alone: reference)" \
  "$size_bigzst" "" "$runs_mid" "$warmup" "$aside $pulled $OCISDK_CACHE_DIR" "$OCISDK -q sdk pull bigzst 1.0.0 -o $pulled" \
  "$pulled/bigzst-bookworm-1.0.0.tar.zst" "$size_bigzst"
CASE_NOTE="zstd: informational" case_run sdkzst-install sdkzst "ocisdk sdk install, zstd tarball" "$size_bigzst" sdkzst-pull \
  "$runs_mid" "$warmup" "$aside $root $OCISDK_CACHE_DIR" "$OCISDK -q sdk install bigzst 1.0.0" "$root/bigzst/1.0.0"
interleave_end
# The same SDK in the MCR layout: the layer holds the tarball, so the install reads the
# layer, copies the tarball out and unpacks it, all while the layer downloads. Download
# alone is `ocisdk pull` of that layer.
interleave_begin
case_run sdkfs-pull sdkfs "ocisdk pull of the layer (download alone: reference)" "$size_bigfs" "" "$runs_mid" "$warmup" \
  "$aside $work/out/layer $OCISDK_CACHE_DIR" "$OCISDK -q pull $host/oryx/bigfs-sdk:bookworm-1.0.0 -o $work/out/layer" \
  "$work/out/layer" "$size_bigfs"
case_run sdkfs-install sdkfs "ocisdk sdk install" "$size_bigfs" sdkfs-pull "$runs_mid" "$warmup" \
  "$aside $root $OCISDK_CACHE_DIR" "$OCISDK -q sdk install bigfs 1.0.0" "$root/bigfs/1.0.0"
CASE_NOTE="the tarball copied out as the layer downloads" case_run sdkfs-sdkpull sdkfs "ocisdk sdk pull" "$size_bigfs" sdkfs-pull \
  "$runs_mid" "$warmup" "$aside $work/out/pulledfs $OCISDK_CACHE_DIR" "$OCISDK -q sdk pull bigfs 1.0.0 -o $work/out/pulledfs" \
  "$work/out/pulledfs/bigfs-bookworm-1.0.0.tar.gz" "$size_big"
interleave_end
"$aside" "$root" "$OCISDK_CACHE_DIR" "$work/out"/*

# ---------------------------------------------------------------------------------------
# 4. 100 installs of 1 MiB SDKs: one at a time against one command with --jobs
# ---------------------------------------------------------------------------------------
say "100 installs of 1 MiB SDKs"
versions=$(seq -f '1.0.%g' 0 99 | tr '\n' ' ')
{
  echo "set -e"
  for v in $versions; do echo "$OCISDK -q sdk install tiny $v >/dev/null"; done
} >"$work/multi-seq.sh"
interleave_begin
case_run multi-seq multi "100 x ocisdk sdk install, one at a time (reference)" "$size_tiny_total" "" "$runs_multi" "$warmup" \
  "$aside $root $OCISDK_CACHE_DIR" "bash $work/multi-seq.sh" "$root/tiny/1.0.99"
if [ -n "$multi_shape" ]; then
  # shellcheck disable=SC2086 # one version per argument
  multi_cmd 1 $versions >"$work/multi-1.sh"
  # shellcheck disable=SC2086
  multi_cmd "$jobs" $versions >"$work/multi-n.sh"
  if [ "$has_jobs" = 1 ]; then
    case_run multi-jobs1 multi "one command, --jobs 1" "$size_tiny_total" multi-seq "$runs_multi" "$warmup" \
      "$aside $root $OCISDK_CACHE_DIR" "bash $work/multi-1.sh >/dev/null" "$root/tiny/1.0.99"
  else
    case_na multi-jobs1 multi "one command, --jobs 1" multi-seq "no --jobs in this build"
  fi
  case_run multi-jobs multi "one command, --jobs $jobs ($multi_shape)" "$size_tiny_total" multi-seq "$runs_multi" "$warmup" \
    "$aside $root $OCISDK_CACHE_DIR" "bash $work/multi-n.sh >/dev/null" "$root/tiny/1.0.99"
else
  case_na multi-jobs1 multi "one command, --jobs 1" multi-seq "not supported by this build"
  case_na multi-jobs multi "one command, --jobs $jobs" multi-seq "not supported by this build"
fi
# The list-file form, when the main case used the argument form and sync exists too.
if [ "$has_sync" = 1 ] && [ "${multi_shape#sync}" = "$multi_shape" ]; then
  main_shape=$multi_shape
  multi_shape=sync-space
  # shellcheck disable=SC2086
  multi_cmd "$jobs" $versions >"$work/multi-sync.sh"
  multi_shape=$main_shape
  case_run multi-sync multi "ocisdk sdk sync FILE, --jobs $jobs" "$size_tiny_total" multi-seq "$runs_multi" "$warmup" \
    "$aside $root $OCISDK_CACHE_DIR" "bash $work/multi-sync.sh >/dev/null" "$root/tiny/1.0.99"
fi
interleave_end
"$aside" "$root" "$OCISDK_CACHE_DIR"

# ---------------------------------------------------------------------------------------
# 5. Parallel ranged download over an emulated slow link
# ---------------------------------------------------------------------------------------
# One peak-RSS run per case here: each takes ~9 s, and the peaks that matter are above.
rss_runs=1
# A network namespace and a veth pair in a private /30 that exists only on this machine:
# the client runs in the namespace (10.203.0.2) and reaches the registry side at
# 10.203.0.1, the root-namespace end of the pair. No other address is ever contacted.
# Emulation, first choice (kernel): netem adds the 40 ms round trip on the
# namespace's egress (requests and ACKs), and fq's maxrate caps each flow on the root
# side's egress (fq paces per flow, where tbf would cap the whole link). Kernels built
# without sch_netem / sch_fq refuse those qdiscs; then bench/linkemu.py, a user-space
# relay on 10.203.0.1, adds the same delay and per-connection cap.
say "parallel ranged download over an emulated link (${link_delay_ms} ms one way, ${link_rate_mbit} Mbit/s per connection)"
link_na=""
link_method=""
link_port=""
ns_addr=10.203.0.2
root_addr=10.203.0.1
setup_link() {
  [ "$link_mode" = off ] && { link_na="BENCH_LINK=off"; return 1; }
  [ "$(id -u)" -eq 0 ] || { link_na="needs root for ip netns"; return 1; }
  if ip -4 addr show | grep -q 'inet 10\.203\.0\.'; then
    link_na="10.203.0.0/30 is already in use on this machine"; return 1
  fi
  local ns="ocisdk-bench-$$" vr="obr$$" vn="obn$$" err
  if ! err=$(ip netns add "$ns" 2>&1); then link_na="ip netns add refused: $err"; return 1; fi
  netns=$ns
  if ! err=$(ip link add "$vr" type veth peer name "$vn" 2>&1); then link_na="veth refused: $err"; return 1; fi
  veth_root=$vr
  ip link set "$vn" netns "$ns"
  ip addr add "$root_addr/30" dev "$vr"
  ip link set "$vr" up
  ip -n "$ns" addr add "$ns_addr/30" dev "$vn"
  ip -n "$ns" link set "$vn" up
  ip -n "$ns" link set lo up

  link_port=$(free_port)
  local kernel_err=""
  if [ "$link_mode" != userspace ]; then
    if kernel_err=$(ip netns exec "$ns" tc qdisc add dev "$vn" root netem delay "$((2 * link_delay_ms))ms" 2>&1) &&
      kernel_err=$(tc qdisc add dev "$vr" root fq maxrate "${link_rate_mbit}mbit" 2>&1); then
      link_method="kernel: netem delay $((2 * link_delay_ms))ms on the namespace's egress, fq maxrate ${link_rate_mbit}mbit on the registry side"
      # A second registry process on the same storage, listening on the veth address.
      start_registry "$root_addr:$link_port" registry-link || { link_na="registry on $root_addr refused to start"; return 1; }
      return 0
    fi
    ip netns exec "$ns" tc qdisc del dev "$vn" root 2>/dev/null || true
    kernel_err=${kernel_err//$'\n'/ }
    [ "$link_mode" = kernel ] && { link_na="tc refused: $kernel_err"; return 1; }
    note "tc netem/fq not available here (${kernel_err:-?}); using the user-space emulator bench/linkemu.py"
  fi
  $PY "$bench_dir/linkemu.py" --listen "$root_addr:$link_port" --upstream "$host" \
    --delay-ms "$link_delay_ms" --rate-mbit "$link_rate_mbit" >"$work/linkemu.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/$root_addr/$link_port") 2>/dev/null && break
    sleep 0.1
  done
  link_method="user space: bench/linkemu.py relay, ${link_delay_ms} ms each way + ${link_rate_mbit} Mbit/s per connection (kernel lacks: ${kernel_err:-not tried})"
  return 0
}

link_host=""
if wanted link && setup_link; then
  link_host="$root_addr:$link_port"
  note "link: $link_method"
  lout="$work/out/link"
  lurl="http://$link_host/v2/bench/blob100m/blobs/$digest_100m"
  CASE_NETNS=1 CASE_NOTE="checks the emulated cap" case_run link-curl link "curl, one connection (the link's cap)" "$size_100m" link-single 1 0 \
    "rm -rf $lout" "curl -sf -o $lout $lurl" "$lout" "$size_100m"
  if [ "$has_chunks" = 1 ]; then single_flag=" --chunks 1"; else single_flag=""; fi
  CASE_NETNS=1 case_run link-single link "ocisdk blob${single_flag:- (single stream)} (reference)" "$size_100m" "" "$runs_link" 0 \
    "rm -rf $lout $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http blob $link_host/bench/blob100m@$digest_100m -o $lout$single_flag" \
    "$lout" "$size_100m"
  if [ "$has_chunks" = 1 ]; then
    CASE_NETNS=1 case_run link-chunks8 link "ocisdk blob --chunks 8" "$size_100m" link-single "$runs_link" 0 \
      "rm -rf $lout $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http blob $link_host/bench/blob100m@$digest_100m -o $lout --chunks 8" \
      "$lout" "$size_100m"
  else
    case_na link-chunks8 link "ocisdk blob --chunks 8" link-single "not supported by this build"
  fi
  if [ "$has_pull_chunks" = 1 ]; then
    CASE_NETNS=1 case_run link-pull-chunks8 link "ocisdk pull --chunks 8" "$size_100m" link-single "$runs_link" 0 \
      "rm -rf $lout $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http pull $link_host/bench/blob100m:latest -o $lout --chunks 8" \
      "$lout" "$size_100m"
  else
    case_na link-pull-chunks8 link "ocisdk pull --chunks 8" link-single "not supported by this build"
  fi
  # Overlap matters most when the network, not inflating, is the bottleneck: the same
  # 100 MiB SDK, download alone against install, over the slow link.
  CASE_NETNS=1 case_run link-sdk-pull link "ocisdk sdk pull over the link (reference)" "$size_big" "" 2 0 \
    "$aside $pulled $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http sdk pull big 1.0.0 --registry http://$link_host -o $pulled" \
    "$pulled/big-bookworm-1.0.0.tar.gz" "$size_big"
  CASE_NETNS=1 case_run link-sdk-install link "ocisdk sdk install over the link" "$size_big" link-sdk-pull 2 0 \
    "$aside $root $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http sdk install big 1.0.0 --registry http://$link_host" \
    "$root/big/1.0.0"
  CASE_NETNS=1 case_run link-sdkfs-pull link "ocisdk pull of the MCR-layout layer over the link (reference)" "$size_bigfs" "" 2 0 \
    "$aside $work/out/layer $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http pull $link_host/oryx/bigfs-sdk:bookworm-1.0.0 -o $work/out/layer" \
    "$work/out/layer" "$size_bigfs"
  CASE_NETNS=1 case_run link-sdkfs-install link "ocisdk sdk install, MCR layout, over the link" "$size_bigfs" link-sdkfs-pull 2 0 \
    "$aside $root $OCISDK_CACHE_DIR" "$OCISDK -q --plain-http sdk install bigfs 1.0.0 --registry http://$link_host" \
    "$root/bigfs/1.0.0"
elif wanted link; then
  note "link cases: n/a ($link_na)"
  for c in link-curl:"curl, one connection" link-single:"ocisdk blob, single stream" link-chunks8:"ocisdk blob --chunks 8" \
    link-pull-chunks8:"ocisdk pull --chunks 8" \
    link-sdk-pull:"ocisdk sdk pull over the link" link-sdk-install:"ocisdk sdk install over the link" \
    link-sdkfs-pull:"ocisdk pull of the MCR-layout layer over the link" \
    link-sdkfs-install:"ocisdk sdk install, MCR layout, over the link"; do
    case_load="" case_record "${c%%:*}" link "${c#*:}" 0 "" na "$link_na"
  done
fi

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
# Written by python from the environment, so no value needs shell quoting.
META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) META_OCISDK="$ocisdk_version ($git_rev)" \
  META_CPUS=$(nproc) META_CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" \
  META_KERNEL="$(uname -r)" META_LOAD_START="$load_start" META_LOAD_END="$load_end" \
  META_QUICK="$quick" META_CHUNKS="$has_chunks" META_JOBS="$has_jobs" META_SYNC="$has_sync" \
  META_MULTI_SHAPE="$multi_shape" META_JOBS_N="$jobs" META_LINK_METHOD="$link_method" META_LINK_NA="$link_na" \
  META_LINK_DELAY_MS="$link_delay_ms" META_LINK_RATE_MBIT="$link_rate_mbit" \
  META_CURL="$(curl --version | head -1 | cut -d' ' -f1-2)" META_SKOPEO="$(skopeo --version)" \
  META_REGISTRY="$(docker-registry --version)" META_HYPERFINE="$(hyperfine --version)" \
  META_OCI_CLIENT="oci-client $(grep -A1 '^name = "oci-client"$' "$bench_dir/oci-client-pull/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')" \
  $PY - "$results/meta.json" <<'EOF'
import json, os, sys
e = os.environ
meta = {
    "date": e["META_DATE"], "ocisdk": e["META_OCISDK"],
    "cpus": int(e["META_CPUS"]), "cpu_model": e["META_CPU_MODEL"].strip(), "kernel": e["META_KERNEL"],
    "load_start": e["META_LOAD_START"], "load_end": e["META_LOAD_END"], "quick": e["META_QUICK"] == "1",
    "features": {"chunks": e["META_CHUNKS"] == "1", "jobs": e["META_JOBS"] == "1", "sync": e["META_SYNC"] == "1",
                 "multi_shape": e["META_MULTI_SHAPE"], "jobs_n": int(e["META_JOBS_N"])},
    "link": {"method": e["META_LINK_METHOD"], "na": e["META_LINK_NA"],
             "delay_ms": float(e["META_LINK_DELAY_MS"]), "rate_mbit": float(e["META_LINK_RATE_MBIT"])},
    "tools": {k: e["META_" + k.upper().replace("-", "_")] for k in ("curl", "skopeo", "registry", "hyperfine", "oci-client")},
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF
say "results"
$PY "$bench_dir/report.py" "$results"
if [ "${BENCH_NO_PLOT:-0}" != 1 ]; then
  $PY "$bench_dir/plot.py" "$results/summary.json" "$repo/docs/performance.png" && note "chart: docs/performance.png"
fi
note "table: $results/table.md; total time $((SECONDS / 60))m$((SECONDS % 60))s"
