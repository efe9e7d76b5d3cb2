"""Commands on data and architectures: download, split, preview, dicom2png, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.cli._app import app, log
from pneumocxr.cli.options import (
    DataOpt,
    SeedOpt,
    SplitMethod,
    SplitOpt,
    StrictOpt,
    TestSizeOpt,
    ValSizeOpt,
    _data_folder,
    with_labels_options,
)
from pneumocxr.errors import PneumoError


# -- data -----------------------------------------------------------------------------------
@app.command()
def download(
    dest: Annotated[Path, typer.Option(help="Where to put chest_xray/.")] = Path("data"),
):
    """Download the Kaggle chest X-ray dataset with kagglehub and tidy it."""
    from pneumocxr.data.download import download as fetch

    typer.echo(fetch(dest))


@app.command()
@with_labels_options
def split(
    out: Annotated[Path, typer.Option(help="Folder for splits.csv and distribution.png.")],
    data: DataOpt = None,
    method: SplitOpt = SplitMethod.auto,
    test_size: TestSizeOpt = 0.2,
    val_size: ValSizeOpt = 0.2,
    seed: SeedOpt = 42,
    strict: StrictOpt = False,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace a splits.csv or distribution.png pneumocxr did not write."),
    ] = False,
    labels=None,  # the --labels options (with_labels_options)
):
    """Split the images into train/val/test and plot the class counts."""
    from pneumocxr.data.dataset import load_dataset
    from pneumocxr.data.download import resolve_data
    from pneumocxr.data.split import PROTOCOLS, split_summary
    from pneumocxr.data.split_file import check_splits_out, write_splits

    root = resolve_data(_data_folder(data, labels))
    inputs = [labels.csv] if labels else []
    check_splits_out(out, None if labels else root, overwrite, inputs)  # before the slow part
    dataset = load_dataset(
        root,
        32,
        split=method.value,
        test_size=test_size,
        val_size=val_size,
        seed=seed,
        strict=strict,
        labels=labels,
    )
    write_splits(out, dataset.table)
    typer.echo(f"split protocol: {PROTOCOLS[dataset.protocol]}")
    for name, counts in split_summary(dataset.table).items():
        typer.echo(
            f"{name:5s} {counts['images']:5d} images, {counts['patients']:5d} patients "
            f"(NORMAL {counts['NORMAL']}, PNEUMONIA {counts['PNEUMONIA']})"
        )
    typer.echo(f"wrote {out / 'splits.csv'} and {out / 'distribution.png'}")


@app.command()
def preview(
    out: Annotated[Path, typer.Option(help="PNG file for the 4x4 grid.")],
    data: DataOpt = None,
    image_size: Annotated[int, typer.Option(min=16, help="Image size in pixels.")] = 224,
    seed: SeedOpt = 42,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an --out file that pneumocxr did not write.")
    ] = False,
):
    """Write a 4x4 grid of augmented training images."""
    from pneumocxr.data.download import resolve_data
    from pneumocxr.fileio.outputs import check_output_file, check_outside, made_by_pneumocxr_png
    from pneumocxr.pipeline.tutorial import write_preview

    root = resolve_data(data)
    check_outside(out, [root])
    check_output_file(out, "--out", made_here=made_by_pneumocxr_png, overwrite=overwrite)
    write_preview(root, out, image_size, seed)
    typer.echo(f"wrote {out}")


# -- models ---------------------------------------------------------------------------------
@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the architectures with their parameter counts at their default input size."""
    from pneumocxr.pipeline.tutorial import model_table

    rows = model_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'model':20s} {'input':>9s} {'total':>13s} {'trainable':>13s} {'frozen':>13s}")
    for r in rows:
        size = f"{r['input_size']}x{r['input_size']}"
        typer.echo(
            f"{r['name']:20s} {size:>9s} {r['total_params']:>13,} "
            f"{r['trainable_params']:>13,} {r['frozen_params']:>13,}"
        )


@app.command()
def dicom2png(
    source: Annotated[Path, typer.Argument(help="A DICOM file or a folder tree of them.")],
    target: Annotated[Path, typer.Argument(help="PNG file, or folder for a tree.")],
    overwrite: Annotated[
        bool, typer.Option(help="Replace PNGs already at TARGET (by default they are kept).")
    ] = False,
):
    """Convert DICOM radiographs to 8-bit PNGs (LUTs, MONOCHROME1, the tutorial's scaling)."""
    from pneumocxr.data.dicom_convert import dicom_to_png

    written, failures = dicom_to_png(source, target, overwrite)
    for _, reason in failures:
        log.warning("skipped %s", reason)
    if not written:
        raise PneumoError(f"none of the {len(failures)} DICOM files could be converted")
    typer.echo(f"wrote {written[0] if len(written) == 1 else target}")
