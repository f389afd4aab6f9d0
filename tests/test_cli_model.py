"""The ``bdh-graph`` command line as a whole (help, version, errors, the library boundary) and its model commands:
info, generate, demo, train."""
from __future__ import annotations

import argparse
import ast
import json
import math
import shlex
import subprocess
import sys
import zipfile
from dataclasses import replace
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


def test_demo_announces_each_section_and_writes_its_files(capsys, checkpoint, tmp_path):
    (tmp_path / "t.txt").write_text("The quick brown fox jumps over the dog.", encoding="utf-8")
    out = tmp_path / "demo"
    assert main(["demo", checkpoint, "--text", str(tmp_path / "t.txt"), "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr()
    report, err = json.loads(printed.out), printed.err
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
