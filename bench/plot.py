#!/usr/bin/env python3
"""Chart the 1 GiB blob comparison from bench/run.sh: throughput by client.

Usage: plot.py RESULTS/summary.json OUTPUT.png
(matplotlib: Debian's python3-matplotlib, which bench/run.sh installs; run it with
/usr/bin/python3 when another python3 comes first on PATH.)
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main():
    summary_path, out_path = sys.argv[1], sys.argv[2]
    summary = json.load(open(summary_path))
    meta = summary["meta"]
    rows = [c for c in summary["cases"] if c["group"] == "blob1g" and c["status"] == "ok"]
    if not rows:
        print("plot.py: no 1 GiB results to chart", file=sys.stderr)
        return 1

    labels = [c["label"] for c in rows]
    # Throughput at the median, with the range spanned by the fastest and slowest run.
    mbps = [c["bytes"] / c["median"] / 1e6 for c in rows]
    lo = [m - c["bytes"] / c["max"] / 1e6 for m, c in zip(mbps, rows)]
    hi = [c["bytes"] / c["min"] / 1e6 - m for m, c in zip(mbps, rows)]
    colours = []
    for c in rows:
        if c["id"].startswith("blob1g-ocisdk"):
            colours.append("#1f77b4")
        elif "curl" in c["id"]:
            colours.append("#9e9e9e")
        else:
            colours.append("#ff7f0e")

    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.6))
    y = range(len(rows))
    ax.barh(y, mbps, xerr=[lo, hi], color=colours, capsize=3)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    for yi, (m, h, c) in enumerate(zip(mbps, hi, rows)):
        ax.text(m + h, yi, f"  {m:.0f} MB/s · {c['rss_mib']:.0f} MiB RSS", va="center", fontsize=8)
    # The bar for ocisdk: 0.9x the unverified curl -o file.
    ref = next((c for c in rows if c["id"] == "blob1g-curl-file"), None)
    if ref:
        x = 0.9 * ref["bytes"] / ref["median"] / 1e6
        ax.axvline(x, color="#1f77b4", linestyle="--", linewidth=1)
        ax.text(x, -0.6, " target: 0.9x curl -o file", color="#1f77b4", fontsize=8, va="bottom")
    ax.set_xlabel("throughput, MB/s (median of the runs; bars: fastest–slowest run)")
    ax.set_xlim(0, max(m + h for m, h in zip(mbps, hi)) * 1.4)
    ax.set_title(
        f"One 1 GiB blob from a loopback registry — {meta['cpus']} cores, "
        f"load {meta['load_start'].split()[0]} at start",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
