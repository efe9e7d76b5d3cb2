"""Commands around the web app and speed: serve, loadtest, bench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.cli._app import app, log
from pneumocxr.cli.options import (
    OnOff,
    ScopeOpt,
)
from pneumocxr.errors import PneumoError


# -- the web app ----------------------------------------------------------------------------
@app.command()
def serve(
    model: Annotated[
        str | None, typer.Option(help="Run folder, model folder or model.json. [default model]")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than loopback, anyone can reach it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    threshold: Annotated[
        str, typer.Option(help="Decision threshold: a number, or model (model.json's).")
    ] = "model",
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest upload accepted, in MB (larger: 413).")
    ] = 20,
    max_megapixels: Annotated[
        float, typer.Option(min=0.01, help="Largest image accepted, in millions of pixels.")
    ] = 40,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Most requests that share one forward pass.")
    ] = 16,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="A host name the server answers to (repeatable), as browsers send it in the "
            "Host header, without the port; others get 400, which stops DNS-rebinding pages. "
            "[localhost, 127.0.0.1, [::1] and --host]",
        ),
    ] = None,
):
    """Web page and HTTP API: upload X-rays, see label, P(pneumonia) and Grad-CAM."""
    from pneumocxr.serve.server import serve as run_server

    run_server(model, host, port, threshold, max_upload_mb, max_megapixels, max_batch,
               allowed_host)  # fmt: skip


@app.command()
def loadtest(
    images: Annotated[list[Path], typer.Argument(help="Images (or folders of them) to upload.")],
    url: Annotated[str, typer.Option(help="The server; loopback addresses only.")] = (
        "http://127.0.0.1:8000"
    ),
    requests: Annotated[int, typer.Option(min=1, help="Requests per level.")] = 64,
    clients: Annotated[
        str, typer.Option(help="Concurrent clients per level, comma-separated.")
    ] = "1,4,16",
    time_limit: Annotated[
        float, typer.Option(min=1, help="Seconds for the whole test; then no request starts.")
    ] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    scope_check: ScopeOpt = OnOff.on,
):
    """Requests/s and p50/p99 latency of a running server, with and without Grad-CAM."""
    from pneumocxr.serve.loadtest import check_target, load_test, table

    check_target(url)  # before anything else: nothing goes to another machine
    from pneumocxr.inference.inputs import expand_inputs

    try:
        levels = [int(x) for x in clients.split(",") if x.strip()]
    except ValueError:
        raise PneumoError(
            f"--clients must be numbers separated by commas, got {clients!r}"
        ) from None
    if not levels or min(levels) < 1:
        raise PneumoError(f"--clients needs at least one positive number, got {clients!r}")
    result = load_test(url, expand_inputs(images), requests, levels, (False, True), time_limit,
                       scope_check == OnOff.on)  # fmt: skip
    typer.echo(json.dumps(result, indent=2) if as_json else table(result))


@app.command()
def bench(
    model: Annotated[
        str | None, typer.Option(help="Model for the inference figures. [default model]")
    ] = None,
    transfer: Annotated[
        str, typer.Option(help="Transfer architecture for the training figures.")
    ] = "efficientnet-lite0",
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    image_size: Annotated[int, typer.Option(help="Training input size.")] = 224,
    steps: Annotated[
        int | None, typer.Option(help="Timed training steps per figure. [10, --quick 3]")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Fewer steps and files: under a minute.")] = False,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder of images to read. [synthetic X-ray-sized JPEGs]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Training and inference speed, each also as a ratio to a plain eager PyTorch SmallNet and
    to a large matrix multiply measured in the same run."""
    from pneumocxr.bench.suite import BenchOptions, bench_table, run_bench

    opts = BenchOptions(
        model, transfer, batch_size, image_size, steps, quick, str(data) if data else None
    )
    result = run_bench(opts, progress=lambda message: log.info("bench: %s", message))
    typer.echo(json.dumps(result, indent=2) if as_json else bench_table(result))
