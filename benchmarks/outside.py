"""Images that are not pediatric frontal chest X-rays, built from what Python packages ship.

    python benchmarks/outside.py OUT [--set dev|heldout|all]

writes OUT/<category>/<name>.<png|dcm> and OUT/index.csv (path, category, source). Nothing is
downloaded: every picture comes from an installed package (pydicom's and pydicom-data's test
files, scikit-image's, scikit-learn's and Matplotlib's sample images), is drawn here (documents,
charts, synthetic images), or is an external X-ray turned (rotated, negated, cropped).

Two sets, for honesty: `dev` is what the scope check's method was chosen by; `heldout` (other
pictures of the same kinds: scikit-image's photos and textures, other documents, other seeds)
was measured once, after the method was fixed. The scope check is fitted on neither: it sees
only its model's training X-rays (docs/VALIDATION.md, "Out of scope").
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = (ROOT / ".." / "shared" / "data" / "external").resolve()

# DICOM test files of other modalities and body parts, one per distinct picture.
PYDICOM_FILES = {
    "dev": ["CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm", "JPEG2000.dcm",
            "examples_rgb_color.dcm", "examples_palette.dcm", "image_dfl.dcm", "SC_rgb_jpeg.dcm",
            "J2K_pixelrep_mismatch.dcm"],
    "heldout": ["693_J2KI.dcm", "examples_jpeg2k.dcm", "GDCMJ2K_TextGBR.dcm"],
}  # fmt: skip
PYDICOM_DATA_FILES = {
    "dev": ["RG3_UNCR.dcm", "MR2_UNCR.dcm", "US1_UNCR.dcm", "OBXXXX1A.dcm", "693_UNCR.dcm",
            "mlut_18.dcm", "SC_rgb.dcm"],
    "heldout": ["MR-SIEMENS-DICOM-WithOverlays.dcm", "eCT_Supplemental.dcm", "JPEG-LL.dcm",
                "color-pl.dcm", "gdcm-US-ALOKA-16.dcm", "explicit_VR-UN.dcm",
                "JPGLosslessP14SV1_1s_1f_8b.dcm", "emri_small.dcm", "vlut_04.dcm"],
}  # fmt: skip
# The adult chest radiograph among them: reported, never fitted on, not out of scope.
ADULT_CHEST = "RG1_UNCR.dcm"
SKIMAGE_PHOTOS = {
    "dev": ["camera.png", "coffee.png", "chelsea.png", "coins.png", "moon.png"],
    "heldout": ["astronaut.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
                "retina.jpg", "cell.png", "ihc.png", "clock_motion.png"],
}  # fmt: skip
SKIMAGE_DRAWINGS = {
    "dev": ["page.png", "text.png", "logo.png"],
    "heldout": ["brick.png", "grass.png", "gravel.png", "horse.png", "phantom.png", "color.png",
                "chessboard_GRAY.png", "microaneurysms.png"],
}  # fmt: skip


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


class Writer:
    def __init__(self, out: Path):
        self.out, self.rows = out, []

    def image(self, category: str, name: str, pixels, source: str) -> None:
        folder = self.out / category
        folder.mkdir(parents=True, exist_ok=True)
        image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
        path = folder / f"{name}.png"
        image.save(path)
        self.rows.append((path, category, source))

    def copy(self, category: str, source_file: Path, source: str) -> None:
        folder = self.out / category
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / source_file.name
        shutil.copy(source_file, path)
        self.rows.append((path, category, source))

    def index(self) -> Path:
        with open(self.out / "index.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "category", "source"])
            for path, category, source in self.rows:
                writer.writerow([path.relative_to(self.out).as_posix(), category, source])
        return self.out / "index.csv"


def dicom_files(writer: Writer, which: str) -> None:
    import pydicom

    test_files = Path(pydicom.__file__).parent / "data" / "test_files"
    for name in PYDICOM_FILES[which]:
        writer.copy("dicom_other", test_files / name, "pydicom test file")
    store = _package_dir("data_store")  # the pydicom-data package
    if store is None:
        print("pydicom-data is not installed: its DICOM files are left out", file=sys.stderr)
        return
    for name in PYDICOM_DATA_FILES[which]:
        writer.copy("dicom_other", store / "data" / name, "pydicom-data test file")


def radiographs_without_header(writer: Writer, which: str) -> None:
    """Other body parts as plain pictures (no DICOM header to say what they are)."""
    from pneumocxr.data.dicom import read_dicom_gray

    store = _package_dir("data_store")
    if store is None:
        return
    leg = read_dicom_gray(store / "data" / "RG3_UNCR.dcm")
    if which == "dev":
        writer.image("radiograph_other", "lower_leg", leg, "pydicom-data RG3 as PNG")
        return
    h, w = leg.shape
    writer.image("radiograph_other", "lower_leg_top", leg[: h // 2], "pydicom-data RG3, top")
    writer.image("radiograph_other", "lower_leg_mirror", leg[:, ::-1], "pydicom-data RG3 mirrored")


def photos(writer: Writer, which: str) -> None:
    skimage = _package_dir("skimage")
    if skimage is not None:
        for name in SKIMAGE_PHOTOS[which]:
            writer.copy("photo", skimage / "data" / name, "scikit-image")
    else:
        print("scikit-image is not installed: its photos are left out", file=sys.stderr)
    if which == "dev":
        from sklearn.datasets import load_sample_images

        for name, pixels in zip(("china", "flower"), load_sample_images().images):
            writer.image("photo", name, pixels, "scikit-learn sample image")
        import matplotlib

        sample = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        writer.copy("photo", sample, "Matplotlib sample data")
    else:
        faces = np.load(skimage / "data" / "lfw_subset.npy") if skimage else []
        for i, face in enumerate(faces[:10]):
            writer.image("photo", f"face_{i}", np.round(face * 255).astype(np.uint8),
                         "scikit-image LFW subset")  # fmt: skip


def drawings(writer: Writer, which: str) -> None:
    skimage = _package_dir("skimage")
    if skimage is not None:
        for name in SKIMAGE_DRAWINGS[which]:
            writer.copy("drawing", skimage / "data" / name, "scikit-image")
    if which == "dev":
        import matplotlib

        writer.copy("drawing", Path(matplotlib.get_data_path()) / "sample_data" / "logo2.png",
                    "Matplotlib sample data")  # fmt: skip


WORDS = [
    "patient", "chest", "radiograph", "pneumonia", "normal", "report", "findings", "impression",
    "lungs", "clear", "heart", "size", "within", "limits", "no", "effusion", "consolidation",
]  # fmt: skip


def _chart(ax, kind: str, rng) -> None:
    x = np.arange(20)
    if kind == "line":
        ax.plot(x, rng.random((20, 3)).cumsum(0))
    elif kind == "bar":
        ax.bar(x, rng.random(20))
    elif kind == "scatter":
        ax.scatter(rng.random(200), rng.random(200), c=rng.random(200))
    else:
        ax.hist(rng.normal(size=1000), bins=30)


def documents_and_charts(writer: Writer, which: str) -> None:
    """Pages of text and charts, drawn with Matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1 if which == "dev" else 2)
    words = WORDS
    kinds = ["page", "line", "bar", "scatter", "table", "histogram"]
    for i in range(12 if which == "dev" else 8):
        kind = kinds[i % len(kinds)]
        fig = plt.figure(figsize=(4 + rng.random() * 4, 4 + rng.random() * 4))
        if kind == "page":
            text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(30))
            fig.text(0.05, 0.95, text, va="top", fontsize=7 + i % 4, family="serif")
        elif kind == "table":
            ax = fig.add_subplot()
            ax.axis("off")
            ax.table(cellText=np.round(rng.random((10, 4)), 2).astype(str), loc="center")
        else:
            ax = fig.add_subplot()
            _chart(ax, kind, rng)
            ax.set_title(" ".join(rng.choice(words, 3)))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        writer.image("document", f"{kind}_{i}", Image.open(buffer).convert("RGB"), "Matplotlib")


def synthetic(writer: Writer, which: str) -> None:
    rng = np.random.default_rng(10 if which == "dev" else 20)
    side = 256
    levels = (0, 128, 255, 60) if which == "dev" else (20, 200, 96)
    for value in levels:
        writer.image("synthetic", f"flat_{value}", np.full((side, side), value, np.uint8), "drawn")
    writer.image("synthetic", "uniform_noise", rng.integers(0, 256, (side, side), dtype=np.uint8),
                 "drawn")  # fmt: skip
    gauss = np.clip(rng.normal(128, 40, (side, side)), 0, 255).astype(np.uint8)
    writer.image("synthetic", "gaussian_noise", gauss, "drawn")
    ramp = np.tile(np.linspace(0, 255, side, dtype=np.uint8), (side, 1))
    writer.image("synthetic", "gradient", ramp if which == "dev" else ramp.T, "drawn")
    squares = 8 if which == "dev" else 4
    board = (np.indices((side, side)) // (side // squares)).sum(0) % 2 * 255
    writer.image("synthetic", "checkerboard", board.astype(np.uint8), "drawn")
    colour = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    writer.image("synthetic", "colour_noise", colour, "drawn")
    blobs = np.zeros((side, side))
    yy, xx = np.mgrid[:side, :side]
    for _ in range(6):
        cy, cx, r = rng.integers(0, side, 2).tolist() + [int(rng.integers(10, 60))]
        blobs += ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * rng.integers(60, 200)
    writer.image("synthetic", "blobs", np.clip(blobs, 0, 255).astype(np.uint8), "drawn")
    from sklearn.datasets import load_digits

    digits = load_digits().images
    picks = (0, 7, 13) if which == "dev" else (21, 42)
    for i in picks:
        digit = Image.fromarray((digits[i] * 255 / 16).astype(np.uint8)).resize((side, side))
        writer.image("synthetic", f"digit_{i}", digit, "scikit-learn digits, scaled up")


def turned_xrays(writer: Writer, which: str, per_kind: int = 10) -> None:
    """External X-rays rotated by 90 or 180 degrees, made negative, or cropped to a corner."""
    files = sorted(EXTERNAL.rglob("*.jpeg"))
    rng = np.random.default_rng(0)
    picks = rng.permutation(len(files))
    chosen = picks[:per_kind] if which == "dev" else picks[per_kind : 2 * per_kind]
    for n, i in enumerate(chosen):
        image = ImageOps.grayscale(Image.open(files[i]))
        w, h = image.size
        corner = [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)][n % 4]
        turned = {
            "rotated_90": image.rotate(90 if n % 2 else 270, expand=True),
            "rotated_180": image.rotate(180),
            "negative": ImageOps.invert(image),
            "corner_crop": image.crop((*corner, corner[0] + w // 2, corner[1] + h // 2)),
        }
        for kind, picture in turned.items():
            writer.image(f"xray_{kind}", f"{files[i].stem}", picture, "external X-ray, turned")


def adult_chest(out: Path) -> Path | None:
    """The adult chest radiograph (pydicom-data's RG1): to report, not to fit or refuse."""
    store = _package_dir("data_store")
    if store is None:
        return None
    folder = out / "adult_chest"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(store / "data" / ADULT_CHEST, folder / ADULT_CHEST)
    return folder / ADULT_CHEST


BUILDERS = [dicom_files, radiographs_without_header, photos, drawings, documents_and_charts,
            synthetic, turned_xrays]  # fmt: skip


def build(out: Path, which: str) -> Path:
    writer = Writer(out)
    for builder in BUILDERS:
        builder(writer, which)
    return writer.index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", choices=("dev", "heldout"), default="dev")
    args = parser.parse_args()
    print(build(args.out, args.set))
    print(adult_chest(args.out))


if __name__ == "__main__":
    main()
