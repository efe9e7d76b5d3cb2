"""`pneumocxr dicom score`: score studies of a DICOMweb server and store the results back.

QIDO-RS finds the studies (`--study UID`, or all with a StudyDate since `--since`) and lists
their instances; WADO-RS fetches the images not scored yet, in their stored transfer syntax;
STOW-RS stores the SR (and Secondary Capture) of each into its study. Results carry the same
deterministic UIDs as the node's, so an instance whose SR is already in the study is skipped,
and a result stored twice replaces itself.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pneumocxr.data.dicom import NON_IMAGE_MODALITIES
from pneumocxr.dicom_results.evidence import uid_problem
from pneumocxr.dicom_results.model_info import ModelInfo
from pneumocxr.dicom_results.scoring import Instance, check_heatmaps, score
from pneumocxr.dicom_results.uids import result_uid
from pneumocxr.errors import PneumoError, whole_number

log = logging.getLogger("pneumocxr.dicom")
STUDY, SERIES, INSTANCE = "0020000D", "0020000E", "00080018"
MODALITY, SERIES_DESCRIPTION, SOP_CLASS = "00080060", "0008103E", "00080016"
OUR_SERIES = "pneumocxr "  # our results' series descriptions start so: never scored themselves
ANY_SYNTAX = (("application/dicom", "*"),)  # as stored: no lossy transcoding on the way


@dataclass
class WebSummary:
    studies: int = 0
    scored: int = 0
    already: int = 0  # their SR by this model was already in the study
    refused: int = 0  # no image, or UIDs results cannot join
    stored: int = 0  # result instances stored


def score_studies(
    model,
    url: str,
    studies=None,
    since: str | None = None,
    heatmap=True,
    batch_size: int = 16,
    client=None,
) -> WebSummary:
    """Score the studies named (or those since a date) on the DICOMweb server at `url`."""
    batch_size = whole_number(batch_size, "batch_size")  # 0 or -1 would score nothing
    logging.getLogger("dicomweb_client").setLevel(logging.WARNING)
    client = client or _client(url)
    info = ModelInfo.of(model)
    if heatmap:
        check_heatmaps(model)
    summary = WebSummary()
    for study in studies or _studies_since(client, since):
        summary.studies += 1
        todo = _to_score(client, study, info, summary)
        for start in range(0, len(todo), batch_size):
            batch = [_fetch(client, study, ref) for ref in todo[start : start + batch_size]]
            instances = [Instance(ds, ds) for ds in batch if _usable(ds, summary)]
            _store(client, study, score(model, instances, heatmap, info), summary)
    return summary


def _client(url: str):
    from dicomweb_client.api import DICOMwebClient

    if not re.match(r"https?://", url):
        raise PneumoError(f"--url {url!r}: give the DICOMweb root, http(s)://host/dicom-web")
    client = DICOMwebClient(url=url.rstrip("/"), timeout=60)
    # Busy servers (429, 503) get retried, but not for half a minute on a server that is down.
    client.set_http_retry_params(max_attempts=3, wait_exponential_multiplier=250)
    return client


def _studies_since(client, since: str | None) -> list[str]:
    if since is None:
        raise PneumoError("name the studies: --study UID (repeatable) or --since DATE")
    date = since.replace("-", "")
    if not re.fullmatch(r"\d{8}", date):
        raise PneumoError(f"--since {since!r}: give a date as YYYY-MM-DD")
    found = _call(
        client.search_for_studies, search_filters={"StudyDate": f"{date}-"}, get_remaining=True
    )
    return [_value(item, STUDY) for item in found if _value(item, STUDY)]


def _to_score(client, study: str, info: ModelInfo, summary: WebSummary) -> list[tuple]:
    """(series, instance) of the study's images not scored by this model yet."""
    listed = _call(
        client.search_for_instances,
        study_instance_uid=study,
        fields=[MODALITY, SERIES_DESCRIPTION, SOP_CLASS],
        get_remaining=True,
    )
    present = {_value(item, INSTANCE) for item in listed}
    todo = []
    for item in listed:
        modality = (_value(item, MODALITY) or "").upper()
        if modality in NON_IMAGE_MODALITIES or (_value(item, SERIES_DESCRIPTION) or "").startswith(
            OUR_SERIES
        ):
            continue
        uid = _value(item, INSTANCE)
        if result_uid("sr", uid, info.weights) in present:
            summary.already += 1
            continue
        todo.append((_value(item, SERIES), uid))
    return todo


def _fetch(client, study: str, ref: tuple):
    series, uid = ref
    try:
        return client.retrieve_instance(study, series, uid, media_types=ANY_SYNTAX)
    except Exception:  # a server without transfer-syntax=*: take what it sends by default
        return _call(client.retrieve_instance, study, series, uid)


def _usable(ds, summary: WebSummary) -> bool:
    problem = uid_problem(ds)
    if problem or not any(tag in ds for tag in ("PixelData", "FloatPixelData")):
        summary.refused += 1
        log.warning("skipped %s: %s", ds.get("SOPInstanceUID", "?"), problem or "no pixel data")
        return False
    return True


def _store(client, study: str, results, summary: WebSummary) -> None:
    datasets = [ds for result in results for ds in result.datasets]
    if not datasets:
        return
    answer = _call(client.store_instances, datasets=datasets, study_instance_uid=study)
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        raise PneumoError(
            f"the server refused {len(failed)} of {len(datasets)} results of study {study}"
        )
    for result in results:
        summary.scored += 1
        answer = result.prediction
        log.info("scored %s: %s P=%.4f", result.source_uid, answer.label, answer.p_pneumonia)
    summary.stored += len(datasets)


def _call(method, *args, **kwargs):
    """A DICOMweb request; network and HTTP failures become one line."""
    import requests

    try:
        return method(*args, **kwargs)
    except requests.HTTPError as err:
        code = getattr(err.response, "status_code", "?")
        raise PneumoError(f"the DICOMweb server answered HTTP {code} ({method.__name__})") from None
    except requests.RequestException as err:
        raise PneumoError(f"cannot reach the DICOMweb server ({type(err).__name__})") from None


def _value(item: dict, tag: str):
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]
