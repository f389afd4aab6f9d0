"""Paired-associate recall on the graph network: is each memory a Hebbian synapse with an address? (issue 24)

A trial (``bdh_graph.text.paired_associates``) studies P pairs (A, B), reads D bytes of text, then cues every A;
a cue is *recalled* when the argmax of the next-token distribution at the cue is its partner's answer token.
:func:`recall_experiments` runs the trials on the network (hub wiring by default, or the neuron wiring) beside the
tensor model, and reports:

- ``accuracy`` (network) and ``tensor_accuracy``, ``chance`` (1/K: a partner guessed at random), and
  ``network_rel_error``: the largest relative logit error of the network against the tensor model's parallel form
  over the trials, ``max |graph - tensor| / max |tensor|`` per trial;
- ``capacity``: accuracy against P = 1, 2, ... until it falls below 50 % (or P reaches K), and ``capacity_90``,
  the largest P up to which every P is recalled at 90 % or better; ``forgetting``: accuracy against D. Both on the
  tensor model, whose parallel form runs a batch of trials at once (the network equals it: ``network_rel_error``);
- the **memory trace** of a pair: the synapses ``sigma[l, head][i, j]`` that grew most while it was studied, i.e.
  the largest ``|w_t[i] k_t[j]|`` of the Hebbian write at its study step t (``k = R_t x``; RoPE can make the growth
  of either sign). In a 1-layer model the only presynaptic neuron of that write is the pair token's input neuron.
  The trace's size m is the smallest of 1, 2, 4, ... whose erasure brings the lesioned pair's recall to chance or
  below on *calibration* trials (another seed), so the size is not chosen on the trials it is judged on;
- ``lesion``: in every trial one pair (drawn at random) has its trace held at zero (``Network.lesion``: from the
  start of the trial, so erased before its cue; in a 1-layer model the writes do not depend on the reads, and this
  equals erasing the trace just before the cue), and, as the control, as many random synapses among those the
  study wrote (not the trace). ``trace`` and ``random`` report ``{"synapses", "lesioned_pair", "other_pairs"}``,
  ``intact`` the same pairs without a lesion.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch

from ..errors import TaskError
from ..network import build_network
from ..network.address import Synapse
from ..text.paired_associates import PairedAssociates, Trial, make_trials

DEFAULT_PAIRS = 8
DEFAULT_TRIALS = 20
DEFAULT_DISTRACTORS = 16
FORGETTING_DISTRACTORS = (0, 4, 16, 64, 256, 1024)
CAPACITY_FLOOR = 0.5  # the capacity curve stops below this accuracy
CAPACITY_LEVEL = 0.9  # capacity: the largest P recalled at this accuracy or better
TRACE_LEVEL = 1.0  # a trace is found when its lesion leaves the calibration trials' pairs at most this x chance
NEAR_CHANCE = 2.0  # ... and the verdict calls recall near chance up to this many times chance
TENSOR_BATCH = 5  # trials per parallel-form call
TRACED = 5  # synapses of the trace drawn over a trial


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_recall(model, pairs, trials, names: tuple[str, str, str] = ("model", "pairs", "trials")) -> PairedAssociates:
    """The task of ``model``'s vocabulary, after refusing (``TaskError``) a model that cannot hold it, ``pairs``
    outside 1..K or ``trials`` < 1; the errors call the three inputs by ``names`` (e.g. the command's flags)."""
    task = PairedAssociates.for_vocab(model.config.vocab_size, names[0])
    task.check_pairs(pairs, names[1])
    if not _is_int(trials) or trials < 1:
        raise TaskError(f"{names[2]}: expected an integer >= 1, got {trials!r}")
    return task


@torch.no_grad()
def tensor_recall(model, trials: list[Trial], batch: int = TENSOR_BATCH) -> np.ndarray:
    """Recalled (bool, trials x P, cue order) by the tensor model's parallel form, ``batch`` trials at a time (they
    must share P and D)."""
    cues = torch.as_tensor(trials[0].cue_positions, device=model.decoder.device)
    recalled = []
    for start in range(0, len(trials), batch):  # the T x T attention of long trials: a few at a time
        tokens = torch.as_tensor(np.stack([t.tokens for t in trials[start:start + batch]]), device=cues.device)
        recalled.append((model(tokens)[0][:, cues].argmax(-1) == tokens[:, cues + 1]).cpu().numpy())
    return np.concatenate(recalled)


def capacity_curve(model, task: PairedAssociates, trials: int, distractors: int, seed: int) -> list[dict]:
    """``{"pairs", "accuracy"}`` for P = 1, 2, ... on the tensor model, until accuracy < 50 % or P = K."""
    curve = []
    for pairs in range(1, task.stimuli + 1):
        accuracy = float(tensor_recall(model, make_trials(task, pairs, trials, distractors, seed + pairs)).mean())
        curve.append({"pairs": pairs, "accuracy": accuracy})
        if accuracy < CAPACITY_FLOOR:
            break
    return curve


def capacity(curve: list[dict], level: float = CAPACITY_LEVEL) -> int:
    """The largest P up to which every P of ``curve`` is recalled at ``level`` or better (0 if P = 1 is not)."""
    best = 0
    for point in curve:
        if point["accuracy"] < level:
            break
        best = point["pairs"]
    return best


def _rel_error(graph: np.ndarray, tensor: np.ndarray) -> float:
    scale = float(np.abs(tensor).max())
    return float(np.abs(graph - tensor).max()) / scale if scale > 0 else float(np.abs(graph).max() > 0)


def hebbian_growth(config, record: dict) -> list[tuple[np.ndarray, ...]]:
    """The Hebbian write of one token, per layer: ``(layer, head, pre, post_in_head, growth)`` of every synapse it
    changed, ``growth = w[pre] k[head*N + post]`` (``record`` of ``Network.step``: ``w``, ``k``)."""
    N = config.N
    out = []
    for layer, (w, k) in enumerate(zip(record["w"], record["k"])):
        pre, post = np.flatnonzero(w), np.flatnonzero(k)
        growth = np.outer(w[pre], k[post]).ravel()
        i, j = np.repeat(pre, len(post)), np.tile(post, len(pre))
        out.append((np.full(len(i), layer), j // N, i, j % N, growth))
    return out


def memory_trace(config, record: dict, m: int | None = None) -> dict[str, np.ndarray]:
    """The synapses that grew most (largest |growth|) in the write of ``record``, strongest first (equal ones by
    layer, head, pre, post): arrays ``layer``, ``head``, ``pre``, ``post`` (in the head), ``growth``; the first
    ``m`` (all when None)."""
    layer, head, pre, post, growth = (np.concatenate(part) for part in zip(*hebbian_growth(config, record)))
    order = np.lexsort((post, pre, head, layer, -np.abs(growth)))[:m]
    return {"layer": layer[order], "head": head[order], "pre": pre[order], "post": post[order],
            "growth": growth[order]}


def as_lesion(synapses: dict[str, np.ndarray]) -> dict:
    """``Network.lesion``'s argument for the synapses of a trace: ``{(layer, head): pairs (i, j)}``."""
    lesion = {}
    for layer, head in sorted(set(zip(synapses["layer"].tolist(), synapses["head"].tolist()))):
        mine = (synapses["layer"] == layer) & (synapses["head"] == head)
        lesion[(layer, head)] = np.stack([synapses["pre"][mine], synapses["post"][mine]], axis=1)
    return lesion


def addresses(config, synapses: dict[str, np.ndarray]) -> list[str]:
    """``LAYER:PRE:POST`` of each synapse (``bdh_graph.network.address``)."""
    N = config.N
    return [Synapse(int(l), int(i), int(h) * N + int(j)).address(config)
            for l, h, i, j in zip(synapses["layer"], synapses["head"], synapses["pre"], synapses["post"])]


class _Runner:
    """Reads trials on the network, with a lesion or none; records the Hebbian write at chosen steps."""

    def __init__(self, net):
        self.net = net

    def read(self, trial: Trial, lesion=None, record_at=(), record_all: bool = False):
        """Logits (T, V) of the trial and the step records asked for (``{t: record}``)."""
        net = self.net
        net.reset()
        net.lesion(lesion)
        records = {}
        logits = np.empty((len(trial.tokens), net.config.vocab_size))
        try:
            for t, token in enumerate(trial.tokens):
                record = {} if record_all or t in record_at else None
                logits[t] = net.step(int(token), record)
                if record is not None:
                    records[t] = record
        finally:
            net.lesion(None)
        return logits, records

    def recalled(self, trial: Trial, lesion=None) -> np.ndarray:
        logits = self.read(trial, lesion)[0]
        return logits[trial.cue_positions].argmax(1) == trial.answers()


def _lesioned_pairs(trials: list[Trial], seed: int) -> np.ndarray:
    """The pair (study index) lesioned in each trial, drawn at random."""
    rng = np.random.default_rng(seed)
    return rng.integers(trials[0].pairs, size=len(trials))


def _cue_index(trial: Trial, pair: int) -> int:
    """Where in cue order the pair of study index ``pair`` is cued."""
    return int(np.flatnonzero(trial.order == pair)[0])


def find_trace_size(runner: _Runner, config, trials: list[Trial], lesioned: np.ndarray, chance: float) -> int:
    """The smallest m of 1, 2, 4, ... whose trace lesion leaves the lesioned pairs of ``trials`` recalled at most
    ``TRACE_LEVEL`` times chance (all the synapses the write changed, if none does)."""
    traces = [memory_trace(config, runner.read(trial, record_at={int(p)})[1][int(p)])
              for trial, p in zip(trials, lesioned)]
    largest = max(len(trace["growth"]) for trace in traces)
    m = 1
    while True:
        hits = [runner.recalled(trial, as_lesion({k: v[:m] for k, v in trace.items()}))[_cue_index(trial, int(p))]
                for trial, p, trace in zip(trials, lesioned, traces)]
        if np.mean(hits) <= TRACE_LEVEL * chance or m >= largest:
            return min(m, largest)
        m *= 2


def _study_synapses(config, records: dict, study: np.ndarray) -> dict[str, np.ndarray]:
    """Every synapse the study steps wrote (each once)."""
    parts = [np.stack(list(memory_trace(config, records[int(t)]).values())) for t in study]
    table = np.concatenate(parts, axis=1)
    keys = np.unique(table[:4].astype(np.int64), axis=1)
    return {"layer": keys[0], "head": keys[1], "pre": keys[2], "post": keys[3]}


def _random_synapses(config, records, trial: Trial, trace: dict, m: int, rng) -> dict[str, np.ndarray]:
    """``m`` synapses drawn among those the study wrote, none of them in ``trace``."""
    written = _study_synapses(config, records, trial.study_positions)
    traced = set(zip(*(trace[k].tolist() for k in ("layer", "head", "pre", "post"))))
    free = [s for s in range(len(written["pre"]))
            if (int(written["layer"][s]), int(written["head"][s]), int(written["pre"][s]),
                int(written["post"][s])) not in traced]
    chosen = np.sort(rng.choice(free, min(m, len(free)), replace=False))
    return {k: v[chosen] for k, v in written.items()}


@dataclass
class RecallResult:
    """What :func:`recall_experiments` measured; ``to_dict`` is ``recall.json``."""

    report: dict
    task: PairedAssociates
    trials: list[Trial]  # the trials run on the network
    recalled: np.ndarray  # (trials, P) in cue order, on the network
    trace_values: np.ndarray  # (T, TRACED): sigma of trial 1's lesioned pair's strongest synapses after each token
    trace_addresses: list[str]

    @property
    def trial(self) -> Trial:
        """The trial the trace figure shows."""
        return self.trials[0]

    @property
    def token_names(self) -> list[str]:
        return [self.task.name(t) for t in self.trial.tokens]

    def to_dict(self) -> dict:
        return dict(self.report)

    def nwb_trials(self) -> dict:
        """``write_trials_nwb``'s arguments: the trials end to end, one NWB trial per studied pair (phase
        ``study``, its one token) and per cue (phase ``cue``, the cue and the answer)."""
        rows = {name: [] for name in ("start", "stop", "trial", "phase", "key", "partner", "recalled", "lesioned")}
        offset = 0
        for k, (trial, hits) in enumerate(zip(self.trials, self.recalled)):
            lesioned = self.report["lesioned_pairs"][k]
            for pair, start in enumerate(trial.study_positions):
                cue = _cue_index(trial, pair)
                for phase, begin, length in (("study", start, 1), ("cue", trial.cue_positions[cue], 2)):
                    for name, value in (("start", offset + begin), ("stop", offset + begin + length), ("trial", k),
                                        ("phase", phase), ("key", trial.keys[pair]),
                                        ("partner", trial.partners[pair]), ("recalled", hits[cue]),
                                        ("lesioned", pair == lesioned)):
                        rows[name].append(value)
            offset += len(trial.tokens)
        tokens = np.concatenate([t.tokens for t in self.trials])
        descriptions = {"trial": "the trial (each read from a zero synaptic state)",
                        "phase": "study: the pair token; cue: the key alone and its answer",
                        "key": "the pair's key A (0..K-1)", "partner": "the pair's partner B (0..K-1)",
                        "recalled": "the network's most likely token at the cue was the partner's answer",
                        "lesioned": "the pair whose memory trace the lesion experiment erases in this trial"}
        order = np.argsort(rows["start"], kind="stable")
        return {"tokens": tokens, "labels": [self.task.name(t) for t in tokens], "descriptions": descriptions,
                "trials": {name: np.asarray(values)[order] for name, values in rows.items()}}

    def summary(self) -> str:
        r = self.report
        lesion = r["lesion"]
        lines = [f"paired-associate recall, {r['pairs']} pairs, {r['trials']} trials, {r['distractors']} distractor "
                 f"bytes, on the {r['network']['wiring']} network ({r['seconds']:.0f} s):",
                 f"  accuracy {r['accuracy']:.1%} (tensor model {r['tensor_accuracy']:.1%}, chance {r['chance']:.1%});"
                 f" network against tensor model: largest relative logit error {r['network_rel_error']:.2g}",
                 f"  capacity (90 %): {r['capacity_90']} pairs; curve " +
                 ", ".join(f"{p['pairs']}: {p['accuracy']:.0%}" for p in r["capacity"]),
                 "  forgetting: " + ", ".join(f"{p['distractors']} bytes: {p['accuracy']:.0%}"
                                              for p in r["forgetting"]),
                 f"  lesion of {lesion['trace']['synapses']} synapses: trace -> lesioned pair "
                 f"{lesion['trace']['lesioned_pair']:.0%}, other pairs {lesion['trace']['other_pairs']:.0%}; random -> "
                 f"{lesion['random']['lesioned_pair']:.0%}, {lesion['random']['other_pairs']:.0%}; intact "
                 f"{lesion['intact']['lesioned_pair']:.0%}, {lesion['intact']['other_pairs']:.0%}",
                 f"  {r['verdicts']['lesion']}"]
        return "\n".join(lines)


def lesion_verdict(lesion: dict, chance: float) -> str:
    trace, rand, intact = lesion["trace"], lesion["random"], lesion["intact"]
    near = trace["lesioned_pair"] <= NEAR_CHANCE * chance
    spared = trace["other_pairs"] >= intact["other_pairs"] - 0.1
    harmless = abs(rand["lesioned_pair"] - intact["lesioned_pair"]) <= 0.1 and \
        rand["other_pairs"] >= intact["other_pairs"] - 0.1
    held = near and spared and harmless
    return (f"{'the claim holds' if held else 'the claim does not hold in full'}: erasing a pair's trace of "
            f"{trace['synapses']} synapses takes its recall {'to' if near else 'only to'} "
            f"{trace['lesioned_pair']:.0%} (chance {chance:.0%}) and leaves the other pairs at "
            f"{trace['other_pairs']:.0%} (intact {intact['other_pairs']:.0%}); as many random synapses leave it at "
            f"{rand['lesioned_pair']:.0%} (intact {intact['lesioned_pair']:.0%})")


def recall_experiments(model, pairs: int = DEFAULT_PAIRS, trials: int = DEFAULT_TRIALS, seed: int = 0,
                       distractors: int = DEFAULT_DISTRACTORS, wiring: str = "hub", prune=None, synapses="all",
                       backend=None, device=None, dtype=np.float64,
                       forgetting=FORGETTING_DISTRACTORS) -> RecallResult:
    """The experiments of the module doc on ``model`` (a tensor ``BDH`` of a recall task's vocabulary).

    ``pairs`` P studied a trial, ``trials`` trials (seeded by ``seed``), ``distractors`` bytes between study and
    cues; the network is ``build_network(model, wiring, prune, synapses, backend, dtype, device)`` in rate mode.
    """
    task = check_recall(model, pairs, trials)
    started = time.perf_counter()
    c = model.config
    net = build_network(model, wiring=wiring, prune=prune, synapses=synapses, backend=backend, dtype=dtype,
                        device=device)
    reference = copy.deepcopy(model).to(dtype=torch.float64 if net.dtype == np.float64 else torch.float32).eval()
    runner = _Runner(net)
    main = make_trials(task, pairs, trials, distractors, seed)
    calibration = make_trials(task, pairs, trials, distractors, seed + 1)
    lesioned = _lesioned_pairs(main, seed)
    with torch.no_grad():
        tensor_logits = reference(torch.as_tensor(np.stack([t.tokens for t in main])))[0].double().numpy()
    recalled, rel_error, records = [], 0.0, []
    for k, trial in enumerate(main):
        logits, rec = runner.read(trial, record_all=True)
        records.append(rec)
        rel_error = max(rel_error, _rel_error(logits, tensor_logits[k]))
        recalled.append(logits[trial.cue_positions].argmax(1) == trial.answers())
    recalled = np.array(recalled)
    tensor_recalled = tensor_logits[:, main[0].cue_positions].argmax(2) == np.stack([t.answers() for t in main])

    m = find_trace_size(runner, c, calibration, _lesioned_pairs(calibration, seed + 1), task.chance)
    rng = np.random.default_rng(seed + 2)
    outcome = {"trace": [], "random": [], "intact": []}
    first_trace = None
    for trial, p, rec, intact in zip(main, lesioned, records, recalled):
        trace = memory_trace(c, rec[int(p)], m)
        first_trace = trace if first_trace is None else first_trace
        cue = _cue_index(trial, int(p))
        others = np.arange(trial.pairs) != cue
        control = _random_synapses(c, rec, trial, trace, m, rng)
        for name, hits in (("trace", runner.recalled(trial, as_lesion(trace))),
                           ("random", runner.recalled(trial, as_lesion(control))), ("intact", intact)):
            outcome[name].append((hits[cue], hits[others].mean() if others.any() else np.nan))
    lesion = {name: {"synapses": m if name != "intact" else 0,
                     "lesioned_pair": float(np.mean([o[0] for o in rows])),
                     "other_pairs": float(np.nanmean([o[1] for o in rows])) if pairs > 1 else None}
              for name, rows in outcome.items()}
    lesion["trace_addresses"] = addresses(c, first_trace)[:TRACED]

    curve = capacity_curve(reference, task, trials, distractors, seed + 3)
    forgetting_curve = [{"distractors": int(d), "accuracy": float(tensor_recall(
        reference, make_trials(task, pairs, trials, int(d), seed + 4)).mean())} for d in forgetting]

    # the trace figure: sigma of the first trial's lesioned pair's strongest synapses after every token
    trial, rec = main[0], records[0]
    shown = memory_trace(c, rec[int(lesioned[0])], TRACED)
    values = np.zeros((len(trial.tokens), len(shown["pre"])))
    for t in range(len(trial.tokens)):
        w, k = rec[t]["w"], rec[t]["k"]
        values[t] = w[shown["layer"], shown["pre"]] * k[shown["layer"], shown["head"] * c.N + shown["post"]]
    values = np.cumsum(values, axis=0)
    report = {
        "task": {"stimuli": task.stimuli, "vocab_size": task.vocab_size, "layout": "pairs, distractor bytes, then "
                 "cue answer per pair (bdh_graph.text.paired_associates)"},
        "pairs": pairs, "trials": trials, "seed": seed, "distractors": distractors,
        "network": {"wiring": net.wiring, "backend": net.backend.name, "dtype": str(net.dtype),
                    "prune": net.description["prune"]},
        "accuracy": float(recalled.mean()), "tensor_accuracy": float(tensor_recalled.mean()), "chance": task.chance,
        "network_rel_error": rel_error,
        "capacity": curve, "capacity_90": capacity(curve), "forgetting": forgetting_curve, "lesion": lesion,
        "lesioned_pairs": [int(p) for p in lesioned],
        "verdicts": {"lesion": lesion_verdict(lesion, task.chance)},
        "seconds": time.perf_counter() - started,
    }
    return RecallResult(report, task, main, recalled, values, addresses(c, shown))


def capacity_against_size(models: dict[int, object], trials: int = DEFAULT_TRIALS,
                          distractors: int = DEFAULT_DISTRACTORS, seed: int = 0) -> dict:
    """Capacity (:func:`capacity`, the largest P recalled at 90 %) of models of several sizes, ``{neurons:
    model}``, and its power law in n (:func:`fit_capacity`)."""
    sizes = []
    for n, model in sorted(models.items()):
        task = check_recall(model, 1, trials)
        curve = capacity_curve(model, task, trials, distractors, seed)
        sizes.append({"neurons": int(n), "capacity_90": capacity(curve), "curve": curve, "ceiling": task.stimuli})
    return {"sizes": sizes, "fit": fit_capacity(sizes), "trials": trials, "distractors": distractors, "seed": seed}


def fit_capacity(sizes: list[dict]) -> dict:
    """The power law ``capacity = exp(intercept) n^slope``, fitted by least squares on log axes over the sizes whose
    capacity was measured: above 0 and below the task's ceiling K (at the ceiling the capacity is only known to be
    K or more, so such a size would flatten the slope). ``slope`` and ``intercept`` are None with fewer than two;
    ``at_ceiling`` lists the sizes left out for reaching K."""
    kept = [(s["neurons"], s["capacity_90"]) for s in sizes if 0 < s["capacity_90"] < s["ceiling"]]
    fit = {"slope": None, "intercept": None, "sizes_fitted": len(kept),
           "at_ceiling": [s["neurons"] for s in sizes if s["capacity_90"] >= s["ceiling"]]}
    if len(kept) >= 2:
        slope, intercept = np.polyfit(np.log([k[0] for k in kept]), np.log([k[1] for k in kept]), 1)
        fit.update(slope=float(slope), intercept=float(intercept))
    return fit


__all__ = ["RecallResult", "addresses", "as_lesion", "capacity", "capacity_against_size", "capacity_curve",
           "check_recall", "fit_capacity", "hebbian_growth", "memory_trace", "recall_experiments", "tensor_recall"]
