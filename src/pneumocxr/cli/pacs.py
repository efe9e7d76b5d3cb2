"""`pneumocxr dicom`: the DICOM node (listen) and DICOMweb scoring (score); docs/PACS.md."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from pneumocxr.cli._app import app, log

dicom_app = typer.Typer(
    no_args_is_help=True,
    help="Score chest X-rays from a PACS: a DICOM node, or a DICOMweb server (docs/PACS.md).",
)
app.add_typer(dicom_app, name="dicom")

ModelOpt = Annotated[
    str | None, typer.Option(help="Run folder, model folder or model.json. [default model]")
]
HeatmapOpt = Annotated[
    bool,
    typer.Option("--heatmap/--no-heatmap", help="Also send a Grad-CAM Secondary Capture."),
]


@dicom_app.command()
def listen(
    spool: Annotated[Path, typer.Option(help="Folder for received instances and results.")],
    ae_title: Annotated[str, typer.Option(help="This node's AE title.")] = "PNEUMOCXR",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 11112,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    send_to: Annotated[
        str | None,
        typer.Option(metavar="AET@HOST:PORT", help="C-STORE results there (else: --out)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder without --send-to. [SPOOL/results]")
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(metavar="AET", help="A calling AE title allowed in (repeatable). [any]"),
    ] = None,
    model: ModelOpt = None,
    heatmap: HeatmapOpt = True,
    batch_size: Annotated[int, typer.Option(min=1, help="Most images per forward pass.")] = 16,
    retries: Annotated[
        int, typer.Option(min=0, help="C-STORE retries before the dead-letter folder.")
    ] = 5,
    retry_delay: Annotated[
        float, typer.Option(min=0, help="Seconds before the first retry (doubling).")
    ] = 1.0,
    associations: Annotated[
        int, typer.Option(min=1, max=16, help="Concurrent C-STORE associations to --send-to.")
    ] = 4,
):
    """A DICOM Storage SCP: scores each chest X-ray it receives and sends back an SR (and a
    Grad-CAM Secondary Capture) into the image's study."""
    from pneumocxr.api import load_model
    from pneumocxr.dicom.node import Node, NodeConfig
    from pneumocxr.dicom.send import Destination, check_ae_title

    config = NodeConfig(
        ae_title=check_ae_title(ae_title, "--ae-title"),
        host=host,
        port=port,
        spool=spool,
        send_to=Destination.parse(send_to) if send_to else None,
        out=out,
        allow=[check_ae_title(a, "--allow") for a in allow or []],
        heatmap=heatmap,
        batch_size=batch_size,
        retries=retries,
        retry_delay=retry_delay,
        associations=associations,
    )
    node = Node(load_model(model or "default"), config)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        bound = _start(node, config)
        where = config.send_to or config.out or spool / "results"
        log.info(
            "pneumocxr DICOM node %s listening on %s:%d, results to %s (Ctrl+C stops it)",
            config.ae_title,
            host,
            bound,
            where,
        )
        if not config.allow:
            log.warning("any calling AE title is accepted; name the PACS with --allow AET")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        node.stop()
    log.info("stopped; %d instance(s) left to score in %s", len(node.spool.pending()), spool)


def _start(node, config) -> int:
    from pneumocxr.errors import PneumoError

    try:
        return node.start()
    except OSError as err:
        raise PneumoError(
            f"cannot listen on {config.host}:{config.port} ({err.strerror})"
        ) from None


@dicom_app.command()
def score(
    url: Annotated[str, typer.Option(help="The DICOMweb root, e.g. http://pacs:8042/dicom-web.")],
    study: Annotated[
        list[str] | None, typer.Option(metavar="UID", help="A StudyInstanceUID (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="DATE", help="All studies with a StudyDate from DATE.")
    ] = None,
    model: ModelOpt = None,
    heatmap: HeatmapOpt = True,
    batch_size: Annotated[int, typer.Option(min=1, help="Most images per forward pass.")] = 16,
):
    """Score the images of studies on a DICOMweb server (QIDO-RS, WADO-RS) and store an SR
    (and a Grad-CAM Secondary Capture) for each into its study (STOW-RS)."""
    from pneumocxr.api import load_model
    from pneumocxr.dicom.web import score_studies
    from pneumocxr.errors import PneumoError

    if bool(study) == bool(since):
        raise PneumoError("give either --study UID (repeatable) or --since DATE")
    summary = score_studies(load_model(model or "default"), url, study, since, heatmap, batch_size)
    typer.echo(
        f"{summary.studies} stud{'y' if summary.studies == 1 else 'ies'}: {summary.scored} "
        f"scored, {summary.already} already scored, {summary.refused} skipped, "
        f"{summary.stored} results stored"
    )
