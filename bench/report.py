#!/usr/bin/env python3
"""Turns the benchmark's JSON lines into bench/results/<run>.json and a
Markdown table, and checks the targets of docs/performance.md."""
import json
import os
import platform
import statistics
import sys


def main():
    lines_path, out_path, commit, duration = sys.argv[1:5]
    rows = [json.loads(line) for line in open(lines_path) if line.strip()]
    by = {row["label"]: row for row in rows}

    def rounds(label):
        """The rows of `label`'s ceiling rounds, in order."""
        return [by[f"{label}_r{n}"] for n in range(1, 100) if f"{label}_r{n}" in by]

    checks = {}
    for name in ("list", "get"):
        for data in ("", "_large"):
            api = rounds(f"{name}{data}")
            ceiling = rounds(f"pgbench_{name}{data}")
            if not api or len(api) != len(ceiling):
                continue
            ratios = [round(a["rps"] / c["tps"], 3) for a, c in zip(api, ceiling)]
            # Each round pairs an API run with a ceiling run seconds later;
            # the median round is the figure, the others show the spread.
            checks[f"{name}{data}_vs_pgbench"] = statistics.median(ratios)
            checks[f"{name}{data}_vs_pgbench_rounds"] = ratios
            checks[f"{name}{data}_median_rps"] = round(statistics.median(a["rps"] for a in api))
            checks[f"{name}{data}_p99_over_p50_worst"] = max(
                round(a["p99_ms"] / a["p50_ms"], 2) for a in api)
        small, large = rounds(name), rounds(f"{name}_large")
        if small and len(small) == len(large):
            # Each round runs the small set and then the large one, a minute
            # apart: the median of those paired ratios, like the ceiling's.
            ratios = [round(b["rps"] / a["rps"], 3) for a, b in zip(small, large)]
            checks[f"{name}_large_vs_small"] = statistics.median(ratios)
            checks[f"{name}_large_vs_small_rounds"] = ratios
    if "get_baseline" in by and "get_during_signin_burst" in by:
        checks["get_p50_burst_over_baseline"] = round(
            by["get_during_signin_burst"]["p50_ms"] / by["get_baseline"]["p50_ms"], 2)
        checks["get_p99_burst_over_baseline"] = round(
            by["get_during_signin_burst"]["p99_ms"] / by["get_baseline"]["p99_ms"], 2)
    wrk_rows = [row for row in rows if "rps" in row and not row["label"].startswith("warmup")]
    checks["total_non_2xx"] = sum(row["non_2xx"] for row in wrk_rows)
    checks["total_socket_errors"] = sum(sum(row["socket_errors"].values()) for row in wrk_rows)
    if "mixed" in by:
        checks["rss_mib_after_mixed"] = round(by["mixed"]["rss_kib"] / 1024, 1)
    if "mixed_1000" in by:
        checks["rss_mib_after_mixed_1000"] = round(by["mixed_1000"]["rss_kib"] / 1024, 1)
    if "mixed_1min" in by and "mixed_5min" in by:
        checks["rss_mib_after_1min"] = round(by["mixed_1min"]["rss_kib"] / 1024, 1)
        checks["rss_mib_after_5min"] = round(by["mixed_5min"]["rss_kib"] / 1024, 1)
    for soak in ("mixed_1min", "mixed_5min"):
        samples = by.get(f"{soak}_rss", {}).get("rss_samples_kib")
        if samples:
            # Growth would show as a rising median and maximum from the
            # 1-minute run to the 5-minute one; RSS that only swings as the
            # allocator takes and returns pages keeps both where they were.
            checks[f"rss_mib_median_{soak}"] = round(statistics.median(samples) / 1024, 1)
            checks[f"rss_mib_max_{soak}"] = round(max(samples) / 1024, 1)

    machine = {
        "cores": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "kernel": platform.release(),
        "note": "load generator, server and PostgreSQL share the machine",
    }
    result = {"commit": commit, "seconds_per_scenario": int(duration), "machine": machine,
              "checks": checks, "rows": rows}
    with open(out_path, "w") as handle:
        json.dump(result, handle, indent=2)

    print(f"\ncommit {commit}, {machine['cores']} cores ({machine['cpu']}), {duration} s per scenario\n")
    print("| run | conns | req/s | p50 ms | p99 ms | p99.9 ms | non-2xx | socket errors | RSS MiB after | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        if "rps" in row:
            errors = sum(row["socket_errors"].values())
            rss = f"{row['rss_kib'] / 1024:.1f}" if "rss_kib" in row else ""
            peak = f"{row['peak_rss_kib'] / 1024:.1f}" if "peak_rss_kib" in row else ""
            print(f"| {row['label']} | {row.get('connections', '')} | {row['rps']:.0f} | {row['p50_ms']:.2f} | "
                  f"{row['p99_ms']:.2f} | {row['p999_ms']:.2f} | {row['non_2xx']} | {errors} | {rss} | {peak} |")
        elif "tps" in row:
            print(f"| {row['label']} | {row['connections']} | {row['tps']:.0f} (pgbench tps) | "
                  f"avg {row['latency_avg_ms']:.2f} | | | | | | |")
    print("\nchecks:", json.dumps(checks, indent=2))
    print(f"\nwritten: {out_path}")


if __name__ == "__main__":
    main()
