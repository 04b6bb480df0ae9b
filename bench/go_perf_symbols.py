#!/usr/bin/env python3
"""Names the Go functions in a perf profile of a stripped Go binary (Debian's docker-registry).

Debian strips the registry's ELF symbol table, so `perf report` shows bare addresses. Go keeps
its own function table (.gopclntab, for stack traces) in every binary; this reads it (the
Go 1.18+ layout) and prints self and inclusive shares per function.

    perf record -g -p "$(pgrep -f 'docker-registry serve')" -o reg.data -- sleep 2
    perf script -i reg.data -F ip,sym,dso | bench/go_perf_symbols.py /usr/bin/docker-registry
"""
import bisect
import collections
import struct
import subprocess
import sys


def function_table(exe):
    """(sorted entry addresses, names) from the binary's .gopclntab."""
    with open(exe, "rb") as f:
        data = f.read()
    sections = subprocess.check_output(["readelf", "-SW", exe], text=True)
    line = next(l for l in sections.splitlines() if ".gopclntab" in l)
    fields = line.split("]")[1].split()
    offset, size = int(fields[3], 16), int(fields[4], 16)
    tab = data[offset : offset + size]
    magic, = struct.unpack_from("<I", tab, 0)
    if magic not in (0xFFFFFFF0, 0xFFFFFFF1):
        sys.exit(f"{exe}: .gopclntab magic {magic:#x} is not Go 1.18 or later")
    nfunc, _nfiles, text_start, funcname_off, _cu, _filetab, _pctab, pcln_off = struct.unpack_from(
        "<QQQQQQQQ", tab, 8
    )
    entries, names = [], []
    for i in range(nfunc):
        entry_off, func_off = struct.unpack_from("<II", tab, pcln_off + 8 * i)
        _, name_off = struct.unpack_from("<Ii", tab, pcln_off + func_off)
        start = funcname_off + name_off
        entries.append(text_start + entry_off)
        names.append(tab[start : tab.index(b"\0", start)].decode())
    return entries, names, load_base(exe)


def load_base(exe):
    """perf script prints a non-PIE binary's addresses relative to its first LOAD segment."""
    headers = subprocess.check_output(["readelf", "-lW", exe], text=True)
    return min(int(l.split()[2], 16) for l in headers.splitlines() if l.strip().startswith("LOAD"))


def main():
    exe = sys.argv[1]
    entries, names, base = function_table(exe)

    def name(address):
        i = bisect.bisect_right(entries, address) - 1
        return names[i] if i >= 0 else hex(address)

    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    stack = []
    for line in list(sys.stdin) + [""]:
        if line.strip():
            fields = line.split()
            if exe in line:
                stack.append(name(int(fields[0], 16) + base))
            else:
                stack.append(fields[1] if len(fields) > 1 else fields[0])
            continue
        if stack:
            total += 1
            own[stack[0]] += 1
            inclusive.update(set(stack))
        stack = []
    print(f"{total} samples")
    for title, counter, rows in (("self", own, 25), ("inclusive", inclusive, int(__import__("os").environ.get("ROWS", 45)))):
        print(f"--- {title}")
        for function, count in counter.most_common(rows):
            print(f"{100 * count / total:5.1f}%  {function}")


if __name__ == "__main__":
    main()
