"""The ``bdh-graph`` command line as a whole (help, version, errors, the library boundary) and its model commands:
info, generate, demo, train."""
from __future__ import annotations

import argparse
import ast
import io
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY as CONFIG, run_json, tiny_checkpoint

from bdh_graph.cli import build_parser, main
from bdh_graph.cli.demo import DEMO_SECTIONS
from bdh_graph.cli.model_commands import train_config
from bdh_graph.experiments.memory import memory_experiments
from bdh_graph.graphs import dense_neuron_graph, paper_edge_count
from bdh_graph.model.evaluation import bits_per_byte_by_position, next_byte_report
from bdh_graph.model.checkpoints import load_model
from bdh_graph.model.recipe import (BUNDLED_CARRIED, BUNDLED_CONFIG, BUNDLED_DAMPED, BUNDLED_DAMPED_CONFIG,
                                    BUNDLED_TRAINING)
from bdh_graph.network.recordings import load_recording
from bdh_graph.text import decode, default_documents, encode, split_documents_held_out

ROOT = Path(__file__).parent.parent


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path, 21, 5.0)


def usage_error(capsys, argv) -> str:
    """Run ``bdh-graph ARGV``, expect argparse to refuse it (exit status 2), and return stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2, argv
    return capsys.readouterr().err


def test_info_reports_sizes_and_the_scale_of_beta(capsys, checkpoint):
    info = run_json(capsys, "info", checkpoint)
    assert info["neurons"] == CONFIG.n_neurons == 64 and info["neurons_per_head"] == 32
    assert info["parameters"] == 2 * 2 * 16 * 32 + 64 * 16 + 2 * 256 * 16
    model = load_model(checkpoint)
    for which in "xy":
        scale = info["beta_scale"][f"G_{which}"]
        network = dense_neuron_graph(model, which, "exact")  # the network's wiring: the whole exact graph
        assert scale["network"]["largest"] == pytest.approx(np.abs(network).max(), rel=1e-12)
        assert scale["network"]["paper_edges"] == paper_edge_count(64)
        assert len(scale["heads"]) == 2
        for head, row in enumerate(scale["heads"]):
            A = dense_neuron_graph(model, which, "analysis", head)
            strongest = np.sort(A[A > 0])[::-1]
            assert row["largest"] == pytest.approx(np.abs(A).max(), rel=1e-12)
            assert row["paper_beta"] == pytest.approx(strongest[paper_edge_count(32) - 1], rel=1e-12)
    assert main(["info", checkpoint]) == 0
    text = capsys.readouterr().out
    assert "the scale of beta (a threshold keeps the edges with |G| >= beta)" in text
    assert "G_x (exact form, whole graph)" in text and "validate, step, memory --beta" in text


def test_generate_is_seeded_and_continues_the_prompt(capsys, checkpoint):
    a = run_json(capsys, "generate", checkpoint, "--prompt", "abc", "--max-new-tokens", "12", "--seed", "3")
    b = run_json(capsys, "generate", checkpoint, "--prompt", "abc", "--max-new-tokens", "12", "--seed", "3")
    other = run_json(capsys, "generate", checkpoint, "--prompt", "abc", "--max-new-tokens", "12", "--seed", "4")
    assert a["text"] == b["text"] and a["text"].startswith("abc")
    assert other["text"] != a["text"] and other["text"].startswith("abc")  # the seed is used, not ignored


def test_next_byte_report_against_the_parallel_form(checkpoint):
    model = load_model(checkpoint).double()
    tokens = encode("The quick brown fox jumps over the lazy dog.")
    report = next_byte_report(model, tokens, 4)
    logits, _ = model(tokens.unsqueeze(0))  # the parallel form: an independent computation of the same logits
    nats = F.cross_entropy(logits[0, :-1], tokens[1:], reduction="sum").item()
    assert report["bits_per_byte"] == pytest.approx(nats / math.log(2) / (len(tokens) - 1), rel=1e-9)
    probs = F.softmax(logits[0], -1)
    position = {decode(tokens[max(0, t - 24): t + 1]): t for t in range(len(tokens))}  # context -> position
    assert len(report["predictions"]) == 4
    for p in report["predictions"]:
        t = position[p["context"]]
        assert p["actual"] == chr(tokens[t + 1]) and 8 <= t < len(tokens) - 1
        assert [c for c, _ in p["top3"]] == [decode([i]) for i in torch.topk(probs[t], 3).indices.tolist()]
        assert [q for _, q in p["top3"]] == pytest.approx(torch.topk(probs[t], 3).values.tolist(), abs=1e-4)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``bdh-graph demo --json`` on a tiny checkpoint: (its checkpoint, output folder, stdout, stderr)."""
    folder = tmp_path_factory.mktemp("demo_run")
    checkpoint = tiny_checkpoint(folder, 21, 5.0)
    (folder / "t.txt").write_text("The quick brown fox jumps over the dog.", encoding="utf-8")
    out, printed, err = folder / "demo", io.StringIO(), io.StringIO()
    with redirect_stdout(printed), redirect_stderr(err):
        assert main(["demo", checkpoint, "--text", str(folder / "t.txt"), "--out", str(out), "--json"]) == 0
    return checkpoint, out, printed.getvalue(), err.getvalue()


def test_demo_announces_each_section_and_writes_its_files(demo_run):
    checkpoint, out, printed, err = demo_run
    report = json.loads(printed)
    steps = len(DEMO_SECTIONS) + 2
    announced = [line for line in err.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] + "]" for line in announced] == [f"[{k}/{steps}]" for k in range(1, steps + 1)]
    assert announced[0].startswith(f"[1/{steps}] long text:")  # the demo opens with the long-text result
    for line, section in zip(announced[2:], DEMO_SECTIONS):
        assert line.startswith(f"[{DEMO_SECTIONS.index(section) + 3}/{steps}] {section.name}:") and str(out) in line
    model = load_model(checkpoint)
    documents, held_out = split_documents_held_out(default_documents())
    assert report["long_text"]["bits_per_byte"] == bits_per_byte_by_position(model, held_out)["bits_per_byte"]
    assert report["long_text"]["segments"] == len(held_out) // 4096
    horizon = memory_experiments(model, encode("The quick brown fox jumps over the dog."), layers=[], heads=[],
                                 strongest=[], repeat_bytes=2, tensor=False).horizon
    assert [h["bits_per_byte"] for h in report["memory"]["horizon"]] == [r.bits_per_byte for r in horizon]
    assert report["tokens"] == 39 and len(report["predictions"]) == 5
    assert report["network"]["exact"]["max_rel"] < 1e-9  # the hub network equals the tensor model
    assert report["spikes"]["validation"]["spike_steps"] == 16
    recording = load_recording(out / "network" / "recordings.npz")
    assert recording.tokens.tolist() == list(b"The quick brown fox jumps over the dog.")
    for name in ("long_text.png", "memory_horizon.png", "degrees.png", "network/raster.png", "network/sparsity.png",
                 "network/synapses.png", "spikes/spike_raster.png", "spikes/population_rate.png",
                 "concept_synapse.png", "concept_synapse_test.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name  # the PNG signature
    assert zipfile.is_zipfile(out / "spikes" / "spikes.npz")  # an .npz is a zip archive of .npy files
    with np.load(out / "spikes" / "spikes.npz") as spikes:
        assert spikes.files
    assert report["synapses"]["figures"] == [str(out / "concept_synapse.png"), str(out / "concept_synapse_test.png")]
    pruned = report["network"]["summary"].splitlines()[1]  # the pruned network's fidelity, beside the exact one's
    assert "(neuron wiring, an approximation)" in pruned and "(exact hub wiring: " in pruned
    assert "KL: nats per byte lost" in report["network"]["summary"]
    parts = ["long_text", "recurrent", *(section.name for section in DEMO_SECTIONS)]
    summaries = [report[name]["summary"] if name != "recurrent" else report["summary"] for name in parts]
    for k, summary in enumerate(summaries):  # each part's result is printed right after its announcement
        assert err.index(announced[k]) < err.index(summary) < (err.index(announced[k + 1]) if k + 1 < steps else
                                                               len(err))
    assert json.loads((out / "results.json").read_text()) == report
    check_demo_page(out, report, parts, [line.split("] ", 1)[1].removesuffix(" ...") for line in announced])


NUMBER = re.compile(r"(?<![\w/.\-])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?(?![\w/])")  # not inside a word or a path
STATED_FOR_COMPARISON = {"spikes": ["100%"]}  # the exact rate network's top-1 agreement, stated beside the spikes'


class DemoPage(HTMLParser):
    """The parts of the demo's page in order, (id, result in words), and the files its images load."""

    def __init__(self, html: str):
        super().__init__()
        self.html, self.parts, self.images, self._words = html, [], [], False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.parts.append((attrs["id"], ""))
        elif tag in ("img", "link", "script"):
            self.images.append(attrs.get("src") or attrs.get("href"))
        self._words = tag == "pre" and attrs.get("class") == "result"

    def handle_endtag(self, tag):
        self._words = self._words and tag != "pre"

    def handle_data(self, data):
        if self._words:
            self.parts[-1] = (self.parts[-1][0], self.parts[-1][1] + data)


def numbers_in(value) -> list[float]:
    """Every number of a part's JSON result (numbers, and numbers written in its strings such as addresses), but
    not those of its ``summary``, the words the page shows."""
    if isinstance(value, dict):
        return [x for key, v in value.items() if key != "summary" for x in numbers_in(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers_in(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return [float(m.rstrip("%")) for m in NUMBER.findall(value)] if isinstance(value, str) else []


def equals_one_of(printed: str, values: list[float]) -> bool:
    """``printed`` (``1.23``, ``4.6e-15``, ``48.5%``) is one of ``values`` rounded to the digits it shows."""
    digits = printed.rstrip("%")
    mantissa, _, exponent = digits.partition("e")
    half_unit = 0.5 * 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))
    scale = 100.0 if printed.endswith("%") else 1.0
    return any(abs(v * scale - float(digits)) <= half_unit * (1 + 1e-9) for v in values)


def check_demo_page(out: Path, report: dict, parts: list[str], announcements: list[str]) -> None:
    """The page shows the parts in the order they ran, with every figure the demo wrote; every file it loads exists
    beside it, nothing is fetched
    from a network; and every number in a part's words is one of that part's JSON results (or of what the part
    announced it would do, e.g. "head 0"), at the precision shown."""
    page = DemoPage((out / "index.html").read_text(encoding="utf-8"))
    assert [name for name, _ in page.parts] == parts
    assert sorted(page.images) == sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))  # every figure
    assert all((out / src).is_file() and ":" not in src for src in page.images)  # relative, present: no network
    assert "http://" not in page.html and "https://" not in page.html
    for (name, words), announced in zip(page.parts, announcements):
        results = ({k: v for k, v in report.items() if k not in parts} if name == "recurrent" else report[name])
        assert words == results["summary"]
        allowed = numbers_in(results) + numbers_in(announced)
        wrong = [n for n in NUMBER.findall(words) if not equals_one_of(n, allowed)]
        assert wrong == STATED_FOR_COMPARISON.get(name, []), (name, wrong)


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "headless_shell"))),
                None)
BROKEN_IMAGES = ("<script>window.onload = () => { document.body.dataset.broken = [...document.images]"
                 ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')).join(' ') || 'none'"
                 "; };</script></body>")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on PATH (chromium, chromium-browser, google-chrome "
                                             "or headless_shell): the demo page is not loaded in a browser here")
def test_the_demo_page_renders_in_headless_chromium_with_every_figure(demo_run):
    _, out, _, _ = demo_run
    probe = out / "probe.html"  # the page and a probe that lists the images that failed to load
    probe.write_text((out / "index.html").read_text(encoding="utf-8").replace("</body>", BROKEN_IMAGES),
                     encoding="utf-8")
    done = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=10000",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    probe.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-broken="none"' in done.stdout, done.stdout[-2000:]


def test_errors_name_the_command_and_the_input(capsys, tmp_path):
    (tmp_path / "junk.pt").write_text("not a model")
    assert main(["info", str(tmp_path / "junk.pt")]) == 2
    assert "bdh-graph info: error: checkpoint '" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_text("x")
    assert main(["info", str(run)]) == 2
    assert (f"bdh-graph info: error: checkpoint '{run}' is a folder; give the model file inside it, e.g. "
            f"{run / 'model.safetensors'}") in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("")
    assert main(["train", "--out", str(tmp_path / "r"), "--text", str(tmp_path / "empty.txt")]) == 2
    assert "is empty" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["train", "--out", str(tmp_path / "r"), "--lr", "0.001", "--min-lr", "0.01"]) == 2
    assert ("bdh-graph train: error: --min-lr must be <= --lr, got --min-lr 0.01 and --lr 0.001"
            in capsys.readouterr().err)
    (tmp_path / "file").write_text("")
    for argv, message in (
            (["generate", "--temperature", "0"],
             "bdh-graph generate: error: argument --temperature: must be > 0, got 0"),
            (["generate", "--top-k", "0"], "argument --top-k: must be >= 1, got 0"),
            (["generate", "--temperature", "warm"], "argument --temperature: expected a number, got 'warm'"),
            (["train", "--dropout", "1"], "argument --dropout: must be in [0, 1), got 1"),
            (["train", "--steps", "nan"], "argument --steps: expected an integer, got 'nan'"),
            (["demo", "--out", str(tmp_path / "file")], f"argument --out: '{tmp_path / 'file'}' is a file"),
            (["demo", "--out", str(tmp_path / "file" / "sub")], f"'{tmp_path / 'file'}' is a file"),
            (["demo", "--text", str(tmp_path / "missing.txt")], "argument --text: file '"),
            (["info", "--n-layer", "0"], "argument --n-layer: must be >= 1, got 0")):
        assert message in usage_error(capsys, argv), argv


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"bdh-graph {version('bdh_graph')}"


def parsers(parser: argparse.ArgumentParser, name: str = "bdh-graph"):
    """``parser`` and every (sub)command parser below it, with their names."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_help_and_shows_its_default_once():
    walked = dict(parsers(build_parser()))
    assert {"bdh-graph train", "bdh-graph demo", "bdh-graph step", "bdh-graph synapses trace"} <= set(walked)
    for name, parser in walked.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{label} has no help text"
            shown = formatter._expand_help(action) if action.help else ""
            assert shown.lower().count("default:") <= 1, f"{label} shows its default twice: {shown!r}"
        text = parser.format_help()
        assert "SPEC" not in text, f"{name}'s help refers to SPEC.md, which a pip user does not have"


def test_every_command_has_help(capsys):
    for name, _ in parsers(build_parser()):
        with pytest.raises(SystemExit) as exit_:
            main([*name.split()[1:], "--help"])
        assert exit_.value.code == 0 and f"usage: {name}" in capsys.readouterr().out, name


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "bdh_graph.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: bdh-graph" in out.stdout and "docs/model.md" in out.stdout


def imported_modules(path: Path, package: str | None) -> set[str]:
    """Absolute names of the modules a Python file imports (relative imports resolved within ``package``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_nothing_outside_the_cli_imports_the_cli():
    files = [(p, ".".join(p.relative_to(ROOT).with_suffix("").parts[:-1])) for p in (ROOT / "bdh_graph").rglob("*.py")
             if "cli" not in p.relative_to(ROOT).parts]
    files += [(p, None) for folder in ("analysis", "examples") for p in (ROOT / folder).glob("*.py")]
    assert len(files) > 40
    offenders = [str(p.relative_to(ROOT)) for p, package in files
                 if any(m == "bdh_graph.cli" or m.startswith("bdh_graph.cli.") for m in imported_modules(p, package))]
    assert offenders == []


def test_readme_trains_the_bundled_model_with_the_recipe(tmp_path, monkeypatch):
    """The three commands README gives for the bundled model are the recipe's three stages."""
    readme = (ROOT / "README.md").read_text().replace("\\\n", " ")
    commands = {line.split("--out ")[1].split()[0]: shlex.split(line.split("#")[0])[1:]
                for line in readme.splitlines() if line.startswith("bdh-graph train --out runs/")}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "bundled").mkdir(parents=True)
    (tmp_path / "runs" / "bundled" / "model.safetensors").touch()
    parser = build_parser()
    assert train_config(parser.parse_args(commands["runs/bundled"])) == BUNDLED_TRAINING
    carried = train_config(parser.parse_args(commands["runs/carry"]))
    assert carried == replace(BUNDLED_CARRIED, init="runs/bundled/model.safetensors")
    (tmp_path / "runs" / "carry").mkdir()
    (tmp_path / "runs" / "carry" / "model.safetensors").touch()
    damped = parser.parse_args(commands["runs/damped"])
    assert train_config(damped) == replace(BUNDLED_DAMPED, init="runs/carry/model.safetensors")
    assert damped.damping and BUNDLED_DAMPED_CONFIG == BUNDLED_CONFIG.replace(damping=True)
