"""docs/BENCHMARKS.md, "Every day": the README's two commands on a fresh clone and bulk
scoring (benchmarks/jobs_fresh.py, benchmarks/jobs_bulk.py)."""

from __future__ import annotations

from pathlib import Path

from render_common import load, machine_text
from render_models import test_lines


def everyday_section(results: Path) -> list[str]:
    out = ["## Every day", ""]
    if r := load(results, "fresh_run"):
        out += [
            f"- `{r['command']}` on a fresh clone (`python benchmarks/run.py fresh-run`): "
            f"**{r['wall_s'] / 60:.1f} min** wall, the virtual environment's creation included, "
            f"peak RSS **{r['peak_rss_mb'] / 1024:.2f} GB** ({machine_text(r)})",
            *(f"  {line}" for line in test_lines(r["test"])),
            *(f"  {line}" for line in test_lines(r["external"], "external set")),
        ]
    if r := load(results, "fresh_test"):
        slow = ", ".join(f"{s['test'].split('::')[-1]} {s['s']:.0f} s ({s['when']})"
                         for s in r["slowest"][:3])  # fmt: skip
        out += [
            f"- `{r['command']}` on a fresh clone (`python benchmarks/run.py fresh-test`): "
            f"**{r['wall_s'] / 60:.1f} min** wall, system packages and environment included; "
            f"pytest: {r['pytest']}; slowest: {slow} ({machine_text(r)})",
        ]
    out += bulk_lines(results)
    return [*out, ""] if len(out) > 2 else []


def bulk_lines(results: Path) -> list[str]:
    out = []
    if r := load(results, "bulk"):
        one, two = r["one_process"], r["two_processes"]
        same = "the same bytes" if r["same_rows"] else "**different rows**"
        out.append(
            f"- `{r['command']}`, {one['rows']:,} rows (`python benchmarks/run.py bulk`): one "
            f"process {one['img_s']:.1f} images/s ({one['peak_rss_mb']:.0f} MB), two processes "
            f"{two['img_s']:.1f} images/s ({two['peak_rss_mb']:.0f} MB together), x"
            f"{two['img_s'] / one['img_s']:.2f}; the two files: {same} ({machine_text(r)})"
        )
    if r := load(results, "bulk_memory"):
        m = r["memory"]
        early = max(s[2] for s in m["samples"][: max(1, len(m["samples"]) // 10)])
        out.append(
            f"- `{r['command']}`, {m['rows']:,} rows (`python benchmarks/run.py bulk-memory`): "
            f"{m['wall_s'] / 60:.1f} min, {m['rows'] / m['wall_s']:.1f} images/s; peak RSS "
            f"{m['peak_rss_mb']:.0f} MB, {early:.0f} MB in the first tenth of the run "
            f"({machine_text(r)})"
        )
    return out


def pacs_section(results: Path) -> list[str]:
    """The DICOM node against a real Orthanc (benchmarks/pacs.py; docs/PACS.md)."""
    r = load(results, "pacs")
    if not r:
        return []
    m, lat, sr, sc = r["machine"], r["latency"], r["sr_only"], r["with_captures"]
    trials = r["kill"]["trials"]
    acked = sum(t["acknowledged"] for t in trials)
    lost = sum(t["lost"] for t in trials)
    twice = sum(t["scored_twice"] for t in trials)
    return [
        "## The PACS node",
        "",
        f"`python {r['command']}` (about 9 minutes), a private Orthanc on loopback, the node as "
        f"a process of its own with the shipped model ({m['cpu']}, {m['cores']} cores, measured "
        f"{m['date']}, load average {m['load_average_at_start'][0]:.1f} at the start; "
        "docs/PACS.md, \"Speed and reliability\"):",
        "",
        "| figure | goal | measured |",
        "|---|---|---|",
        f"| Orthanc's C-STORE of one image to its SR stored back, Grad-CAM included "
        f"({lat['images']} images) | p50 <= {lat['goal_p50_s']} s | p50 {lat['p50_s']:.2f} s, "
        f"p90 {lat['p90_s']:.2f} s |",
        *(f"| {run['instances']} instances, {run['associations']} associations, {what} | >= "
          f"{run['goal_images_per_s']} images/s, 0 lost, 0 duplicated | "
          f"{run['images_per_s']:.1f} images/s, {run['lost']} lost, {run['scored_twice']} "
          f"scored twice, peak RSS {run['peak_rss_mb'] / 1024:.2f} GB |"
          for what, run in (("SR only", sr), ("with Secondary Captures", sc))),
        f"| kill -9 at a random moment, restart ({len(trials)} trials) | every acknowledged "
        f"instance ends with one result | {acked:,} acknowledged, {lost} without a result, "
        f"{twice} scored twice |",
        "",
    ]
