"""The FastAPI app: the page, `POST /api/predict`, `GET /api/health`, `GET /api/model`, and
the OpenAPI docs at `/docs`, every asset served from the package (no CDN).

Every error is `{"detail": "<one line>"}`: no stack trace, no file path, no DICOM tag.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from pneumocxr.artifact.onnx_load import NO_GRADCAM
from pneumocxr.data.decode import UnsupportedImage
from pneumocxr.errors import PneumoError
from pneumocxr.serve.batching import MicroBatcher
from pneumocxr.serve.card import model_card
from pneumocxr.serve.connections import RequestLimit
from pneumocxr.serve.guards import LOOPBACK_NAMES, HostCheck, multipart_detail
from pneumocxr.serve.service import Service
from pneumocxr.task import __version__

STATIC = Path(__file__).resolve().parent / "static"
MULTIPART_SLACK = 64 * 1024  # the form's own headers and boundaries around the file
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DESCRIPTION = """Chest X-ray classifier (NORMAL vs PNEUMONIA) with Grad-CAM heatmaps.

**Research and teaching software. Not a medical device; not for diagnosing patients.**

Uploads are processed in memory and not stored; of a DICOM's tags only the modality, view
position and body part are returned (never a name, identifier or date)."""


@dataclass
class Limits:
    max_upload_bytes: int = 20 * 2**20
    max_batch: int = 16
    batch_wait_s: float = 0.005
    decode_slots: int = 4  # uploads decoded at once: bounds memory, 2 cores gain nothing more
    max_requests: int = 128  # requests in the app at once (idle sockets are none); more: 503


class PredictionOut(BaseModel):
    label: str = Field(
        description="NORMAL, PNEUMONIA, UNCERTAIN (refer to a person: between the model's "
        "referral limits) or OUT_OF_SCOPE (not an image the model knows; see reason)"
    )
    p_pneumonia: float = Field(description="The model's calibrated probability of pneumonia")
    in_scope: bool = Field(description="False when the image is unlike the training X-rays")
    scope_score: float | None = Field(
        description="Above 1: unlike the model's training X-rays; null with scope_check=false"
    )
    reason: str = Field("", description="Why OUT_OF_SCOPE or UNCERTAIN; empty otherwise")
    threshold: float = Field(description="The decision threshold (calibrated scale)")
    uncertain_band: list[float] | None = Field(
        None, description="[low, high): UNCERTAIN when low <= p_pneumonia < high"
    )
    model: str = Field(description="The model's name: architecture and training run")
    gradcam_png: str | None = Field(
        None, description="With gradcam=true: base64 PNG, the Grad-CAM heatmap over the image"
    )
    image_png: str | None = Field(
        None, description="With gradcam=true: base64 PNG, the image as decoded (same size)"
    )
    dicom_header: dict[str, str] | None = Field(
        None, description="A DICOM upload's modality, view_position and body_part (as present)"
    )


class Problem(BaseModel):
    detail: str = Field(description="What was wrong, in one line")


def create_app(service: Service, limits: Limits | None = None, hosts=LOOPBACK_NAMES):
    """`hosts`: the names accepted in the Host header (serve/guards.py)."""
    limits = limits or Limits()
    batcher = MicroBatcher(service.run_batch, limits.max_batch, limits.batch_wait_s)

    @asynccontextmanager
    async def lifespan(_app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPIOffline(
        title="pneumocxr",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},  # no call to an online validator
    )
    app.add_middleware(HostCheck, hosts=hosts, problem=_problem)
    app.add_middleware(Guard, max_body=limits.max_upload_bytes + MULTIPART_SLACK)
    app.add_middleware(RequestLimit, limit=limits.max_requests, problem=_problem)  # outermost
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    card = model_card(service.loaded, service.name, service.threshold, service.settings.band)

    @app.get("/api/health", summary="Is the server up")
    async def health() -> dict:
        stats = batcher.stats
        return {"status": "ok", "model": service.name, "batches": stats.batches,
                "images": stats.items, "largest_batch": stats.largest}  # fmt: skip

    @app.get("/api/model", summary="The model's name, threshold and validation figures")
    async def model() -> dict:
        return card

    _add_predict(app, service, batcher, limits)
    _add_error_handlers(app, _megabytes(limits.max_upload_bytes))
    return app


def _add_predict(app, service: Service, batcher: MicroBatcher, limits: Limits) -> None:
    decode_slots = asyncio.Semaphore(limits.decode_slots)
    megabytes = _megabytes(limits.max_upload_bytes)
    errors = {
        400: {
            "model": Problem,
            "description": "A malformed multipart body, more than one file, a Host header the "
            "server does not answer to, or gradcam=true for a model that has no Grad-CAM (an "
            "ONNX export)",
        },
        413: {"model": Problem, "description": f"Upload over {megabytes}"},
        415: {"model": Problem, "description": "Not a JPEG, PNG or DICOM file"},
        422: {"model": Problem, "description": "Unreadable, unusable or too many pixels"},
        500: {
            "model": Problem,
            "description": "Internal error (logged by the server), or a model that gave no "
            "usable answer (a NaN logit)",
        },
    }

    @app.post(
        "/api/predict",
        summary="Label, P(pneumonia) and optionally a Grad-CAM heatmap for one image",
        responses=errors,
        max_body_size=limits.max_upload_bytes + MULTIPART_SLACK,
        form_limits={"max_files": 1},  # a second file is refused, never silently dropped
    )
    async def predict(
        file: Annotated[UploadFile, File(description="A JPEG, PNG or DICOM file")],
        gradcam: Annotated[bool, Query(description="Add the Grad-CAM heatmap (slower)")] = False,
        scope_check: Annotated[
            bool, Query(description="false: label every image, even one out of scope (research)")
        ] = True,
    ) -> PredictionOut:
        if gradcam and not service.explainable:
            raise HTTPException(400, NO_GRADCAM)
        with batcher.arriving():
            data = await file.read(limits.max_upload_bytes + 1)
            if len(data) > limits.max_upload_bytes:
                raise HTTPException(413, f"upload too large: the limit is {megabytes}")
            async with decode_slots:
                upload = await run_in_threadpool(
                    _decode, service, data, file.filename, gradcam, scope_check
                )
            del data
        try:
            outcome = await batcher.submit(upload)
        except PneumoError as err:  # the model's own fault (a NaN logit): said, not hidden
            raise HTTPException(500, str(err)) from None
        answer, band = outcome.answer, service.settings.band
        result = PredictionOut(
            label=answer.label,
            p_pneumonia=answer.p_pneumonia,
            in_scope=answer.in_scope,
            scope_score=answer.scope_score,
            reason=answer.reason,
            threshold=service.threshold,
            uncertain_band=None if band is None else band.bounds(),
            model=service.name,
            dicom_header=upload.header,
        )
        if gradcam and outcome.heatmap is not None:
            pictures = await run_in_threadpool(service.pictures, upload, outcome)
            result.gradcam_png, result.image_png = pictures
        return result


def _megabytes(size: int) -> str:
    return f"{size / 2**20:g} MB"


def _decode(service: Service, data: bytes, filename: str | None, gradcam: bool, scope: bool):
    try:
        return service.decode(data, filename, gradcam, scope)
    except UnsupportedImage as err:
        raise HTTPException(415, str(err)) from None
    except PneumoError as err:
        raise HTTPException(422, str(err)) from None


def _add_error_handlers(app, megabytes: str) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException):
        detail = str(err.detail)
        if err.status_code == 413:  # also from the body limit, whose text is generic
            detail = f"upload too large: the limit is {megabytes}"
        elif err.status_code == 400:
            detail = multipart_detail(err, detail)
        return _problem(err.status_code, detail, getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError):
        parts = []
        for error in err.errors():
            where = ".".join(str(x) for x in error.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return _problem(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _err: Exception):
        # uvicorn logs the traceback on the server's side; the client learns nothing from it
        return _problem(500, "internal error")


PATHLIKE = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.~-]+){2,}[\\/]?")


def _problem(status: int, detail: str, headers=None) -> JSONResponse:
    """One line, no file paths (a library's message might quote one)."""
    line = PATHLIKE.sub("[path]", " ".join(detail.split()))[:300]
    return JSONResponse({"detail": line}, status_code=status, headers=headers)


class Guard:
    """nosniff and no-referrer everywhere; API answers (they describe images) never cached;
    a body announced larger than the limit refused before it is read (chunked bodies are
    counted by the route's own `max_body_size`)."""

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        api = scope["path"].startswith("/api/")
        if api and _content_length(scope) > self.max_body:
            megabytes = _megabytes(self.max_body - MULTIPART_SLACK)
            response = _problem(413, f"upload too large: the limit is {megabytes}")
            response.headers["connection"] = "close"
            return await response(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff")]
                headers += [(b"referrer-policy", b"no-referrer")]
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _content_length(scope) -> int:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
