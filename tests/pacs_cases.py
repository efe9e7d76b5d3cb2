"""DICOM inputs for the PACS tests: real chest X-rays from ../shared as DX radiographs with the
headers a modality writes, and inputs the model must not assess (other modalities from
pydicom's test data, a lateral view, another body part, several frames, colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import JPEGLSLossless, generate_uid

from conftest import shared_images
from dicom_factory import JPEG2000Lossless, RLELossless, jpeg_pixels, make_dicom, twelve_bit

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
# Values that must never reach a log line: the node logs UIDs only.
PATIENT_NAME, PATIENT_ID = "Secretname^Patricia", "PID-7781-SECRET"


def chest_dx(path: Path, jpeg: Path, study: str | None = None, compress=None, **tags) -> Path:
    """A frontal chest DX from a shared JPEG, 12-bit, with patient, study and series."""
    headers = {
        "Modality": "DX",
        "BodyPartExamined": "CHEST",
        "ViewPosition": "PA",
        "PatientName": PATIENT_NAME,
        "PatientID": PATIENT_ID,
        "PatientBirthDate": "20190304",
        "PatientSex": "F",
        "StudyDate": "20261201",
        "StudyTime": "101500",
        "AccessionNumber": "ACC123",
        "StudyID": "S1",
        "InstanceNumber": 1,
        "StudyInstanceUID": study or generate_uid(),
        **tags,
    }
    headers["modality"] = headers.pop("Modality")
    return make_dicom(
        path, twelve_bit(jpeg_pixels(jpeg)), sop_class=DX_STORAGE, compress=compress, **headers
    )


def xrays(folder: Path, normal: int = 2, pneumonia: int = 2) -> list[Path]:
    """Real X-rays as DX files: the first two share a study (results join one series)."""
    folder.mkdir(parents=True, exist_ok=True)
    jpegs = shared_images("NORMAL", normal, 10) + shared_images("PNEUMONIA", pneumonia, 10)
    shared_study = generate_uid()
    return [
        chest_dx(folder / f"xray{i}.dcm", jpeg, study=shared_study if i < 2 else None)
        for i, jpeg in enumerate(jpegs)
    ]


def compressed(folder: Path) -> dict[str, Path]:
    """The same X-ray in the transfer syntaxes the installed plugins decode."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = shared_images("PNEUMONIA", 1, 20)[0]
    syntaxes = {"j2k": JPEG2000Lossless, "jpegls": JPEGLSLossless, "rle": RLELossless}
    made = {"plain": chest_dx(folder / "plain.dcm", jpeg)}
    for name, syntax in syntaxes.items():
        made[name] = chest_dx(folder / f"{name}.dcm", jpeg, compress=syntax)
    return made


def out_of_scope(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the reason must hold)."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = shared_images("NORMAL", 1, 30)[0]
    cases = {
        "ct": (_copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm"), "modality CT"),
        "mr": (_copy(get_testdata_file("MR_small.dcm"), folder / "mr.dcm"), "modality MR"),
        "us": (_copy(get_testdata_file("US1_UNCR.dcm"), folder / "us.dcm"), "modality US"),
        "lateral": (chest_dx(folder / "lateral.dcm", jpeg, ViewPosition="LL"), "lateral"),
        "hand": (chest_dx(folder / "hand.dcm", jpeg, BodyPartExamined="HAND"), "body part HAND"),
        "frames": (multiframe(folder / "frames.dcm", jpeg), "3 frames"),
        "colour": (colour(folder / "colour.dcm", jpeg), "not a grayscale radiograph"),
    }
    return cases


def multiframe(path: Path, jpeg: Path, frames: int = 3) -> Path:
    made = chest_dx(path, jpeg)
    ds = pydicom.dcmread(made)
    ds.NumberOfFrames = frames
    ds.PixelData = ds.PixelData * frames
    ds.save_as(made, enforce_file_format=True)
    return made


def colour(path: Path, jpeg: Path) -> Path:
    made = chest_dx(path, jpeg)
    ds = pydicom.dcmread(made)
    gray = jpeg_pixels(jpeg)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.repeat(gray[..., None], 3, axis=2).tobytes()
    ds.save_as(made, enforce_file_format=True)
    return made


def _copy(source, target: Path) -> Path:
    target.write_bytes(Path(source).read_bytes())
    return target


def sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def read_report(ds) -> dict:
    """What an SR says, read with plain pydicom (not with the code that wrote it): the
    decision, the finding, P(pneumonia), threshold, comment, source image and algorithm."""
    found = {"parameters": []}
    for item in _content_items(ds):
        code = item.ConceptNameCodeSequence[0].CodeValue
        if code == "DECISION":
            found["label"] = item.ConceptCodeSequence[0].CodeValue
        elif code == "233604007":  # Pneumonia: Present, Absent or Not assessed
            found["finding"] = item.ConceptCodeSequence[0].CodeMeaning
        elif code in ("P-PNEUMONIA", "THRESHOLD", "SCOPE-SCORE"):
            found[code] = float(item.MeasuredValueSequence[0].NumericValue)
        elif code == "121106":
            found["comment"] = str(item.TextValue)
        elif code == "121112":
            found["source"] = str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        elif code in ("111001", "111003"):
            found["algorithm" if code == "111001" else "version"] = str(item.TextValue)
        elif code == "111002":
            found["parameters"].append(str(item.TextValue))
    return found


def _content_items(ds):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _content_items(item)


MPEG2 = "1.2.840.10008.1.2.4.100"
FAILURE = -1


def bad_inputs(folder: Path) -> dict[str, tuple[Path, int]]:
    """name -> (file, the C-STORE status the node must answer; FAILURE: any failure status)."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = shared_images("NORMAL", 1, 40)[0]
    good = chest_dx(folder / "good.dcm", jpeg)
    data = good.read_bytes()
    start = 144 + int.from_bytes(data[140:144], "little")  # after the file meta group
    return {
        "good": (good, 0x0000),
        "truncated": (_write(folder / "truncated.dcm", data[: len(data) * 2 // 3]), 0xC000),
        "garbage": (
            _write(folder / "garbage.dcm", data[:start] + b"\x08\x00garbage!" * 50),
            FAILURE,
        ),
        "mpeg2": (_edit(chest_dx(folder / "mpeg2.dcm", jpeg), _mpeg2), 0xC000),
        "huge_length": (_huge_length(folder / "huge_length.dcm", jpeg), 0xC000),
        "huge_frames": (_edit(chest_dx(folder / "frames.dcm", jpeg), _huge_frames), 0xC000),
        "no_study": (_edit(chest_dx(folder / "no_study.dcm", jpeg), _no_study), 0xA900),
        "last": (chest_dx(folder / "last.dcm", jpeg), 0x0000),  # the node is still there
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _edit(path: Path, change) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)
    return path


def _mpeg2(ds) -> None:
    from pydicom.encaps import encapsulate

    ds.file_meta.TransferSyntaxUID = MPEG2
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    ds["PixelData"].VR = "OB"


def _huge_frames(ds) -> None:
    ds.Rows = ds.Columns = 4096
    ds.NumberOfFrames = 2000  # 33 billion pixels declared; a few kB sent


def _no_study(ds) -> None:
    del ds.StudyInstanceUID


def _huge_length(path: Path, jpeg: Path) -> Path:
    """Pixel data whose element declares 4 GB, followed by 16 bytes."""
    made = chest_dx(path, jpeg)
    ds = pydicom.dcmread(made)
    del ds.PixelData
    ds.save_as(made, enforce_file_format=True)
    element = (0x7FE0).to_bytes(2, "little") + (0x0010).to_bytes(2, "little") + b"OW\x00\x00"
    return _write(
        made, made.read_bytes() + element + (0xFFFFFFF0).to_bytes(4, "little") + bytes(16)
    )
