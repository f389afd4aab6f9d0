"""The model commands of ``bdh-graph``: info, generate, demo, train, and their errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import TINY as CONFIG, run_json, tiny_checkpoint

from bdh_graph.cli import main


@pytest.fixture
def checkpoint(tmp_path):
    return tiny_checkpoint(tmp_path, 21, 5.0)


def test_info_reports_sizes(capsys, checkpoint):
    info = run_json(capsys, "info", checkpoint)
    assert info["neurons"] == CONFIG.n_neurons == 64 and info["neurons_per_head"] == 32
    assert info["parameters"] == 2 * 2 * 16 * 32 + 64 * 16 + 2 * 256 * 16


def test_generate_is_seeded_and_continues_the_prompt(capsys, checkpoint):
    a = run_json(capsys, "generate", checkpoint, "--prompt", "abc", "--max-new-tokens", "12", "--seed", "3")
    b = run_json(capsys, "generate", checkpoint, "--prompt", "abc", "--max-new-tokens", "12", "--seed", "3")
    assert a["text"] == b["text"] and a["text"].startswith("abc")


def test_demo_reports_bits_per_byte(capsys, checkpoint, tmp_path):
    (tmp_path / "t.txt").write_text("The quick brown fox jumps over the lazy dog. " * 3)
    report = run_json(capsys, "demo", checkpoint, "--text", str(tmp_path / "t.txt"), "--out", str(tmp_path / "demo"))
    assert report["tokens"] == 135
    assert 1.0 < report["bits_per_byte"] < 16.0
    assert len(report["predictions"]) == 5 and all(len(p["top3"]) == 3 for p in report["predictions"])


def test_errors_are_reported_not_raised(capsys, tmp_path):
    (tmp_path / "junk.pt").write_text("not a model")
    assert main(["info", str(tmp_path / "junk.pt")]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("")
    assert main(["train", "--out", str(tmp_path / "r"), "--text", str(tmp_path / "empty.txt")]) == 2
    assert "is empty" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_every_command_has_help(capsys):
    from bdh_graph.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"train", "info", "generate", "demo"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and f"usage: bdh-graph {name}" in capsys.readouterr().out, name


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "bdh_graph.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: bdh-graph" in out.stdout
