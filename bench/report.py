#!/usr/bin/env python3
"""Turn bench/run.sh's results into the table and the target checks.

Reads RESULTS/meta.json, RESULTS/cases.tsv and per case RESULTS/ID.json (hyperfine
--export-json) and RESULTS/ID.rss (GNU time %M, KiB). Prints a Markdown table and the
issue's targets, and writes RESULTS/table.md and RESULTS/summary.json (for plot.py).

Usage: report.py RESULTS_DIR
"""

import csv
import json
import os
import statistics
import sys

GROUPS = {
    "blob1g": "1 GiB blob, verified",
    "blob100m": "100 MiB blob, verified",
    "tags": "tags, 300-tag repository",
    "startup": "start-up",
    "sdk": "sdk install, 100 MiB SDK (loopback)",
    "sdkfs": "sdk install, the same SDK in the MCR layout (loopback)",
    "multi": "100 installs of 1 MiB SDKs",
    "link": "emulated link: 100 MiB",
}


def load_cases(results):
    cases = {}
    with open(os.path.join(results, "cases.tsv"), newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            case = {
                "id": row["id"],
                "group": row["group"],
                "label": row["label"],
                "bytes": int(row["bytes"] or 0),
                "ref": row["ref"] or None,
                "status": row["status"],
                "note": row["note"],
                "load": row.get("load") or "",
            }
            if case["status"] == "ok":
                hf = json.load(open(os.path.join(results, case["id"] + ".json")))["results"][0]
                times = hf["times"]
                case.update(
                    median=hf["median"],
                    min=min(times),
                    max=max(times),
                    mean=hf["mean"],
                    stddev=hf.get("stddev") or 0.0,
                    runs=len(times),
                )
                # GNU time's last line: %M (KiB) [%e %U %S] of the separate RSS run.
                fields = open(os.path.join(results, case["id"] + ".rss")).read().splitlines()[-1].split()
                case["rss_mib"] = int(fields[0]) / 1024
                if len(fields) >= 4:
                    wall, user, system = (float(x) for x in fields[1:4])
                    case["cpu_s"] = user + system
                    case["cores_busy"] = (user + system) / wall if wall > 0 else 0.0
                srv = os.path.join(results, case["id"] + ".srv")
                if os.path.exists(srv):
                    case["server_cpu_s"] = float(open(srv).read().strip() or 0)
                if case["bytes"]:
                    case["mb_per_s"] = case["bytes"] / case["median"] / 1e6
            cases[case["id"]] = case
    # Speed relative to the reference: reference time / this time (> 1: faster).
    for case in cases.values():
        ref = cases.get(case["ref"]) if case["ref"] else None
        if case["status"] == "ok" and ref and ref["status"] == "ok":
            case["speed_vs_ref"] = ref["median"] / case["median"]
    return cases


def fmt_time(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_range(case):
    lo, hi = case["min"], case["max"]
    if hi < 1:
        return f"{lo * 1000:.1f}–{hi * 1000:.1f} ms"
    return f"{lo:.2f}–{hi:.2f} s"


def table(cases):
    lines = [
        "| case | client | median | min–max | throughput | speed vs reference | peak RSS | CPU: client (cores) / server |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    shown = set()
    for case in cases.values():
        group = GROUPS.get(case["group"], case["group"])
        first = case["group"] not in shown
        shown.add(case["group"])
        col = ""
        if first:
            # The load as the group's first case started: the noise it may carry.
            col = f"**{group}**" + (f" (load {case['load']})" if case["load"] else "")
        if case["status"] != "ok":
            what = "n/a (not supported by this build)" if case["note"] == "not supported by this build" else (
                f"n/a ({case['note']})" if case["status"] == "na" else f"FAILED ({case['note']})")
            lines.append(f"| {col} | {case['label'].replace('|', chr(92) + '|')} | {what} | | | | | |")
            continue
        tp = f"{case['mb_per_s']:.0f} MB/s" if "mb_per_s" in case else ""
        if not case["ref"]:
            ratio = "reference"
        elif "speed_vs_ref" in case:
            ratio = f"{case['speed_vs_ref']:.2f}×"
        else:
            ratio = "(reference n/a)"
        label = case["label"] + (f" — {case['note']}" if case["note"] else "")
        label = label.replace("|", "\\|")  # a pipeline's | would end the Markdown cell
        # CPU: user + system seconds of the RSS run, and the cores that kept busy on average.
        cpu = f"{case['cpu_s']:.2f} s ({case['cores_busy']:.1f})" if "cpu_s" in case else ""
        if "server_cpu_s" in case:
            cpu += f" / {case['server_cpu_s']:.2f} s"
        lines.append(
            f"| {col} | {label} | {fmt_time(case['median'])} | {fmt_range(case)} | {tp} | {ratio} | {case['rss_mib']:.1f} MiB | {cpu} |"
        )
    return "\n".join(lines)


def targets(cases):
    """The issue's targets, each (text, value text, verdict)."""
    out = []

    def ok(i):
        return i in cases and cases[i]["status"] == "ok"

    def why_na(*ids):
        for i in ids:
            if i not in cases:
                return "not measured"
            if cases[i]["status"] != "ok":
                return cases[i]["note"] or cases[i]["status"]
        return ""

    def speed(name, case_id, ref_id, minimum):
        if not (ok(case_id) and ok(ref_id)):
            out.append((name, f"n/a ({why_na(case_id, ref_id)})", "n/a"))
            return
        r = cases[ref_id]["median"] / cases[case_id]["median"]
        out.append((name, f"{r:.2f}×", "PASS" if r >= minimum else "FAIL"))

    def time_ratio(name, case_id, ref_id, maximum):
        if not (ok(case_id) and ok(ref_id)):
            out.append((name, f"n/a ({why_na(case_id, ref_id)})", "n/a"))
            return
        r = cases[case_id]["median"] / cases[ref_id]["median"]
        out.append((name, f"{r:.2f}× the time", "PASS" if r <= maximum else "FAIL"))

    for cmd in ("blob", "pull"):
        speed(f"ocisdk {cmd} 1 GiB ≥ 0.9× curl -o file", f"blob1g-ocisdk-{cmd}", "blob1g-curl-file", 0.9)
        speed(f"ocisdk {cmd} 1 GiB ≥ 1.6× oci-client pull_blob", f"blob1g-ocisdk-{cmd}", "blob1g-oci-client", 1.6)
        speed(f"ocisdk {cmd} 1 GiB ≥ 3.5× skopeo copy", f"blob1g-ocisdk-{cmd}", "blob1g-skopeo", 3.5)
        small, big = f"blob100m-ocisdk-{cmd}", f"blob1g-ocisdk-{cmd}"
        if ok(small) and ok(big):
            a, b = cases[small]["rss_mib"], cases[big]["rss_mib"]
            flat = b <= a * 1.10  # "the same": 10x the bytes may cost at most 10 % more memory
            out.append((
                f"ocisdk {cmd} peak RSS ≤ 16 MiB, same (±10 %) for 100 MiB and 1 GiB",
                f"{a:.1f} / {b:.1f} MiB",
                "PASS" if max(a, b) <= 16 and flat else "FAIL",
            ))
        else:
            out.append((f"ocisdk {cmd} peak RSS ≤ 16 MiB, same (±10 %) for 100 MiB and 1 GiB", f"n/a ({why_na(small, big)})", "n/a"))
    time_ratio("ocisdk tags (300 tags) ≤ 1.3× curl", "tags-ocisdk", "tags-curl", 1.3)
    if ok("version-ocisdk"):
        ms = cases["version-ocisdk"]["median"] * 1000
        out.append(("ocisdk --version ≤ 5 ms", f"{ms:.1f} ms", "PASS" if ms <= 5 else "FAIL"))
    else:
        out.append(("ocisdk --version ≤ 5 ms", "n/a", "n/a"))
    time_ratio("sdk install 100 MiB ≤ 1.3× download alone (loopback)", "sdk-install", "sdk-pull", 1.3)
    time_ratio("sdk install 100 MiB ≤ 1.3× download alone (emulated link)", "link-sdk-install", "link-sdk-pull", 1.3)
    time_ratio("sdk install 100 MiB, MCR layout ≤ 1.3× download alone (loopback)", "sdkfs-install", "sdkfs-pull", 1.3)
    time_ratio("sdk install 100 MiB, MCR layout ≤ 1.3× download alone (emulated link)", "link-sdkfs-install", "link-sdkfs-pull", 1.3)
    speed("100 × 1 MiB installs, one command with --jobs ≥ 4× one at a time", "multi-jobs", "multi-seq", 4.0)
    speed("blob --chunks 8 ≥ 3× one stream, 100 MiB over 40 ms RTT + per-connection cap", "link-chunks8", "link-single", 3.0)
    speed("pull --chunks 8 ≥ 3× one stream, same link", "link-pull-chunks8", "link-single", 3.0)
    return out


def main():
    results = sys.argv[1]
    meta = json.load(open(os.path.join(results, "meta.json")))
    cases = load_cases(results)
    checks = targets(cases)

    head = [
        f"ocisdk: {meta['ocisdk']}; {meta['cpus']} × {meta['cpu_model']}; Linux {meta['kernel']}; {meta['date']}",
        f"load average (1/5/15 min): {meta['load_start']} before measuring, {meta['load_end']} after"
        + ("; BENCH_QUICK=1 (fewer runs)" if meta["quick"] else ""),
        f"peers: {meta['tools']['curl']}, {meta['tools']['skopeo']}, {meta['tools']['oci-client']}; "
        f"registry: {meta['tools']['registry']}; {meta['tools']['hyperfine']}",
    ]
    link = meta["link"]
    if link["method"]:
        head.append(f"emulated link: {link['method']}")
    elif link["na"]:
        head.append(f"emulated link: n/a ({link['na']})")
    text = "\n".join("- " + line for line in head) + "\n\n" + table(cases) + "\n\n"
    text += "| target (issue #6) | measured | verdict |\n|---|---:|---|\n"
    text += "\n".join(f"| {n} | {v} | {r} |" for n, v, r in checks) + "\n"
    print(text)
    with open(os.path.join(results, "table.md"), "w") as f:
        f.write(text)
    with open(os.path.join(results, "summary.json"), "w") as f:
        json.dump(
            {"meta": meta, "cases": list(cases.values()),
             "targets": [{"target": n, "measured": v, "verdict": r} for n, v, r in checks]},
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
