"""The sections of docs/BENCHMARKS.md about trust: the scope check on outside images and the
cross-fitted calibration and UNCERTAIN band."""

from __future__ import annotations

from render_common import machine_text


def scope_section(r: dict) -> list[str]:
    """The scope check per category of outside image, for each model measured."""
    out = [
        "## Out of scope: images that are not chest X-rays",
        "",
        f"Command: `{r['command']}` ({machine_text(r)}). Outside images from installed packages",
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
        f"Command: `{r['command']}` ({machine_text(r)}). The shipped model's logits on the "
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

