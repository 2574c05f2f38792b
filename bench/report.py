#!/usr/bin/env python3
"""Turns the benchmark's JSON lines into bench/results/<run>.json and a
Markdown table, and checks the targets of docs/performance.md."""
import json
import os
import platform
import statistics
import sys


def judge(checks):
    """Each target of docs/performance.md: name -> held (None: not measured,
    as in a run without SOAK=1 for the memory-growth target)."""
    targets = {}

    def target(name, *keys, test):
        measured = all(key in checks for key in keys)
        targets[name] = bool(test(*(checks[key] for key in keys))) if measured else None

    for name in ("list", "get"):
        target(f"{name} >= 60 % of the pgbench ceiling", f"{name}_vs_pgbench",
               test=lambda ratio: ratio >= 0.60)
        target(f"{name} p99 <= 4 x p50 at 100 connections", f"{name}_p99_over_p50",
               test=lambda ratio: ratio <= 4)
        target(f"{name} on 1M tasks within 15 % of the small set", f"{name}_large_vs_small",
               test=lambda ratio: abs(ratio - 1) <= 0.15)
        target(f"{name} >= 50 % of the pgbench ceiling (floor of issue 12)", f"{name}_vs_pgbench",
               test=lambda ratio: ratio >= 0.50)
    for page in ("first", "fiftieth"):
        target(f"page: the {page} page within 20 % of list on 20 tasks", f"page_{page}_vs_list",
               test=lambda ratio: ratio >= 0.80)
    target("zero non-2xx and zero socket errors", "total_non_2xx", "total_socket_errors",
           test=lambda non_2xx, socket: non_2xx == 0 and socket == 0)
    # 30 MB, in MiB as /proc reports it.
    target("RSS under 30 MB after mixed", "rss_mib_after_mixed", test=lambda mib: mib < 30e6 / 2**20)
    # No growth: the 5-minute run's samples sit no higher than the 1-minute
    # run's, give or take the allocator's swing of about 1 MiB.
    target("no RSS growth from the 1-minute to the 5-minute mixed",
           "rss_mib_median_mixed_1min", "rss_mib_median_mixed_5min",
           "rss_mib_max_mixed_1min", "rss_mib_max_mixed_5min",
           test=lambda median_1, median_5, max_1, max_5: median_5 <= median_1 + 1 and max_5 <= max_1 + 1)
    target("a sign-in burst raises get latency by at most 2 x",
           "get_p50_burst_over_baseline", "get_p99_burst_over_baseline",
           test=lambda p50, p99: p50 <= 2 and p99 <= 2)
    return targets


def main():
    lines_path, out_path, commit, duration = sys.argv[1:5]
    rows = [json.loads(line) for line in open(lines_path) if line.strip()]
    by = {row["label"]: row for row in rows}

    def halves(label):
        """Per round, the (a, b) rows of `label`: a round measures each
        side twice, in an order symmetric about the round's middle."""
        return [(by[f"{label}_r{n}a"], by[f"{label}_r{n}b"])
                for n in range(1, 100) if f"{label}_r{n}a" in by and f"{label}_r{n}b" in by]

    def per_round_ratios(top, bottom, key_top, key_bottom):
        # Each half's rate weighs equally: the sum of the two halves is
        # their mean times two, on both sides of the ratio.
        return [round((a[key_top] + b[key_top]) / (c[key_bottom] + d[key_bottom]), 3)
                for (a, b), (c, d) in zip(top, bottom)]

    checks = {}
    for name in ("list", "get"):
        api, ceiling = halves(name), halves(f"pgbench_{name}")
        if api and len(api) == len(ceiling):
            ratios = per_round_ratios(api, ceiling, "rps", "tps")
            checks[f"{name}_vs_pgbench"] = round(statistics.median(ratios), 3)
            checks[f"{name}_vs_pgbench_rounds"] = ratios
            checks[f"{name}_median_rps"] = round(statistics.median(
                (a["rps"] + b["rps"]) / 2 for a, b in api))
        small, large = halves(f"{name}_small"), halves(f"{name}_large")
        if small and len(small) == len(large):
            ratios = per_round_ratios(large, small, "rps", "rps")
            checks[f"{name}_large_vs_small"] = round(statistics.median(ratios), 3)
            checks[f"{name}_large_vs_small_rounds"] = ratios
        # The tail target is judged on the scenario's own run; the rounds'
        # 4 s windows are reported beside it.
        if name in by:
            checks[f"{name}_p99_over_p50"] = round(by[name]["p99_ms"] / by[name]["p50_ms"], 2)
        windows = [row for pair in api + small + large for row in pair]
        if windows:
            ratios = [row["p99_ms"] / row["p50_ms"] for row in windows]
            checks[f"{name}_p99_over_p50_worst_window"] = round(max(ratios), 2)
            checks[f"{name}_windows_over_4x"] = f"{sum(r > 4 for r in ratios)} of {len(ratios)}"
    page_list = halves("page_list")
    for page in ("first", "fiftieth"):
        rows_of_page = halves(f"page_{page}")
        if page_list and len(page_list) == len(rows_of_page):
            ratios = per_round_ratios(rows_of_page, page_list, "rps", "rps")
            checks[f"page_{page}_vs_list"] = round(statistics.median(ratios), 3)
            checks[f"page_{page}_vs_list_rounds"] = ratios
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

    targets = judge(checks)

    machine = {
        "cores": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "kernel": platform.release(),
        "note": "load generator, server and PostgreSQL share the machine",
    }
    result = {"commit": commit, "seconds_per_scenario": int(duration), "machine": machine,
              "checks": checks, "targets": targets, "rows": rows}
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
    print("\ntargets (issues 3, 12 and 13):")
    for name, held in targets.items():
        print(f"  {'not measured' if held is None else 'holds' if held else 'MISSED'}  {name}")
    print(f"\nwritten: {out_path}")


if __name__ == "__main__":
    main()
