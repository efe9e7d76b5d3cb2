"""`pneumocxr predict`: answers for images, folders or a CSV listing them, printed as they come
and, with --csv or --jsonl, appended to a file a batch at a time (resumable with --resume);
with --devices, --num-nodes or --strategy, spread over processes and machines
(inference/bulk*.py, docs/SCALING.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.cli._app import app, log
from pneumocxr.cli.options import (
    AcceleratorOpt,
    DevicesOpt,
    NumNodesOpt,
    OnOff,
    ScopeOpt,
    StrategyOpt,
    StrictOpt,
)
from pneumocxr.errors import PneumoError

LIST_HELP = (
    "A CSV listing images to predict (one per row, in the --path-column column): paths relative "
    "to --data (default: the CSV's folder) or absolute; read in chunks."
)


@app.command()
def predict(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Images (JPEG, PNG, DICOM) or folders.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Run folder or model.json. [default model]")
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Decision threshold on the calibrated P: a number or model (model.json's). [model]"
        ),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Also write the results to this CSV.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="Also write the results to this file, a JSON line each.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead.")] = False,
    labels: Annotated[Path | None, typer.Option("--labels", help=LIST_HELP)] = None,
    path_column: Annotated[str, typer.Option(help="--labels column naming each image.")] = "path",
    data: Annotated[
        Path | None, typer.Option(help="Folder the --labels CSV's relative paths are under.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the --csv/--jsonl file of a run that was stopped: the rows "
                     "written are kept, none is written twice."),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images per batch (memory grows with it).")
    ] = 32,
    scope_check: ScopeOpt = OnOff.on,
    strict: StrictOpt = False,
    accelerator: AcceleratorOpt = "auto",
    devices: DevicesOpt = "1",
    num_nodes: NumNodesOpt = 1,
    strategy: StrategyOpt = "auto",
    overwrite: Annotated[
        bool, typer.Option(help="Replace a --csv/--jsonl file that pneumocxr did not write.")
    ] = False,
):
    """Print the label (NORMAL, PNEUMONIA, UNCERTAIN or OUT_OF_SCOPE), the calibrated
    P(pneumonia) and, for the last two, why, for each image."""
    from pneumocxr.api import load_model
    from pneumocxr.distributed import is_global_zero
    from pneumocxr.inference.bulk import BulkJob
    from pneumocxr.inference.sources import InputSource

    inputs = [*(paths or []), *([labels] if labels is not None else [])]
    out, fmt = _output(csv, jsonl, resume, inputs, overwrite)
    source = InputSource(list(paths or []), labels, path_column, data, strict)
    loaded = load_model(model or "default")
    settings = loaded.settings(threshold, scope_check == OnOff.on)
    _check_inputs(source)
    job = BulkJob(loaded.loaded, source, settings, out, fmt, batch_size, resume, strict)
    spread = (accelerator, str(devices), num_nodes, strategy) != ("auto", "1", 1, "auto")
    if is_global_zero():
        log.info("%s", _decision_rule(settings, loaded))
    echo = _echo(as_json) if is_global_zero() else None
    state = _score(job, spread, (accelerator, devices, num_nodes, strategy), echo)
    if state.get("failures") and not state.get("rows"):
        raise PneumoError("no image could be read")


def _output(csv, jsonl, resume: bool, inputs, overwrite: bool) -> tuple[Path | None, str]:
    """The file to write and its format, checked before any work: never over an input (the
    --labels CSV included), nor without --overwrite over a file pneumocxr did not write (a
    label CSV starts `path,label` too: only predict's exact header counts as its own)."""
    from pneumocxr.fileio.outputs import INPUT_SUFFIXES, check_output_file
    from pneumocxr.inference.bulk_output import made_here

    if csv is not None and jsonl is not None:
        raise PneumoError("give --csv or --jsonl, not both")
    out, fmt = (csv, "csv") if csv is not None else (jsonl, "jsonl")
    if out is None:
        if resume:
            raise PneumoError("--resume continues a --csv or --jsonl file: give one")
        return None, fmt
    option = f"--{fmt}"
    if resume and overwrite:
        raise PneumoError("give --resume or --overwrite, not both")
    check_output_file(out, option, inputs, made_here(fmt), INPUT_SUFFIXES, overwrite)
    return Path(out), fmt


def _check_inputs(source) -> None:
    """Missing inputs fail before anything is printed."""
    from pneumocxr.inference.inputs import expand_inputs

    if source.paths:
        source.paths = [str(p) for p in expand_inputs(source.paths, source.strict)]


def _score(job, spread: bool, devices, echo) -> dict:
    from pneumocxr.inference.bulk import is_complete, score_in_process

    if job.out is not None and job.resume and is_complete(job.out):
        log.info("%s is complete already: nothing to resume", job.out)
        return {"rows": 1, "failures": 0}
    if not spread:
        return score_in_process(job, echo)
    from pneumocxr.inference.bulk_lightning import DeviceOptions, score_on_lightning

    accelerator, count, nodes, strategy = devices
    if job.out is None:
        raise PneumoError("--devices, --num-nodes and --strategy write to --csv or --jsonl")
    return score_on_lightning(job, DeviceOptions(accelerator, str(count), nodes, strategy), echo)


def _echo(as_json: bool):
    from pneumocxr.display import display_path
    from pneumocxr.inference.answers import answer_record

    def echo(records: list[dict]) -> None:
        for r in records:
            if as_json:
                typer.echo(json.dumps(answer_record(r)))
            else:
                extra = f"\t{r['reason']}" if r["reason"] else ""
                line = f"{display_path(r['path'])}\t{r['label']}\t{r['p_pneumonia']:.4f}"
                typer.echo(line + extra)

    return echo


def _decision_rule(settings, model) -> str:
    """One line: the threshold, the UNCERTAIN band and the scope check in use."""
    text = f"threshold {settings.threshold:.4f} on the calibrated P(pneumonia)"
    if settings.band is not None and settings.band.low < settings.band.high:
        text += f"; UNCERTAIN for {settings.band.low:.4f} <= P < {settings.band.high:.4f}"
    if not settings.scope_check:
        return text + "; scope check off"
    if not model.loaded.has_scope:
        return text + "; this model has no scope check (export it with --splits-from RUN)"
    return text + "; scope check on"
