"""Render docs/BENCHMARKS.md from benchmarks/results/*.json (see benchmarks/run.py)."""

from __future__ import annotations

import json
from pathlib import Path


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _machine(r: dict) -> str:
    m = r["machine"]
    return f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, measured {m['date']}"


def _ci(metrics: dict, name: str) -> str:
    low, high = metrics[f"{name}_ci"]
    return f"{metrics[name]:.4f} (95% CI {low:.4f}-{high:.4f})"


LEARNED_AUC = 0.75


def _lr_table(runs: list[dict]) -> list[str]:
    lines = [
        "| lr | epochs | seed | internal val AUC | internal val accuracy | predicted PNEUMONIA "
        "| learned |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in runs:
        learned = "yes" if row["val_auc"] >= LEARNED_AUC else "no"
        lines.append(
            f"| {row['lr']:g} | {row.get('epochs', 4)} | {row['seed']} | {row['val_auc']:.4f} "
            f"| {row['val_accuracy']:.4f} | {row['share_predicted_pneumonia']:.1%} | {learned} |"
        )
    return [*lines, ""]


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
    if r := _load(results, "default_model"):
        out += default_model_section(r)
    if r := _load(results, "smallnet_full"):
        v, last = r["best_epoch_val"], r["final_epoch_val"]
        out += [
            "## SmallNet, full training",
            "",
            f"- Command: `{r['command']}`",
            f"- Wall time: {r['wall_s'] / 60:.1f} min, {r['epochs_run']} epochs "
            f"({_machine(r)}); "
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
    if r := _load(results, "smallnet_lr"):
        out += [
            "## SmallNet learning rate: the tutorial's 1e-2, 1e-3 and 1e-4",
            "",
            f"Full data, 224 px, 4 epochs: `{r['command']}` ({_machine(r)}).",
            "A run *learned* when its AUC on the internal validation split is at least "
            f"{LEARNED_AUC}; below that the model ranks images little better than chance (1e-2 "
            "gives every image the",
            "same output, AUC 0.5). Accuracy is at threshold 0.5.",
            "",
            *_lr_table(r["runs"]),
        ]
    if r := _load(results, "smallnet_lr_quick"):
        out += [
            f"The `--quick` profile (128 px, about 800 images): `{r['command']}`.",
            "After 3 epochs at 1e-4 SmallNet still called every validation image PNEUMONIA at",
            "0.5, so the profile trains 8; 1e-3 ranks worse on two of four seeds.",
            "",
            *_lr_table(r["runs"]),
        ]
    for key, title in (("full_run", "The main job"), ("quick_run", "The main job, quick profile")):
        if r := _load(results, key):
            out += [
                f"## {title}",
                "",
                f"- `{r['command']}`: {r['wall_s'] / 60:.1f} min ({_machine(r)})",
                *_test_lines(r.get("test", {})),
                *_test_lines(r.get("external", {}), "external set"),
                "",
            ]
    if r := _load(results, "scope"):
        out += scope_section(r)
    if r := _load(results, "calibration"):
        out += calibration_section(r)
    if r := _load(results, "recipes"):
        out += recipes_section(r)
    if r := _load(results, "probes"):
        out += probes_section(r)
    out += _speed(results)
    if r := _load(results, "inference"):
        out += [
            "## Inference speed at 224x224",
            "",
            f"Command: `{r['command']}`, batch 32 ({_machine(r)}). The malloc tuning is",
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
    if r := _load(results, "serve_load"):
        out += _serve_section(r)
    return "\n".join(out)


def _speed(results: Path) -> list[str]:
    """`pneumocxr bench`, `predict` end to end, and the issue's targets against them."""
    from pneumocxr.bench.suite import ROWS

    out = []
    if b := _load(results, "bench"):
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
    folder, cold = _load(results, "predict_folder"), _load(results, "predict_cold")
    if folder:
        out += [
            "## `pneumocxr predict` on a folder, end to end",
            "",
            f"Command: `{folder['command']}`, a fresh process each, decoding included "
            f"({_machine(folder)}).",
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
    if serve := _load(results, "serve_scope"):
        out += _serve_scope_section(serve)
    if cold:
        walls = ", ".join(f"{x:.2f}" for x in cold["wall_s"])
        out += [
            "## `pneumocxr predict IMAGE` from a cold start",
            "",
            f"`{cold['command']}`, process start to answer: median {cold['median_s']:.2f} s "
            f"({walls} s; {_machine(cold)}).",
            "",
        ]
    if q := _load(results, "onnx_int8"):
        out += [
            "## The shipped model in PyTorch, ONNX Runtime fp32 and int8 (tried, not shipped)",
            "",
            f"Model: {q.get('model', 'the shipped model')}.",
            f"Command: `{q['command']}` ({_machine(q)}). int8: static, per-channel, calibrated",
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
        f"Command: `{r['command']}` ({_machine(r)}); {r['images']}; one client, no Grad-CAM,",
        "three interleaved rounds on one server.",
        "",
        f"p50 latency: scope check on {rows[0]} ms (median {on:.1f}), off {rows[1]} ms "
        f"(median {off:.1f}): {on - off:+.1f} ms.",
        "",
    ]


def scope_section(r: dict) -> list[str]:
    """The scope check per category of outside image, for each model measured."""
    out = [
        "## Out of scope: images that are not chest X-rays",
        "",
        f"Command: `{r['command']}` ({_machine(r)}). Outside images from installed packages",
        "and drawn ones (`benchmarks/outside.py`: pydicom's and pydicom-data's DICOM test files of",
        "other modalities and body parts, scikit-image, scikit-learn and Matplotlib photos and",
        "drawings, rendered documents and charts, synthetic images, external X-rays rotated,",
        "negated or cropped to a corner). `dev` is the set the method was chosen by, `heldout`",
        "other images of the same kinds measured once afterwards. No scope check was fitted or",
        "tuned on any of them: each was fitted on its own model's training split. The X-rays",
        "are **external** (`../shared/data/external`) and **internal** (the test split).",
        "",
    ]
    for m in r["models"]:
        out += [f"### {m['model']} ({m['features']} features)", "",
                "| images | n | refused | smallest score | median score |",
                "|---|---|---|---|---|"]  # fmt: skip
        rows = [("external X-rays (external)", m["external"])]
        if "internal_test" in m:
            rows.append(("internal test split X-rays (internal)", m["internal_test"]))
        for which in ("dev", "heldout"):
            for name, c in m[which]["categories"].items():
                rows.append((f"{which}: {name.replace('_', ' ')}", c))
        for name, c in rows:
            out.append(f"| {name} | {c['n']} | {c['refused']:.1%} | {c['min_score']:.2f} | "
                       f"{c['median_score']:.2f} |")  # fmt: skip
        out.append("")
        for which in ("dev", "heldout"):
            w = m[which]
            out.append(
                f"- {which}: {w['images']} images, **{w['refused']:.1%} refused** "
                f"({w['refused_by_pixels_alone']:.1%} by the pixels alone, without the DICOM "
                f"header); AUROC against the external X-rays: scope score "
                f"**{w['auroc_scope']:.4f}**, MaxLogit {w['auroc_maxlogit']:.4f}, energy "
                f"{w['auroc_energy']:.4f}"
            )
        for a in m.get("adult_chest", []):
            out.append(f"- An adult chest radiograph (pydicom-data RG1, CR, PA; reported, not "
                       f"fitted on): {a['label']}, scope score {a['scope_score']:.2f}, "
                       f"P(pneumonia) {a['p_pneumonia']:.3f}")  # fmt: skip
        out.append("")
    return out


def calibration_section(r: dict) -> list[str]:
    """Cross-fitted ECE and the UNCERTAIN band on the external set."""
    ece, floor, band = r["ece_crossfit"], r["ece_floor"], r["band_crossfit"]
    half, whole = sorted(floor, key=int)
    best = r["best_possible_in_sample"]
    out = [
        "## Calibration and UNCERTAIN on the external set (cross-fitted)",
        "",
        f"Command: `{r['command']}` ({_machine(r)}). The shipped model's logits on the "
        f"{r['images']} **external** X-rays, split {r['repeats']} times into patient halves; each",
        "method is fitted on one half and measured on the other, both ways, so no figure comes",
        "from images it was fitted on. ECE: 10 equal-width bins.",
        "",
        "| calibration | ECE mean | median | 10th-90th percentile |",
        "|---|---|---|---|",
    ]
    for name, v in ece.items():
        out.append(f"| {name} | {v['mean']:.4f} | {v['median']:.4f} | {v['p10']:.4f}-"
                   f"{v['p90']:.4f} |")  # fmt: skip
    f_half, f_whole = floor[half], floor[whole]
    out += [
        "",
        f"- Uncalibrated (the network's sigmoid) on all {r['images']}: ECE "
        f"{r['ece_uncalibrated_all']:.4f}; the shipped Platt calibration, fitted on all of them "
        f"(in-sample): {r['ece_shipped_in_sample']:.4f}.",
        f"- The measurement's floor: a *perfectly* calibrated model with the same probabilities "
        f"shows ECE {f_half['mean']:.4f} (median; 90th percentile {f_half['p90']:.4f}) on {half} "
        f"images and {f_whole['mean']:.4f} ({f_whole['p90']:.4f}) on {whole}, from sampling "
        "noise alone. Cross-fitted Platt sits on that floor: a 0.03 target on halves cannot be "
        "told apart from noise.",
        "",
        f"UNCERTAIN (the rule of docs/VALIDATION.md, budget {r['budget']:.0%} of the fitting half, "
        "with the shipped threshold), on the other half:",
        "",
        "| | mean | min | max |",
        "|---|---|---|---|",
    ]
    for key, label in (("referred", "referred"), ("answered_accuracy", "answered accuracy"),
                       ("answered_sensitivity", "answered sensitivity"),
                       ("answered_specificity", "answered specificity")):  # fmt: skip
        v = band[key]
        out.append(f"| {label} | {v['mean']:.4f} | {v['min']:.4f} | {v['max']:.4f} |")
    out += [
        "",
        f"The best any band around any threshold could do on these very {r['images']} images "
        f"(fitted on what it measures, an upper bound): answered accuracy "
        f"{best['answered_accuracy']:.4f}, sensitivity {best['answered_sensitivity']:.4f} with "
        f"{best['referred']:.1%} referred. The target (>= 0.98 accurate, >= 0.99 sensitive with "
        "<= 10% referred) is out of reach of this model's ranking on this set.",
        "",
    ]
    return out


def _targets(results: Path) -> list[str]:
    b, folder = _load(results, "bench"), _load(results, "predict_folder")
    cold, full = _load(results, "predict_cold"), _load(results, "full_run")
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


def _serve_section(r: dict) -> list[str]:
    lines = [
        "## The web app under load",
        "",
        f"`pneumocxr loadtest` against `pneumocxr serve` (the shipped model) on loopback, "
        f"{r['runs'][0]['requests']} requests per row ({_machine(r)}).",
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


def _test_lines(models: dict, where: str = "internal test split") -> list[str]:
    """One line per model: its metrics on the run's own test split or the external set, at
    the model's threshold."""
    return [
        f"- {name}, {where} ({m['n']} images): AUC {m['auc']:.4f} "
        f"({m['auc_ci'][0]:.4f}-{m['auc_ci'][1]:.4f}), accuracy {m['accuracy']:.4f}, "
        f"sensitivity {m['sensitivity']:.4f}, specificity {m['specificity']:.4f}"
        for name, m in models.items()
    ]


# -- external validity --------------------------------------------------------------------
ENSEMBLES = {
    "three Lite0 recipes (strong, strong+corr, all+strong+corr)": [
        "L0_strong",
        "L0_strong_corr",
        "L0_all_strong_corr",
    ],
    "two seeds of strong+corr": ["L0_strong_corr", "L0_sc_s1"],
    "all+strong+corr and SmallNet strong+corr": ["L0_all_strong_corr", "SN_sc"],
    "the original Lite0 recipe and SmallNet": ["L0_base", "SN_base"],
    "every recipe above": None,
}


def _auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _at(labels, logits, cut: float = 0.0) -> tuple[float, float, float]:
    """(accuracy, sensitivity, specificity) calling PNEUMONIA when logit >= cut."""
    import numpy as np

    labels, called = np.asarray(labels), np.asarray(logits) >= cut
    return (
        float((called == labels).mean()),
        float(called[labels == 1].mean()),
        float((~called[labels == 0]).mean()),
    )


def _options(text: str) -> str:
    """Training options without the data, external and output folders."""
    words, kept = text.split(), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--data", "--external", "--out"):
            skip = True
        else:
            kept.append(word)
    return " ".join(kept)


def _recipe_rows(recipes: dict):
    """Table rows, and external AUC, internal AUC and internal mCA per recipe."""
    rows, external_auc, internal_auc, stress_auc = [], [], [], []
    for name, x in recipes.items():
        y, logit = x["ext"]["y"], x["ext"]["logit"]
        acc, sens, spec = _at(y, logit)
        auc_in, auc_ext = _auc(x["val"]["y"], x["val"]["logit"]), _auc(y, logit)
        external_auc.append(auc_ext)
        internal_auc.append(auc_in)
        stress_auc.append(x["stress_val"]["mean_corruption_auc"])
        rows.append(
            f"| {name} | `{_options(x['options'])}` | {auc_in:.4f} | **{auc_ext:.4f}** | "
            f"{acc:.3f} / {sens:.3f} / {spec:.3f} | {stress_auc[-1]:.4f} | "
            f"{x['stress_ext']['mean_corruption_auc']:.4f} | {len(x['history']['epoch'])} |"
        )
    return rows, external_auc, internal_auc, stress_auc


HEADER = [
    "| recipe | options | internal AUC | external AUC | external acc / sens / spec | "
    "internal mCA | external mCA | epochs |",
    "|---|---|---|---|---|---|---|---|",
]


def recipes_section(r: dict) -> list[str]:
    import numpy as np
    from scipy.stats import spearmanr

    recipes = {k: v for k, v in r["recipes"].items() if "error" not in v}
    m = r["machine"]
    rows, external_auc, internal_auc, stress_auc = _recipe_rows(recipes)
    out = [
        "## Recipes measured on the external set",
        "",
        f"Every row: `pneumocxr train --data ../shared/data/chest_xray --external "
        f"../shared/data/external OPTIONS`, then `pneumocxr stress` on about 300 images of the "
        f"run's validation split (internal) and on the external set; all through "
        f"`python benchmarks/recipes.py benchmarks/recipes.txt` ({m['device']}, torch "
        f"{m['torch']}, {m['cores']} cores, {m.get('date', '')}; {m.get('note', '')}). "
        "Internal = the validation split of the training pool (857 images, patients unseen in "
        "training); external = `../shared/data/external` (312 images). Accuracy, sensitivity "
        "and specificity at threshold 0.5. mCA = mean-corruption AUC over the stress test's "
        "75 corrupted sets.",
        "",
        *HEADER,
        *rows,
    ]
    rho_stress = spearmanr(stress_auc, external_auc)
    rho_internal = spearmanr(internal_auc, external_auc)
    out += [
        "",
        f"**Does the internal stress test predict external AUC?** Across these {len(recipes)} "
        f"recipes the Spearman correlation of internal mean-corruption AUC with external AUC is "
        f"{rho_stress.statistic:.2f} (p = {rho_stress.pvalue:.3f}); of internal AUC with "
        f"external AUC it is {rho_internal.statistic:.2f} (p = {rho_internal.pvalue:.3f}). "
        "The stress test ranks recipes the way the external set does, internal validation "
        "does not (internal AUC is 0.98-0.999 for all of them).",
        "",
        "Ensembles (mean of the members' logits, from the same runs) and test-time augmentation "
        "(mean with the mirror image), external AUC:",
        "",
        "| combination | external AUC | best member |",
        "|---|---|---|",
    ]
    y = np.asarray(next(iter(recipes.values()))["ext"]["y"])
    for label, members in ENSEMBLES.items():
        members = [k for k in (members or recipes) if k in recipes]
        logits = np.mean([recipes[k]["ext"]["logit"] for k in members], axis=0)
        best = max(_auc(y, recipes[k]["ext"]["logit"]) for k in members)
        out.append(f"| {label} | {_auc(y, logits):.4f} | {best:.4f} |")
    mirrored = [
        _auc(y, np.add(x["ext"]["logit"], x["ext"]["logit_mirror"])) - _auc(y, x["ext"]["logit"])
        for x in recipes.values()
    ]
    out += [
        "",
        f"Test-time augmentation with the mirror image changed external AUC by "
        f"{np.mean(mirrored):+.4f} on average ({min(mirrored):+.4f} to {max(mirrored):+.4f}) "
        f"across the {len(mirrored)} recipes: it does not help on chest radiographs.",
        "",
    ]
    return out


def probes_section(r: dict) -> list[str]:
    """Frozen backbones (Lite0/1/2) with a linear head on one or several stages' features."""
    out = [
        "### Frozen backbones and multi-layer features",
        "",
        f"`{r['command']}` ({_machine(r)}): each backbone frozen at its own input size, every "
        "stage's output average-pooled for the 5,216 training X-rays and the 312 external "
        "ones, a logistic regression (balanced classes) fitted on the training images, scored "
        "on the external set.",
        "",
        "| backbone | input | features | external AUC |",
        "|---|---|---|---|",
    ]
    for run in r["runs"]:
        out.append(
            f"| {run['model']} | {run['size']} px | {run['features']} | {run['external_auc']:.4f} |"
        )
    return [*out, ""]


def _metric_line(label: str, e: dict) -> str:
    return (
        f"| {label} | {e['n']} | {_ci(e, 'auc')} | {_ci(e, 'accuracy')} | "
        f"{_ci(e, 'sensitivity')} | {_ci(e, 'specificity')} |"
    )


def default_model_section(r: dict) -> list[str]:
    si, se = r["stress_internal"], r["stress_external"]
    return [
        "## Shipped default model",
        "",
        f"- Training: `{r['command']}`: {r['wall_s'] / 60:.1f} min, "
        f"{r.get('wall_source', 'timed by this job')} ({_machine(r)}), "
        f"{r['epochs_run']} epochs (5 head-only, then every layer), the last one kept",
        f"- Export: `{r['export_command']}`",
        f"- Operating threshold {r['threshold']:.3f}: {r['threshold_method']}",
        "",
        "| data | images | AUC (95% CI) | accuracy | sensitivity | specificity |",
        "|---|---|---|---|---|---|",
        _metric_line("internal validation split", r["internal_validation"]),
        _metric_line("internal test split", r["internal_test"]),
        _metric_line("external (used to choose the recipe and the threshold)", r["external"]),
        "",
        f"Stress test (`pneumocxr stress`): mean-corruption AUC {si['mean_corruption_auc']:.4f} "
        f"on {si['n']} internal validation images (clean {si['clean_auc']:.4f}) and "
        f"{se['mean_corruption_auc']:.4f} on the external set (clean {se['clean_auc']:.4f}); "
        f"worst: {se['worst']['corruption']} at severity {se['worst']['severity']} "
        f"(external AUC {se['worst']['auc']:.4f}). An untouched measurement on the held-back "
        "half of the official test folder is pending.",
        "",
    ]
