"""report.html is shared with colleagues: every string a run folder holds (its name, its models'
names, config.json, model.json, the summary, the classification report, comparison.json)
arrives HTML-escaped, and a Content-Security-Policy stops any script, in a real Chromium too;
`report` also takes a folder made by `train`."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from conftest import cli_batch, launch_chromium
from pneumocxr.report.html import write_report

FOLDER = "<img src=x onerror=alert(1)>"  # a data folder's name (no slash: a name can hold it)
MODEL = "'\"><svg onload=alert(2)>"
PAYLOAD = "</pre></td>\"'><script>alert(3)</script><img src=x onerror=alert(4)>"
# fmt: off
METRICS = ["n", "accuracy", "auc", "sensitivity", "specificity", "ppv", "npv", "f1", "brier",
           "out_of_scope", "ece", "referred", "answered_accuracy", "answered_sensitivity"]
# Every tag the template writes: anything else came from the data.
TEMPLATE_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3",
                 "p", "code", "nav", "a", "div", "strong", "em", "table", "tr", "th", "td",
                 "figure", "img", "figcaption", "details", "summary", "pre", "br", "small"}
# fmt: on


def poisoned(value):
    """The same structure with every value (text, number, flag, null) replaced by markup."""
    if isinstance(value, dict):
        return {key: poisoned(v) for key, v in value.items()}
    if isinstance(value, list):
        return [poisoned(v) for v in value]
    return PAYLOAD


def hostile_run(source: Path, root: Path) -> Path:
    """A run folder whose every name and text is markup, built from a real run's files."""
    model = root / FOLDER / MODEL
    (model / "evaluation").mkdir(parents=True)
    config = json.loads((source / "config.json").read_text())
    config["images"][PAYLOAD] = config["images"]["train"]  # a split named with markup
    (model / "config.json").write_text(json.dumps(poisoned(config)))
    (model / "model.json").write_text(
        json.dumps(poisoned(json.loads((source / "model.json").read_text())))
    )
    (model / "summary.txt").write_text(PAYLOAD)
    (model / "evaluation" / "report.txt").write_text(PAYLOAD)
    shutil.copy(source / "history.png", model / "history.png")
    row = {"name": MODEL, **{m: PAYLOAD for m in METRICS}}
    row.update({f"{m}_ci": [PAYLOAD, PAYLOAD] for m in METRICS})
    row.update(external=dict(row), gap={m: PAYLOAD for m in METRICS})
    (root / FOLDER / "comparison").mkdir()
    (root / FOLDER / "comparison" / "comparison.json").write_text(json.dumps([row]))
    return root / FOLDER


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.sources = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self.sources += [value for name, value in attrs if name == "src"]


@pytest.fixture(scope="module")
def report(smallnet_run, tmp_path_factory) -> Path:
    return write_report(hostile_run(smallnet_run, tmp_path_factory.mktemp("hostile")))


def test_every_string_arrives_escaped(report):
    text = report.read_text()
    found = Elements()
    found.feed(text)
    assert found.tags <= TEMPLATE_TAGS, found.tags - TEMPLATE_TAGS
    assert not [a for a in found.attributes if a.startswith("on")]
    assert all(s.startswith("data:image/png;base64,") for s in found.sources)
    for shown in (FOLDER, MODEL, PAYLOAD):  # they reached the report, as text
        assert escape(shown) in text
    assert text.count(escape(PAYLOAD)) > 20  # config, model card, metrics, texts
    policy = '<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;'
    assert text.index(policy) < text.index("<title>")


def test_no_script_runs_in_chromium(report, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    # Had escaping failed, the policy alone must still stop scripts: the same report with
    # markup put in unescaped.
    unescaped = tmp_path / "unescaped.html"
    unescaped.write_text(report.read_text().replace("<main>", f"<main>{PAYLOAD}{FOLDER}", 1))
    dialogs = []
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        injected = page.eval_on_selector_all("script, svg, [onerror], [onload]", "e => e.length")
        heading = page.text_content("p.sub")
        page.goto(unescaped.resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(200)  # an onerror handler would fire after the image fails
        browser.close()
    assert injected == 0 and FOLDER in heading
    assert dialogs == []


def test_report_takes_a_train_run_and_a_folder_of_them(smallnet_run, tmp_path):
    skip = shutil.ignore_patterns("checkpoints", "tb", "*.safetensors")
    run = Path(shutil.copytree(smallnet_run, tmp_path / "runs" / smallnet_run.name, ignore=skip))
    alone, several = cli_batch([["report", run], ["report", run.parent]])
    for result in (alone, several):
        assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (run.parent / "report.html").is_file()
    assert "trained from scratch" in (run / "report.html").read_text()  # by its architecture
