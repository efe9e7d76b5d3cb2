"""Render docs/BENCHMARKS.md from benchmarks/results/*.json (see benchmarks/run.py)."""

from __future__ import annotations

from pathlib import Path

from render_everyday import everyday_section, pacs_section

from render_common import load, machine_text
from render_models import (
    LEARNED_AUC,
    default_model_section,
    lr_table,
    probes_section,
    recipes_section,
    test_lines,
)
from render_speed import serve_section, speed_sections
from render_trust import calibration_section, scope_section


def render(results: Path) -> str:
    out = [
        "# Benchmarks",
        "",
        "Every number below comes from `benchmarks/run.py` (`make benchmarks` reruns all of",
        "them and rewrites this file; `python benchmarks/run.py JOB` reruns one). Raw results are",
        "in `benchmarks/results/`. Data: the 5,216 shared training X-rays (224x224) in",
        "`../shared/data/chest_xray`, split by patient with seed 42 unless stated otherwise.",
        "",
    ]
    out += everyday_section(results)
    if r := load(results, "default_model"):
        out += default_model_section(r)
    if r := load(results, "smallnet_full"):
        v, last = r["best_epoch_val"], r["final_epoch_val"]
        out += [
            "## SmallNet, full training",
            "",
            f"- Command: `{r['command']}`",
            f"- Wall time: {r['wall_s'] / 60:.1f} min, {r['epochs_run']} epochs "
            f"({machine_text(r)}); "
            + (
                f"{r['mean_epoch_s']:.0f} s per epoch (training and validation)"
                if "mean_epoch_s" in r
                else f"{r['s_per_epoch']:.0f} s per epoch (wall time / epochs, so including "
                "decoding the images and exporting the model)"
            ),
            f"- Best epoch {r['best_epoch']} (lowest validation loss, the weights exported), "
            f"internal validation split: loss {v['loss']:.4f}, accuracy {v['accuracy']:.4f}, "
            f"AUC {v['auc']:.4f}, recall {v['recall']:.4f}, precision {v['precision']:.4f}",
            f"- Last epoch, internal validation split: loss {last['loss']:.4f}, "
            f"accuracy {last['accuracy']:.4f}, AUC {last['auc']:.4f}",
            "",
        ]
    if r := load(results, "smallnet_lr"):
        out += [
            "## SmallNet learning rate: the tutorial's 1e-2, 1e-3 and 1e-4",
            "",
            f"Full data, 224 px, 4 epochs: `{r['command']}` ({machine_text(r)}).",
            "A run *learned* when its AUC on the internal validation split is at least "
            f"{LEARNED_AUC}; below that the model ranks images little better than chance (1e-2 "
            "gives every image the",
            "same output, AUC 0.5). Accuracy is at threshold 0.5.",
            "",
            *lr_table(r["runs"]),
        ]
    if r := load(results, "smallnet_lr_quick"):
        out += [
            f"The `--quick` profile (128 px, about 800 images): `{r['command']}`.",
            "After 3 epochs at 1e-4 SmallNet still called every validation image PNEUMONIA at",
            "0.5, so the profile trains 8; 1e-3 ranks worse on two of four seeds.",
            "",
            *lr_table(r["runs"]),
        ]
    for key, title in (("full_run", "The main job"), ("quick_run", "The main job, quick profile")):
        if r := load(results, key):
            out += [
                f"## {title}",
                "",
                f"- `{r['command']}`: {r['wall_s'] / 60:.1f} min ({machine_text(r)})",
                *test_lines(r.get("test", {})),
                *test_lines(r.get("external", {}), "external set"),
                "",
            ]
    if r := load(results, "scope"):
        out += scope_section(r)
    if r := load(results, "calibration"):
        out += calibration_section(r)
    if r := load(results, "recipes"):
        out += recipes_section(r)
    if r := load(results, "probes"):
        out += probes_section(r)
    out += speed_sections(results)
    if r := load(results, "inference"):
        out += [
            "## Inference speed at 224x224",
            "",
            f"Command: `{r['command']}`, batch 32 ({machine_text(r)}). The malloc tuning is",
            "`pneumocxr._malloc.tune_malloc`, which the CLI applies (docs/PERFORMANCE.md).",
            "",
            "| model | malloc tuned | ms per image | system CPU share |",
            "|---|---|---|---|",
        ]
        for row in r["runs"]:
            out.append(
                f"| {row['model']} | {'yes' if row['malloc_tuned'] else 'no'} | "
                f"{row['ms_per_image']:.1f} | {row['system_cpu_share']:.0%} |"
            )
        out.append("")
    if r := load(results, "serve_load"):
        out += serve_section(r)
    out += pacs_section(results)
    return "\n".join(out)
