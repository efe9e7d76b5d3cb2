"""The third hostile round's kinds of input (issue 22), added to tests/corpus.py's corpus:
file and folder names holding markup or non-Latin letters, models whose outputs are no answer
(NaN logits from finite weights, ONNX graphs giving a column of logits or NaN), a --model path of
5,000 characters, and labels CSVs naming a column twice or saved as UTF-16.

The model builders serve tests/test_model_outputs.py too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from corpus import Case, _data_folder, _pictures

MARKUP = "<img src=x onerror=alert(1)>"  # a name a report or a page could run as HTML
NON_LATIN = "рентген"  # Cyrillic: not in latin-1


def more_cases(folder: Path, jpeg: bytes) -> list[Case]:
    images, models = folder / "images", folder / "models"
    (images / f"{MARKUP}.jpeg").write_bytes(jpeg)
    (images / f"{NON_LATIN}.jpeg").write_bytes(jpeg)
    cases = [
        Case("markup_name", images / f"{MARKUP}.jpeg", "image", "ok", what="HTML as a name"),
        Case("non_latin_name", images / f"{NON_LATIN}.jpeg", "image", "ok", what="Cyrillic"),
        Case("model_nan_logits", nan_weights_model(models / "nan_logits"), "model", "refuse",
             what="finite weights whose products overflow to NaN"),
        Case("model_path_5000_chars", models / ("m" * 5000), "model", "refuse"),
        Case("folder_markup_name", _data_folder(folder / "folders" / MARKUP), "folder", "ok"),
    ]  # fmt: skip
    cases += _onnx_cases(models)
    return cases + _labels_cases(folder / "labels")


def _onnx_cases(models: Path) -> list[Case]:
    try:
        exported = onnx_export(models / "onnx_good")
    except ImportError:  # without the [onnx] extra there is no ONNX model to damage
        return []
    return [
        Case(f"model_onnx_{name.replace('-', '_')}", rewired(exported, models / name, name),
             "model", "refuse", what="an ONNX graph rewired")
        for name in ("column-of-logits", "nan-logits")  # wrong for one image too
    ]  # fmt: skip


def _labels_cases(out: Path) -> list[Case]:
    good = "".join(f"images/{i:04d}.jpeg,{'NORMAL' if i <= 6 else 'PNEUMONIA'}\n" for i in (1, 7))
    made = [
        ("labels_repeated_column", ("path,label, path\n" + good).encode(),
         "has the column 'path' twice"),
        ("labels_utf16", ("path,label\n" + good).encode("utf-16-le"), "looks like UTF-16"),
    ]  # fmt: skip
    cases = []
    for name, data, said in made:
        _pictures(out / name / "images", 12)
        (out / name / "labels.csv").write_bytes(data)
        cases.append(Case(name, out / name / "labels.csv", "labels", "refuse", said=said))
    return cases


# -- models whose outputs are no answer --------------------------------------------------------
def nan_weights_model(folder: Path, size: int = 32) -> Path:
    """A SmallNet whose weights are all finite, but whose last layer's products overflow to
    +inf and -inf, which add up to NaN: hidden units of 2 times weights of +-3e38."""
    import torch

    from pneumocxr.artifact.save import save_model
    from pneumocxr.networks.smallnet import SmallNet

    network = SmallNet(size)
    hidden, last = network.head[1], network.head[3]
    with torch.no_grad():
        hidden.weight.zero_()
        hidden.bias.fill_(2.0)
        last.weight.copy_(torch.tensor([3e38, -3e38]).repeat(last.weight.shape[1] // 2)[None])
    save_model(network, folder)
    return folder


def onnx_export(folder: Path) -> Path:
    """A real ONNX export of a small SmallNet (random weights, 32 px)."""
    import onnx  # noqa: F401 (ImportError without the [onnx] extra)

    from pneumocxr.artifact.onnx_save import save_onnx
    from pneumocxr.networks.smallnet import SmallNet
    from pneumocxr.predictors.single import NetworkPredictor

    save_onnx(NetworkPredictor(SmallNet(32)), folder, {}, "smallnet")
    return folder


def rewiring(name: str) -> list:
    """The nodes that compute a damaged graph's `logit` from the real one (`raw`)."""
    from onnx import TensorProto, helper

    def constant(label: str, values, kind=TensorProto.INT64):
        tensor = helper.make_tensor(label, kind, [len(values)], values)
        return helper.make_node("Constant", [], [label], value=tensor)

    return {
        "fewer-logits": lambda: [constant("s", [0]), constant("e", [1]),
                                 helper.make_node("Slice", ["raw", "s", "e"], ["logit"])],
        "nan-logits": lambda: [constant("nan", [float("nan")], TensorProto.FLOAT),
                               helper.make_node("Mul", ["raw", "nan"], ["logit"])],
        "column-of-logits": lambda: [constant("axis", [1]),
                                     helper.make_node("Unsqueeze", ["raw", "axis"], ["logit"])],
        "integer-logits": lambda: [helper.make_node("Cast", ["raw"], ["logit"],
                                                    to=TensorProto.INT64)],
    }[name]()  # fmt: skip


REWIRINGS = ["fewer-logits", "nan-logits", "column-of-logits", "integer-logits"]


def rewired(source: Path, folder: Path, name: str) -> Path:
    """A copy of an ONNX export whose `logit` output is `rewiring(name)` of the real one, with
    model.json's hash made to agree (the graph's own answer record is untouched): what a
    damaged or hostile export may compute."""
    import onnx
    from onnx import TensorProto

    shutil.copytree(source, folder)
    proto = onnx.load(folder / "model.onnx")
    for node in proto.graph.node:
        node.output[:] = ["raw" if value == "logit" else value for value in node.output]
        node.input[:] = ["raw" if value == "logit" else value for value in node.input]
    nodes = rewiring(name)
    proto.graph.node.extend(nodes)
    if nodes[-1].op_type == "Cast":
        proto.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    (folder / "model.onnx").write_bytes(proto.SerializeToString())
    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["sha256"] = hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))
    return folder
