"""Paired-associate recall (``bdh_graph.text.paired_associates``, ``bdh_graph.experiments.recall``,
``bdh-graph recall``): trials decode back to their pairs, the network equals the tensor model on trials, a lesion
erases exactly the named synapses, and on a hand-built model whose one association is one synapse the trace found
is that synapse."""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_model

from bdh_graph import BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.errors import TaskError
from bdh_graph.experiments.recall import (_Runner, addresses, as_lesion, capacity, check_recall, fit_capacity,
                                         memory_trace)
from bdh_graph.model import BDH, load_model
from bdh_graph.model.recall_recipe import (RECALL_CONFIG, RECALL_MODEL, RECALL_NEURONS, RECALL_TASK, RECALL_TRAINING,
                                           TrialBatches, recall_config)
from bdh_graph.model.tensor import IGNORE_INDEX
from bdh_graph.network import build_network
from bdh_graph.text.paired_associates import PairedAssociates, Trial, make_trials, study_pairs

TASK = PairedAssociates(3)  # vocab_size 256 + 3 * 5 = 271
SMALL = BDHConfig(n_layer=1, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, vocab_size=TASK.vocab_size,
                  dropout=0.0)
FILLER = np.frombuffer(b"unrelated bytes of text, read between the study and the cues. " * 4, np.uint8)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the task ----------------------------------------------------------------------------------------------------

def test_trials_are_seeded_and_decode_back_to_their_pairs():
    a, b = (make_trials(TASK, 3, 5, distractors=7, seed=11, filler=FILLER) for _ in range(2))
    assert all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, b))
    assert not all(np.array_equal(x.tokens, y.tokens)
                   for x, y in zip(a, make_trials(TASK, 3, 5, distractors=7, seed=12, filler=FILLER)))
    for trial in a:
        assert len(trial.tokens) == 3 * 3 + 7
        assert study_pairs(TASK, trial) == list(zip(trial.keys.tolist(), trial.partners.tolist()))
        assert len(set(trial.keys.tolist())) == 3 and len(set(trial.partners.tolist())) == 3
        kinds = [TASK.decode(t)[0] for t in trial.tokens]
        assert kinds == ["pair"] * 3 + ["byte"] * 7 + ["cue", "answer"] * 3
        for k, position in enumerate(trial.cue_positions):  # each cue asks for its own key's partner
            key = TASK.decode(trial.tokens[position])[1]
            partner = TASK.decode(trial.tokens[position + 1])[1]
            assert dict(zip(trial.keys.tolist(), trial.partners.tolist()))[key] == partner
            assert key == trial.keys[trial.order[k]]


def test_token_layout_and_chance():
    task = PairedAssociates(64)
    assert task.vocab_size == 256 + 64 + 64 + 64 * 64 and task.chance <= 0.10
    every = {task.decode(t) for t in range(task.vocab_size)}
    assert len(every) == task.vocab_size  # one meaning per token
    assert task.decode(task.pair(5, 9)) == ("pair", 5, 9) and task.name(task.pair(5, 9)) == "A5B9"
    assert PairedAssociates.for_vocab(task.vocab_size) == task
    assert PairedAssociates.for_vocab(task.vocab_size + 10) == task  # tokens above the task unused


def test_training_batches_study_up_to_every_pair_the_task_holds():
    assert TrialBatches(TASK).max_pairs == TASK.stimuli and TrialBatches(RECALL_TASK).max_pairs == 32
    with pytest.raises(TaskError, match="max_pairs"):
        TrialBatches(TASK, TASK.stimuli + 1)


def test_the_capacity_power_law_leaves_out_sizes_at_zero_and_at_the_ceiling():
    sizes = [{"neurons": n, "capacity_90": c, "ceiling": 32} for n, c in ((32, 0), (64, 4), (128, 16), (256, 32))]
    fit = fit_capacity(sizes)
    assert fit["sizes_fitted"] == 2 and fit["at_ceiling"] == [256]
    assert fit["slope"] == pytest.approx(2.0) and math.exp(fit["intercept"]) * 64 ** 2 == pytest.approx(4.0)
    assert fit_capacity(sizes[2:])["slope"] is None


def test_recall_train_and_sizes_take_the_number_of_stimuli():
    parser = argparse.ArgumentParser()
    from bdh_graph.cli import recall_commands
    recall_commands.register(parser.add_subparsers())
    for command in ("recall-train", "recall-sizes"):
        assert parser.parse_args([command, "--out", "x"]).stimuli == RECALL_TASK.stimuli
        assert parser.parse_args([command, "--out", "x", "--stimuli", "64"]).stimuli == 64
    with pytest.raises(SystemExit):
        parser.parse_args(["recall-train", "--out", "x", "--stimuli", "1"])


def test_recall_sizes_refuses_a_kept_model_of_another_encoding(tmp_path, capsys):
    (tmp_path / "n64").mkdir()
    save_model(BDH(recall_config(64, PairedAssociates(8))), tmp_path / "n64" / "model.safetensors")
    assert main(["recall-sizes", "--out", str(tmp_path), "--neurons", "64", "--steps", "1"]) == 2
    assert "is not a recall model of 64 neurons on 32 x 32 stimuli; delete its folder" in capsys.readouterr().err
    assert not (tmp_path / "recall_sizes.json").exists()


def test_training_batches_ask_for_the_answers_at_the_cues():
    inputs, targets = TrialBatches(TASK, 3, 5)(4, torch.Generator().manual_seed(0))
    kept = targets != IGNORE_INDEX
    assert inputs.shape == targets.shape
    for row in range(4):
        positions = torch.nonzero(kept[row]).flatten()
        assert all(TASK.decode(int(inputs[row, p]))[0] == "cue" for p in positions)
        assert all(TASK.decode(int(targets[row, p]))[0] == "answer" for p in positions)
        assert torch.equal(targets[row, positions[:-1]], inputs[row, positions[:-1] + 1])


# -- the network against the tensor model, lesions ---------------------------------------------------------------

@pytest.mark.parametrize("wiring", ["hub", "neuron"])
def test_network_equals_the_tensor_model_on_trials(wiring):
    model = random_model(SMALL.replace(n_layer=2), 5)
    trials = make_trials(TASK, 3, 3, distractors=4, seed=2, filler=FILLER)
    net = build_network(model, wiring=wiring, backend="numpy", dtype=np.float64)
    tensor = model(torch.as_tensor(np.stack([t.tokens for t in trials])))[0].detach().numpy()
    for trial, reference in zip(trials, tensor):
        logits = _Runner(net).read(trial)[0]
        assert np.abs(logits - reference).max() <= 1e-9 * np.abs(reference).max()


def test_a_lesion_erases_exactly_the_named_synapses():
    model = random_model(SMALL, 7)
    trial = make_trials(TASK, 3, 1, distractors=2, seed=4, filler=FILLER)[0]
    net = build_network(model, wiring="neuron", backend="numpy", dtype=np.float64)
    runner = _Runner(net)
    _, records = runner.read(trial, record_at={1})
    trace = memory_trace(SMALL, records[1], 6)
    intact = [net.sigma(0, h).toarray() for h in range(SMALL.n_head)]  # after the intact reading
    runner.read(trial, as_lesion(trace))
    named = np.zeros((SMALL.n_head, *intact[0].shape), bool)
    named[trace["head"], trace["pre"], trace["post"]] = True
    assert len(set(zip(trace["head"], trace["pre"], trace["post"]))) == 6
    for head in range(SMALL.n_head):
        lesioned = net.sigma(0, head).toarray()
        assert np.all(lesioned[named[head]] == 0) and np.all(intact[head][named[head]] != 0)
        # one layer: the writes do not depend on the reads, so every other synapse is as it was
        assert np.array_equal(lesioned[~named[head]], intact[head][~named[head]])


def test_the_trace_grew_most_at_the_study_step():
    model = random_model(SMALL, 8)
    trial = make_trials(TASK, 2, 1, seed=1, filler=FILLER)[0]
    net = build_network(model, wiring="neuron", backend="numpy", dtype=np.float64)
    runner = _Runner(net)
    runner.read(Trial(trial.tokens[:1], trial.keys, trial.partners, trial.order, 0))
    growth = np.stack([net.sigma(0, h).toarray() for h in range(SMALL.n_head)])  # sigma after token 1: its write
    trace = memory_trace(SMALL, runner.read(trial, record_at={0})[1][0], 4)
    np.testing.assert_allclose(trace["growth"], growth[trace["head"], trace["pre"], trace["post"]], rtol=1e-12)
    assert np.abs(trace["growth"][-1]) == pytest.approx(np.sort(np.abs(growth).ravel())[-4])
    assert set(trace["pre"]) == {SMALL.n_neurons + int(trial.tokens[0])}  # layer 0: the pair's input neuron


def hand_built_model() -> tuple[BDH, int]:
    """A 1-layer Normfree model, d = 4, one head of N = 4, whose association of key 0 with partner 0 runs through
    one synapse: the pair token (0, 0) drives x-neuron 2 alone (the slow RoPE pair, so the cue a token later meets
    it nearly unrotated) and carries partner 0's feature; the cue of key 0 drives x-neuron 2 and reads back that
    feature, which y-neuron 2 turns into the answer. Returns the model and the pair token."""
    task = PairedAssociates(2)
    model = BDH(BDHConfig(n_layer=1, n_embd=4, n_head=1, mlp_internal_dim_multiplier=1, vocab_size=task.vocab_size,
                          dropout=0.0, layer_norm=False)).double().eval()
    e = torch.eye(4, dtype=torch.float64)  # features: key 0, partner 0, partner 1, "answer 0"
    with torch.no_grad():
        for p in (model.encoder, model.encoder_v, model.decoder, model.embed.weight, model.lm_head):
            p.zero_()
        pair = int(task.pair(0, 0))
        model.embed.weight[pair] = e[0] + e[1]
        model.embed.weight[int(task.cue(0))] = e[0]
        model.encoder[0, :, 2] = e[0]  # D_x: x-neuron 2 fires on key 0
        model.encoder_v[0, :, 2] = e[1] - e[2]  # D_y: y-neuron 2 fires on partner 0
        model.decoder[2] = e[3]  # E: y-neuron 2 writes "answer 0"
        model.lm_head[:, int(task.answer(0))] = 10 * e[3]
    return model, pair


def test_on_a_hand_built_model_the_trace_is_the_hand_written_synapse():
    model, pair = hand_built_model()
    task = PairedAssociates(2)
    trial = Trial(np.array([pair, task.cue(0), task.answer(0)]), np.array([0]), np.array([0]), np.array([0]), 0)
    for wiring in ("hub", "neuron"):
        runner = _Runner(build_network(model, wiring=wiring, backend="numpy", dtype=np.float64))
        logits, records = runner.read(trial, record_at={0})
        trace = memory_trace(model.config, records[0])
        n = model.config.n_neurons
        assert addresses(model.config, trace) == [f"0:{n + pair}:2"]  # the only synapse the study wrote
        assert runner.recalled(trial).tolist() == [True]
        assert runner.recalled(trial, as_lesion(trace)).tolist() == [False]


# -- the experiments and the command -----------------------------------------------------------------------------

def test_bad_input_is_refused_before_any_work(tmp_path, capsys):
    model = random_model(SMALL, 1)
    for pairs, trials, name in ((4, 2, "pairs"), (0, 2, "pairs"), (2, 0, "trials")):
        with pytest.raises(TaskError, match=name):
            check_recall(model, pairs, trials)
    language = random_model(SMALL.replace(vocab_size=256), 1)
    with pytest.raises(TaskError, match="cannot hold the paired-associate task"):
        check_recall(language, 1, 1)
    path = str(save_model(language.float(), tmp_path / "language.safetensors"))
    assert main(["recall", path, "--out", str(tmp_path / "out")]) == 2
    assert "cannot hold the paired-associate task" in capsys.readouterr().err
    small = str(save_model(model.float(), tmp_path / "small.safetensors"))
    assert main(["recall", small, "--pairs", "4", "--out", str(tmp_path / "out")]) == 2
    assert "--pairs: a trial studies 1 to 3 pairs" in capsys.readouterr().err
    for flag in ("--pairs", "--trials"):
        with pytest.raises(SystemExit):
            main(["recall", small, flag, "0", "--out", str(tmp_path / "out")])
        assert f"argument {flag}: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_recall_command_writes_the_report_figures_and_nwb(tmp_path, capsys):
    model = random_model(SMALL, 3)
    path = str(save_model(model.float(), tmp_path / "small.safetensors"))
    assert main(["recall", path, "--pairs", "2", "--trials", "3", "--out", str(tmp_path / "out"), "--backend",
                 "numpy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "out" / "recall.json").read_text())
    assert saved["accuracy"] == report["accuracy"] and 0 <= report["accuracy"] <= 1
    assert report["chance"] == pytest.approx(1 / 3)
    assert report["network_rel_error"] < 1e-5  # float32 weights, float64 network against a float64 tensor copy
    assert report["capacity"][0]["pairs"] == 1 and report["capacity_90"] == capacity(report["capacity"])
    assert [p["distractors"] for p in report["forgetting"]][:2] == [0, 4]
    for kind in ("trace", "random"):
        assert set(report["lesion"][kind]) == {"synapses", "lesioned_pair", "other_pairs"}
    assert report["lesion"]["trace"]["synapses"] == report["lesion"]["random"]["synapses"] >= 1
    for name in ("capacity", "forgetting", "trace", "lesion", "nwb"):
        assert Path(report["figures"][name]).is_file()
    pynwb = pytest.importorskip("pynwb")
    with pynwb.NWBHDF5IO(report["figures"]["nwb"], "r") as io:
        trials = io.read().trials.to_dataframe()
    assert len(trials) == 3 * 2 * 2 and set(trials["phase"]) == {"study", "cue"}


def test_readme_commands_are_the_recipe():
    """The bundled recall model is what the README's command trains, and its defaults are the recipe's."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "bdh-graph recall-train --out runs/recall\n" in readme
    assert load_model(RECALL_MODEL).config == RECALL_CONFIG
    assert RECALL_CONFIG.vocab_size == RECALL_TASK.vocab_size and RECALL_CONFIG.n_neurons == RECALL_NEURONS
    parser = argparse.ArgumentParser()
    from bdh_graph.cli import recall_commands
    recall_commands.register(parser.add_subparsers())
    args = parser.parse_args(["recall-train", "--out", "runs/recall"])
    assert (args.neurons, args.steps) == (RECALL_NEURONS, RECALL_TRAINING.steps)
    assert re.search(r"bdh-graph recall --out \S+", readme)
