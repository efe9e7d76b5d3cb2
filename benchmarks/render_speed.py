"""The sections of docs/BENCHMARKS.md about speed: `pneumocxr bench`, predict on a folder, the
cost of the scope check, the targets, the web server under load."""

from __future__ import annotations

from pathlib import Path

from render_common import load, machine_text


def speed_sections(results: Path) -> list[str]:
    """`pneumocxr bench`, `predict` end to end, and the issue's targets against them."""
    from pneumocxr.bench.suite import ROWS

    out = []
    if b := load(results, "bench"):
        m = b["machine"]
        names = {"transfer": b["settings"]["transfer"], "model": b.get("infer_model", "")}
        out += [
            "## Speed against the limit: `pneumocxr bench`",
            "",
            f"Command: `{b['command']}` ({m['cpu']}, {m['cores']} cores, {m['threads']} "
            f"threads, torch {m['torch']}, measured {m['date']}, load average "
            f"{m['load_average']:.1f} at the start). 224x224, batch {b['settings']['batch_size']},"
            " fp32. Each images/s figure is also divided by the plain-eager SmallNet measured in",
            "the same run (one step after each SmallNet training step, so that the machine's",
            "load changes both alike), and its GFLOP/s by the fp32 GEMM's.",
            "",
            "| figure | value | x eager | share of GEMM GFLOP/s |",
            "|---|---|---|---|",
        ]
        for key, label, unit in ROWS:
            if b.get(key) is None:
                continue
            ratio = b["ratios"].get(key[: -len("_img_s")], {}) if key.endswith("_img_s") else {}
            x_eager = f"{ratio['x_eager']:.2f}" if ratio else ""
            share = f"{ratio['gemm_share']:.0%}" if ratio.get("gemm_share") is not None else ""
            out.append(f"| {label.format(**names)} | {b[key]:.1f} {unit} | {x_eager} | {share} |")
        out.append("")
    folder, cold = load(results, "predict_folder"), load(results, "predict_cold")
    if folder:
        out += [
            "## `pneumocxr predict` on a folder, end to end",
            "",
            f"Command: `{folder['command']}`, a fresh process each, decoding included "
            f"({machine_text(folder)}).",
            "",
            "| engine | scope check | images | wall time | images/s | peak RSS |",
            "|---|---|---|---|---|---|",
        ]
        for r in folder["runs"]:
            out.append(
                f"| {r['engine']} | {r.get('scope_check', 'none')} | {r['images']} | "
                f"{r['wall_s']:.1f} s | {r['img_s']:.0f} | {r['peak_rss_mb']:.0f} MB |"
            )
        out += [*_scope_cost(folder["runs"]), ""]
    if serve := load(results, "serve_scope"):
        out += _serve_scope_section(serve)
    if cold:
        walls = ", ".join(f"{x:.2f}" for x in cold["wall_s"])
        out += [
            "## `pneumocxr predict IMAGE` from a cold start",
            "",
            f"`{cold['command']}`, process start to answer: median {cold['median_s']:.2f} s "
            f"({walls} s; {machine_text(cold)}).",
            "",
        ]
    if q := load(results, "onnx_int8"):
        out += [
            "## The shipped model in PyTorch, ONNX Runtime fp32 and int8 (tried, not shipped)",
            "",
            f"Model: {q.get('model', 'the shipped model')}.",
            f"Command: `{q['command']}` ({machine_text(q)}). int8: static, per-channel, calibrated",
            f"on {q['calibration_images']} training-split images. Accuracy at 0.5. Speed: see",
            "docs/PERFORMANCE.md (measured with idle threads sleeping in both runtimes).",
            "",
            "| engine | internal val AUC | internal val accuracy | external AUC "
            "| external accuracy |",
            "|---|---|---|---|---|",
        ]
        for name, m in q["metrics"].items():
            out.append(
                f"| {name} | {m['val']['auc']:.4f} | {m['val']['accuracy']:.4f} | "
                f"{m['external']['auc']:.4f} | {m['external']['accuracy']:.4f} |"
            )
        out.append("")
    return out + _targets(results)


def _scope_cost(runs: list[dict]) -> list[str]:
    """The scope check's and calibration's share of `predict FOLDER`'s time (median of runs)."""
    import statistics

    walls = {k: [r["wall_s"] for r in runs if r.get("scope_check") == k] for k in ("on", "off")}
    if not walls["on"] or not walls["off"]:
        return []
    on, off = statistics.median(walls["on"]), statistics.median(walls["off"])
    return ["", f"The scope check and calibration add {100 * (on / off - 1):+.1f}% to the wall "
            f"time (median {on:.1f} s with, {off:.1f} s without; target <= +10%)."]  # fmt: skip


def _serve_scope_section(r: dict) -> list[str]:
    """Web API latency with the scope check on and off (one client, no Grad-CAM)."""
    import statistics

    p50 = {k: [x["levels"][0]["p50_ms"] for x in r["runs"] if x["scope_check"] == k]
           for k in ("off", "on")}  # fmt: skip
    on, off = statistics.median(p50["on"]), statistics.median(p50["off"])
    rows = " / ".join(f"{a:.1f}" for a in p50["on"]), " / ".join(f"{a:.1f}" for a in p50["off"])
    return [
        "## The web API with the scope check on and off",
        "",
        f"Command: `{r['command']}` ({machine_text(r)}); {r['images']}; one client, no Grad-CAM,",
        "three interleaved rounds on one server.",
        "",
        f"p50 latency: scope check on {rows[0]} ms (median {on:.1f}), off {rows[1]} ms "
        f"(median {off:.1f}): {on - off:+.1f} ms.",
        "",
    ]


def _targets(results: Path) -> list[str]:
    b, folder = load(results, "bench"), load(results, "predict_folder")
    cold, full = load(results, "predict_cold"), load(results, "full_run")
    rows = []
    if b:
        rows += [
            ("SmallNet training >= 40 img/s", f"{b['smallnet_train_img_s']:.1f} img/s",
             b["smallnet_train_img_s"] >= 40),
            ("SmallNet training >= 2x the plain-eager reference",
             f"{b['smallnet_vs_eager']:.2f}x", b["smallnet_vs_eager"] >= 2),
            ("transfer-head epoch on cached features <= 5 s",
             f"{b['transfer_head_epoch_s']:.1f} s", b["transfer_head_epoch_s"] <= 5),
            ("one image from file, warm, p50 <= 30 ms", f"{b['latency_p50_ms']:.1f} ms",
             b["latency_p50_ms"] <= 30),
        ]  # fmt: skip
    if folder:  # the scope check on, as users run it; the median run
        runs = sorted((r for r in folder["runs"] if r.get("scope_check", "on") == "on"),
                      key=lambda r: r["img_s"])  # fmt: skip
        r = runs[len(runs) // 2]
        rows.append(("`predict FOLDER` >= 150 img/s, peak RSS <= 1 GB",
                     f"{r['img_s']:.0f} img/s, {r['peak_rss_mb']:.0f} MB",
                     r["img_s"] >= 150 and r["peak_rss_mb"] <= 1024))  # fmt: skip
    if cold:
        rows.append(("cold `predict IMAGE` <= 2.5 s", f"{cold['median_s']:.2f} s",
                     cold["median_s"] <= 2.5))  # fmt: skip
    if full:
        rows.append(("full `pneumocxr run` <= 30 min", f"{full['wall_s'] / 60:.1f} min",
                     full["wall_s"] <= 1800))  # fmt: skip
        if "peak_rss_mb" in full:
            rows.append(("peak RSS training on the 5,216 images <= 3 GB",
                         f"{full['peak_rss_mb'] / 1024:.2f} GB",
                         full["peak_rss_mb"] <= 3072))  # fmt: skip
    if not rows:
        return []
    lines = ["## Targets", "", "From the results above (docs/PERFORMANCE.md says what limits",
             "the ones missed).", "", "| target | measured | met |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {t} | {v} | {'yes' if ok else 'no'} |" for t, v, ok in rows]
    return [*lines, ""]


def serve_section(r: dict) -> list[str]:
    lines = [
        "## The web app under load",
        "",
        f"`pneumocxr loadtest` against `pneumocxr serve` (the shipped model) on loopback, "
        f"{r['runs'][0]['requests']} requests per row ({machine_text(r)}).",
        f"Images: {r['images']}.",
        f"Command: `{r['command']}`.",
        "",
        "The load-test client runs on the same two cores as the server. The last column is the",
        "machine's one-minute load average before and after each setup: the test itself keeps",
        "it near 2; more means other programs ran at the same time, which lowers the figures.",
        "",
        "| setup | Grad-CAM | clients | requests/s | p50 ms | p99 ms | failed | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        load = "-".join(f"{x:.1f}" for x in run.get("load_average", []))
        for level in run["levels"]:
            cut = " (time limit)" if level["cut_by_time_limit"] else ""
            lines.append(
                f"| {run['setup']} | {'yes' if level['gradcam'] else 'no'} | "
                f"{level['clients']} | {level['requests_per_s']:.1f}{cut} | "
                f"{_ms(level['p50_ms'])} | {_ms(level['p99_ms'])} | {level['failed']} | "
                f"{load} |"
            )
    return [*lines, ""]


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"

