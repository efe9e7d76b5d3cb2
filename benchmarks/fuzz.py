"""Fuzz the image and DICOM decoding and preprocessing path with hypothesis.

    .venv/bin/python benchmarks/fuzz.py --seconds 600 [--json benchmarks/results/fuzz.json]

Three targets, each a file written to disk and read as `predict` reads it (`load_image`, then
the model's batch preprocessing):
- `mutated`: valid seed files (JPEG, PNG, GIF, BMP, TIFF, WebP, DICOM plain/RLE/RGB/multi-frame
  and pydicom's own test files) with bit flips, overwritten bytes and integers, cuts, deletions,
  duplicated and inserted chunks, under a random suffix;
- `dicom`: DICOM files built from random attributes (size, bits, sign, samples, photometric,
  frames, rescale, window, pixel data length, transfer syntax);
- `pillow`: images of random mode and size saved in every allowed format.
Every input must give a 64x64 uint8 image and finite model input, or a PneumoError (one clear
line for the user). Anything else, or an input taking over --hang seconds, is a crash: it is
saved under --crashes and listed. Exit status 1 when there was one. The rounds are time-bound:
hypothesis runs `--examples` inputs per round, round after round, until the time is up.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the corpus' synthetic picture and DICOM factory

from corpus import picture  # noqa: E402
from dicom_factory import RLELossless, make_dicom, twelve_bit  # noqa: E402
from pneumocxr.data.decode import load_image  # noqa: E402
from pneumocxr.data.preprocessing import Preprocessing  # noqa: E402
from pneumocxr.data.transforms import prepare_batch  # noqa: E402
from pneumocxr.errors import PneumoError  # noqa: E402

SIZE = 64
PREP = Preprocessing(image_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3)
SUFFIXES = [".jpeg", ".png", ".dcm", ".gif", ".tiff", ".bmp", ".webp", ""]
PYDICOM_SEEDS = [
    "CT_small.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_rle_2frame.dcm",
    "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "rtdose.dcm",
]
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF]  # fmt: skip


class Hang(Exception):
    pass


class RawWarning(Exception):
    pass


def _alarm(*_):
    raise Hang()


class Fuzzer:
    def __init__(self, work: Path, crashes: Path, hang: float):
        self.work, self.crashes, self.hang = work, crashes, hang
        self.executions = {"mutated": 0, "dicom": 0, "pillow": 0}
        self.refused = 0
        self.found: dict[str, dict] = {}
        self.slowest = 0.0

    def check(self, target: str, data: bytes, suffix: str) -> None:
        """Decode and preprocess one input; record it if it breaks the contract."""
        path = self.work / f"input{suffix}"
        path.write_bytes(data)
        self.executions[target] += 1
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, self.hang)
        try:
            with warnings.catch_warnings(record=True) as shown:
                warnings.filterwarnings("always", append=True)  # after the library's own
                try:
                    image = load_image(path, SIZE)
                    assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8, image.shape
                    batch = prepare_batch(torch.from_numpy(image)[None, None], PREP)
                    assert torch.isfinite(batch).all(), "non-finite model input"
                except PneumoError:
                    self.refused += 1
            if shown:  # a raw warning would reach the user's terminal
                raise RawWarning(f"{shown[0].category.__name__}: {shown[0].message}")
        except Exception as err:  # the contract is broken: keep the input
            self._record(target, data, suffix, err)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.slowest = max(self.slowest, time.perf_counter() - start)

    def _record(self, target: str, data: bytes, suffix: str, err: Exception) -> None:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        key = f"{type(err).__name__} at {Path(frame.filename).name}:{frame.lineno}"
        if key in self.found:
            self.found[key]["count"] += 1
            return
        self.crashes.mkdir(parents=True, exist_ok=True)
        name = f"crash-{len(self.found) + 1}{suffix}"
        (self.crashes / name).write_bytes(data)
        message = str(err).splitlines()[0][:200] if str(err) else ""
        self.found[key] = {"target": target, "error": message, "input": name, "count": 1}


# -- seeds and strategies -------------------------------------------------------------------
def seed_files(folder: Path) -> list[tuple[str, bytes]]:
    gray = Image.fromarray(picture(96, 80))
    seeds = []
    for fmt, suffix in (("JPEG", ".jpeg"), ("PNG", ".png"), ("GIF", ".gif"), ("BMP", ".bmp"),
                        ("TIFF", ".tiff"), ("WEBP", ".webp")):  # fmt: skip
        path = folder / f"seed{suffix}"
        gray.save(path, format=fmt)
        seeds.append((suffix, path.read_bytes()))
    deep = folder / "seed16.png"
    Image.fromarray(twelve_bit(picture(96, 80))).save(deep)
    seeds.append((".png", deep.read_bytes()))
    stored = twelve_bit(picture(96, 80))
    for name, options in (("plain", {}), ("rle", {"compress": RLELossless}),
                          ("mono1", {"photometric": "MONOCHROME1"})):  # fmt: skip
        path = make_dicom(folder / f"{name}.dcm", stored, **options)
        seeds.append((".dcm", path.read_bytes()))
    from pydicom.data import get_testdata_file

    for name in PYDICOM_SEEDS:
        path = get_testdata_file(name)
        if path:
            seeds.append((".dcm", Path(path).read_bytes()))
    return seeds


def mutate(data: bytes, steps: list[tuple]) -> bytes:
    out = bytearray(data)
    for op, position, value in steps:
        if not out:
            break
        at = position % len(out)
        if op == "flip":
            out[at] ^= 1 << (value % 8)
        elif op == "byte":
            out[at] = value % 256
        elif op == "int":
            number = INTERESTING[value % len(INTERESTING)]
            width, order = (2, "big") if value % 4 == 0 else (4, "little") if value % 4 == 1 else (
                (2, "little") if value % 4 == 2 else (4, "big"))  # fmt: skip
            out[at : at + width] = (number % (1 << (8 * width))).to_bytes(width, order)
        elif op == "cut":
            del out[at:]
        elif op == "delete":
            del out[at : at + 1 + value % 256]
        elif op == "copy":
            out[at:at] = out[value % len(out) : value % len(out) + 1 + value % 512]
        elif op == "insert":
            out[at:at] = bytes([value % 256]) * (1 + value % 64)
    return bytes(out)


POSITION = st.one_of(st.integers(0, 600), st.integers(0, 2**31))  # headers come first
STEP = st.tuples(
    st.sampled_from(["flip", "byte", "int", "cut", "delete", "copy", "insert"]),
    POSITION,
    st.integers(0, 2**16),
)


def fuzz_mutated(fuzzer: Fuzzer, seeds, examples: int, round_seed: int) -> None:
    @seed(round_seed)
    @settings(**_settings(examples))
    @given(
        st.sampled_from(seeds), st.lists(STEP, min_size=1, max_size=8), st.sampled_from(SUFFIXES)
    )
    def run(source, steps, suffix):
        fuzzer.check("mutated", mutate(source[1], steps), suffix or source[0])

    run()


def fuzz_dicom(fuzzer: Fuzzer, examples: int, round_seed: int) -> None:
    syntaxes = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2",
                "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90",
                "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.100", "1.2.3.4"]  # fmt: skip
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**40), 2**40)
    )

    @seed(round_seed)
    @settings(**_settings(examples))
    @given(
        rows=st.one_of(st.integers(0, 300), st.sampled_from([65535, 40000])),
        cols=st.one_of(st.integers(0, 300), st.sampled_from([65535, 40000])),
        bits=st.sampled_from([1, 8, 12, 16, 32, 64, 0, 7, 17]),
        stored=st.integers(0, 40),
        signed=st.integers(0, 2),
        samples=st.sampled_from([1, 3, 4, 0, 2]),
        photometric=st.sampled_from(
            [
                "MONOCHROME1",
                "MONOCHROME2",
                "RGB",
                "PALETTE COLOR",
                "YBR_FULL",
                "YBR_FULL_422",
                "",
                "NONSENSE",
            ]
        ),  # fmt: skip
        frames=st.sampled_from([None, 1, 2, 3, 0, -1, 10**6]),
        slope=st.one_of(st.none(), numbers),
        intercept=st.one_of(st.none(), numbers),
        window=st.one_of(st.none(), st.tuples(numbers, numbers)),
        length=st.one_of(st.integers(0, 200_000), st.just(-1)),
        syntax=st.sampled_from(syntaxes),
        filler=st.integers(0, 255),
    )
    def run(rows, cols, bits, stored, signed, samples, photometric, frames, slope, intercept,
            window, length, syntax, filler):  # fmt: skip
        try:  # pydicom refuses to build or write some combinations: those are no input
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # about the values it is given to write
                data = _build_dicom(fuzzer.work / "built.dcm", locals(), syntax in syntaxes[:3])
        except Exception:
            return
        fuzzer.check("dicom", data, ".dcm")

    run()


def _build_dicom(path: Path, a: dict, native: bool) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = a["syntax"]
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", generate_uid()
    ds.Modality, ds.PatientName = "CR", "Fuzz^Case"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = a["rows"], a["cols"], a["samples"]
    ds.BitsAllocated, ds.BitsStored = a["bits"], a["stored"]
    ds.HighBit, ds.PixelRepresentation = max(a["stored"] - 1, 0), a["signed"]
    ds.PhotometricInterpretation = a["photometric"]
    if a["frames"] is not None:
        ds.NumberOfFrames = a["frames"]
    if a["slope"] is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(a["slope"]), _ds(a["intercept"] or 0)
    if a["window"] is not None:
        ds.WindowCenter, ds.WindowWidth = _ds(a["window"][0]), _ds(a["window"][1])
    length = a["length"]
    if length < 0:  # as much as the header asks for, within reason
        wanted = a["rows"] * a["cols"] * max(a["samples"], 1) * max(a["bits"], 8) // 8
        length = min(max(wanted, 0), 2_000_000)
    pixels = bytes([a["filler"]]) * length + np.random.default_rng(length).bytes(length % 97)
    ds.PixelData = pixels if native else encapsulate([pixels or b"\x00\x00"])
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def _ds(value) -> str:
    """A Decimal String as a writer would put it: up to 16 characters, whatever they mean."""
    return str(value)[:16]


def fuzz_pillow(fuzzer: Fuzzer, examples: int, round_seed: int) -> None:
    modes = ["L", "I;16", "I", "F", "RGB", "RGBA", "P", "LA", "1", "CMYK"]
    formats = ["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"]

    @seed(round_seed)
    @settings(**_settings(examples))
    @given(
        mode=st.sampled_from(modes),
        fmt=st.sampled_from(formats),
        width=st.integers(1, 400),
        height=st.integers(1, 400),
        fill=st.one_of(st.integers(0, 255), st.floats(allow_nan=True, allow_infinity=True)),
        noise=st.booleans(),
    )
    def run(mode, fmt, width, height, fill, noise):
        values = np.full((height, width), fill, dtype=np.float64)
        if noise:
            values = values + np.random.default_rng(width).normal(0, 50, values.shape)
        try:
            with np.errstate(all="ignore"):
                base = Image.fromarray(values.astype(np.float32), "F")
            image = base if mode == "F" else base.convert("I").convert(mode)
            path = fuzzer.work / f"made.{fmt.lower()}"
            image.save(path, format=fmt)
        except Exception:  # Pillow cannot write that mode in that format: not an input
            return
        fuzzer.check("pillow", path.read_bytes(), path.suffix)

    run()


def _settings(examples: int) -> dict:
    return {
        "max_examples": examples,
        "deadline": None,
        "database": None,
        "phases": [Phase.generate],  # no shrinking: a crash is kept as the input that made it
        "suppress_health_check": list(HealthCheck),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--examples", type=int, default=100, help="inputs per round")
    parser.add_argument("--hang", type=float, default=10, help="seconds one input may take")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--seed", type=int, default=0, help="first round's seed")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    import pydicom

    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE  # build anything
    torch.set_num_threads(1)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fuzzer = Fuzzer(work, args.crashes, args.hang)
        seeds = seed_files(work)
        rounds = 0
        while time.monotonic() - start < args.seconds:
            round_seed = args.seed + rounds
            target = (fuzz_mutated, fuzz_dicom, fuzz_pillow)[rounds % 3]
            extra = (seeds,) if target is fuzz_mutated else ()
            target(fuzzer, *extra, args.examples, round_seed)
            rounds += 1
    summary = {
        "seconds": round(time.monotonic() - start, 1),
        "executions": sum(fuzzer.executions.values()),
        "by_target": fuzzer.executions,
        "refused": fuzzer.refused,
        "slowest_input_s": round(fuzzer.slowest, 3),
        "crashes": fuzzer.found,
        "pillow": Image.__version__,
        "pydicom": __import__("pydicom").__version__,
    }
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 1 if fuzzer.found else 0


if __name__ == "__main__":
    sys.exit(main())
