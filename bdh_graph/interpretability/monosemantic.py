"""Monosemantic synapses (docs/model.md): synapses whose state after a sentence separates sentences about a
concept from matched contrast sentences, found on one set of sentences and tested on another.

The paper (Kosowski et al. 2025, arXiv 2509.26507) reports single synapses ``sigma[l][i, j]`` that
strengthen after words of one concept (currency, country), tested with a one-sided Mann-Whitney U test over 50
concept vs 50 contrast sentences (U = 2368 of 2500, p < 1e-14, rank-biserial 0.86).

Protocol of ``find_concept_synapses``:

1. **Split.** Each list is de-duplicated and split at random into a selection part and a held-out test part;
   no sentence is in both (``split_sentences``).
2. **Record.** The tensor model reads every sentence from a zero state; the synaptic state after the
   sentence is ``sigma[l, head][i, j] = sum_t w_t[i] (R_t x_t)[j]`` (neuron level, the paper's synapses:
   presynaptic neuron i, with the trace ``w``) or ``rho[l, head][c, j] = sum_t v_t[c] (R_t x_t)[j]`` (hub level,
   the tensor model's state). See ``synapse_state``.
3. **Screen (selection sentences only).** Every entry of every layer gets Welch's statistic
   ``t = (m_c - m_k) / sqrt(s_c^2 / n_c + s_k^2 / n_k)`` over the two sets (``screen_synapses``: the means are
   one matrix product over all tokens of a set, the variances are accumulated sentence by sentence, one
   (rows x n) block at a time, never all sentences at once). The ``candidates`` largest t go on.
   By default (``strengthening``) only entries that grow with the concept qualify: ``m_c > |m_k|``.
4. **Select (selection sentences only).** For each candidate the exact U statistic on the selection sentences;
   the ``top_k`` with the largest rank-biserial correlation (ties: larger t) are the reported synapses.
5. **Test (held-out sentences only).** For each reported synapse one one-sided Mann-Whitney U test,
   alternative "concept > contrast" (``scipy.stats.mannwhitneyu``, its default method: exact for small samples
   without ties, else the normal approximation with tie correction), ``p`` and the rank-biserial correlation
   ``r = 2 U / (n_c n_k) - 1`` (Kerby 2014; 1 = every concept sentence above every contrast sentence).

Multiple comparisons: the screen and the selection look at millions of entries, but only on the selection
sentences, so their maximum is never tested; on the held-out sentences one test per reported synapse is made
(``k = top_k``, or fewer if fewer entries qualify), and a synapse is called significant when its
Bonferroni-corrected ``min(1, k p)`` is below ``alpha``.

Note: with ``r = 2U/(n_c n_k) - 1`` the paper's U = 2368 of 2500 gives r = 0.894; the paper states 0.86.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy import stats

from ..distributed import engine
from ..network.address import LEVELS, Synapse
from .synapse_state import (DEFAULT_MAX_TOKENS, SentenceRecord, check_sentences, record_sentences,
                            synapse_trace)

PRESYNAPTIC = ("model", "input", "all")
PAPER_SENTENCES = 100  # per set: half select, half test, the paper's 50 vs 50
MIN_SENTENCES = 2  # per set and split: a variance needs two values
REL_FLOOR = 1e-5  # below this relative spread an entry is constant at float32 resolution (see screen_synapses)


@dataclass
class SentenceSplit:
    """Disjoint selection and held-out test sentences of the concept and the contrast set."""

    selection_concept: list[str]
    selection_contrast: list[str]
    test_concept: list[str]
    test_contrast: list[str]

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}


def _distinct(sentences: list[str]) -> list[str]:
    return list(dict.fromkeys(s.strip() for s in sentences))


def split_sentences(concept: list[str], contrast: list[str], test_fraction: float = 0.5, seed: int = 0,
                    max_tokens: int = DEFAULT_MAX_TOKENS) -> SentenceSplit:
    """De-duplicate both lists and split each at random: ``round(test_fraction * len)`` sentences held out.

    Refuses empty lists, sentences over ``max_tokens`` bytes, a sentence in both lists, and splits that leave
    fewer than 2 sentences of a set on either side.
    """
    concept = _distinct(check_sentences(concept, "concept sentences", max_tokens))
    contrast = _distinct(check_sentences(contrast, "contrast sentences", max_tokens))
    both = sorted(set(concept) & set(contrast))
    if both:
        raise ValueError(f"{len(both)} sentences are in both the concept and the contrast list, e.g. {both[0]!r}; "
                         "a sentence can have only one label")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    parts = []
    for name, sentences in (("concept", concept), ("contrast", contrast)):
        order = list(range(len(sentences)))
        random.Random(f"split/{name}/{seed}").shuffle(order)
        n_test = round(test_fraction * len(sentences))
        if min(n_test, len(sentences) - n_test) < MIN_SENTENCES:
            raise ValueError(f"{name} sentences: {len(sentences)} distinct sentences give {len(sentences) - n_test} "
                             f"for selection and {n_test} for the held-out test (test_fraction={test_fraction}); "
                             f"need at least {MIN_SENTENCES} in each, so at least {2 * MIN_SENTENCES} sentences")
        parts.append(([sentences[i] for i in order[n_test:]], [sentences[i] for i in order[:n_test]]))
    (sel_c, test_c), (sel_k, test_k) = parts
    return SentenceSplit(sel_c, sel_k, test_c, test_k)


def presynaptic_rows(config, level: str, presynaptic: str | None) -> torch.Tensor:
    """Presynaptic indices screened: model neurons ``[0, n)``, input neurons ``[n, n+V)``, both; or the d hubs."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if level == "hub":
        if presynaptic is not None:
            raise ValueError(f"presynaptic={presynaptic!r} applies to level='neuron' only; at hub level the "
                             "presynaptic units are the d hubs (leave presynaptic=None)")
        return torch.arange(config.n_embd)
    presynaptic = presynaptic or "model"
    n, V = config.n_neurons, config.vocab_size
    ranges = {"model": (0, n), "input": (n, n + V), "all": (0, n + V)}
    if presynaptic not in ranges:
        raise ValueError(f"presynaptic must be one of {PRESYNAPTIC}, got {presynaptic!r}")
    return torch.arange(*ranges[presynaptic])


@dataclass
class Screen:
    """Candidates of the screen, best first: layer, presynaptic and postsynaptic index, Welch's t."""

    layers: np.ndarray
    pres: np.ndarray
    posts: np.ndarray
    t: np.ndarray
    entries: int  # entries screened in all


def _moments(records: list[SentenceRecord], layer: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance over sentences of the state rows ``rows`` (all heads): (rows, n) each.

    ``mean = (1/S) P^T K`` with the tokens of all sentences stacked (one product), then
    ``M2 = sum_s (P_s^T K_s - mean)^2``, one fused product ``addmm`` per sentence (no cancellation in float32).
    """
    S = len(records)
    pres = [r.pre[layer][:, rows] for r in records]  # tokens, rows per sentence
    if not any(bool(P.any()) for P in pres):  # no presynaptic activity at all: every entry is exactly 0
        zeros = torch.zeros(len(rows), records[0].post.shape[-1], dtype=records[0].post.dtype)
        return zeros, zeros
    mean = torch.cat(pres).T @ torch.cat([r.post[layer] for r in records]) / S  # rows, n
    M2, dev = torch.zeros_like(mean), torch.empty_like(mean)
    for P, r in zip(pres, records):
        torch.addmm(mean, P.T, r.post[layer], beta=-1, out=dev)  # X_s - mean
        M2.addcmul_(dev, dev)
    return mean, M2 / (S - 1)


def _screen_layer(concept: list[SentenceRecord], contrast: list[SentenceRecord], layer: int, rows: torch.Tensor,
                  candidates: int, strengthening: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Welch's t of every entry of one layer (a task of :func:`screen_synapses`): the ``candidates`` largest as
    presynaptic rows, postsynaptic columns and t, and the entries screened."""
    m_c, v_c = _moments(concept, layer, rows)
    m_k, v_k = _moments(contrast, layer, rows)
    se = torch.sqrt(v_c / len(concept) + v_k / len(contrast))
    floor = REL_FLOOR * (m_c.abs() + m_k.abs()) + torch.finfo(m_c.dtype).tiny
    t = (m_c - m_k) / torch.maximum(se, floor)
    if strengthening:
        t = torch.where(m_c > m_k.abs(), t, torch.zeros_like(t))
    t = t.reshape(-1)
    best = torch.topk(t, min(candidates, t.numel()))
    n_post = m_c.shape[1]
    return (rows[best.indices // n_post].numpy(), (best.indices % n_post).numpy(), best.values.double().numpy(),
            t.numel())


def screen_synapses(concept: list[SentenceRecord], contrast: list[SentenceRecord], rows: torch.Tensor,
                    candidates: int = 1000, layers: list[int] | None = None, strengthening: bool = True,
                    progress: bool = False, scheduler=None) -> Screen:
    """Welch's t of every entry (layers x ``rows`` x all x-neurons) between the two sets; the ``candidates``
    largest, of those with t > 0 (possibly fewer).

    ``t = (m_c - m_k) / max(sqrt(s_c^2/n_c + s_k^2/n_k), 1e-5 (|m_c| + |m_k|))``: the floor treats an entry whose
    spread is below float32 resolution as constant (such entries would otherwise get an arbitrary t from
    round-off). Entries that are exactly 0 in every sentence get t = 0.

    ``strengthening``: keep only entries that grow with the concept, ``m_c > |m_k|`` (positive after concept
    sentences, and larger than whatever the contrast sentences do in either direction). Without it an entry
    also qualifies when the contrast sentences push it below a concept state near 0. ``progress``: a bar over
    the layers. Each layer is a task of ``scheduler`` (``bdh_graph.distributed.engine``; the records go to each
    worker once).
    """
    if not concept or not contrast:
        raise ValueError(f"screen needs records of both sets, got {len(concept)} concept and {len(contrast)} contrast")
    L = concept[0].post.shape[0]
    layers = list(range(L)) if layers is None else layers
    with engine(scheduler) as eng, eng.shared(concept, contrast) as shared:
        done = dict(eng.map(_screen_layer, ((*shared, layer, rows, candidates, strengthening) for layer in layers),
                            len(layers), "screening synapses", "layer", progress))
    found = [(np.full(len(done[k][0]), layer), *done[k][:3]) for k, layer in enumerate(layers)]
    entries = sum(done[k][3] for k in range(len(layers)))
    layer_ids, pres, posts, ts = (np.concatenate(parts) for parts in zip(*found))
    order = np.argsort(-ts, kind="stable")[:candidates]
    order = order[ts[order] > 0]  # only entries larger, on average, after concept sentences
    return Screen(layer_ids[order], pres[order], posts[order], ts[order], entries)


@dataclass(frozen=True)
class MannWhitney:
    """One-sided Mann-Whitney U test, alternative "concept > contrast"; ``U`` counts concept-above-contrast pairs."""

    U: float
    n_concept: int
    n_contrast: int
    p: float

    @property
    def rank_biserial(self) -> float:
        """``r = 2 U / (n_c n_k) - 1`` in [-1, 1]."""
        return 2.0 * self.U / (self.n_concept * self.n_contrast) - 1.0

    def to_dict(self) -> dict:
        return {"U": self.U, "of": self.n_concept * self.n_contrast, "n_concept": self.n_concept,
                "n_contrast": self.n_contrast, "p": self.p, "rank_biserial": self.rank_biserial}


def mann_whitney(concept_values, contrast_values) -> MannWhitney:
    """``scipy.stats.mannwhitneyu(concept, contrast, alternative="greater")`` of two 1-D samples."""
    a, b = np.asarray(concept_values, float).reshape(-1), np.asarray(contrast_values, float).reshape(-1)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"Mann-Whitney U needs values in both samples, got {len(a)} concept and {len(b)} contrast")
    res = stats.mannwhitneyu(a, b, alternative="greater")
    return MannWhitney(float(res.statistic), len(a), len(b), float(res.pvalue))


@dataclass
class SynapseResult:
    """A reported synapse: its screen t and selection test (selection sentences), its held-out test."""

    synapse: Synapse
    screen_t: float
    selection: MannWhitney
    test: MannWhitney
    p_bonferroni: float
    significant: bool
    test_concept_values: np.ndarray
    test_contrast_values: np.ndarray

    @property
    def medians(self) -> tuple[float, float]:
        """Held-out medians after concept and after contrast sentences: does the concept raise the synapse, or
        the contrast lower it? (The test compares the signed state; for fast RoPE neurons the sign of
        ``R_t x`` turns with the position.)"""
        return float(np.median(self.test_concept_values)), float(np.median(self.test_contrast_values))

    def to_dict(self) -> dict:
        return {**self.synapse.to_dict(), "screen_t": self.screen_t, "selection": self.selection.to_dict(),
                "test": self.test.to_dict(), "p_bonferroni": self.p_bonferroni, "significant": self.significant,
                "test_median_concept": self.medians[0], "test_median_contrast": self.medians[1]}


@dataclass
class ConceptSynapses:
    """What ``find_concept_synapses`` found: the ``top_k`` synapses, best first, and how they were found."""

    synapses: list[SynapseResult]
    split: SentenceSplit
    level: str
    presynaptic: str | None
    alpha: float
    entries_screened: int
    candidates: int
    seed: int
    strengthening: bool

    @property
    def significant(self) -> list[SynapseResult]:
        return [s for s in self.synapses if s.significant]

    @property
    def best(self) -> SynapseResult | None:
        """The reported synapse with the smallest held-out p-value (None if none was reported)."""
        return min(self.synapses, key=lambda s: s.test.p, default=None)

    def to_dict(self) -> dict:
        return {
            "level": self.level, "presynaptic": self.presynaptic, "strengthening": self.strengthening,
            "alpha": self.alpha, "seed": self.seed,
            "entries_screened": self.entries_screened, "candidates": self.candidates,
            "n_selection": [len(self.split.selection_concept), len(self.split.selection_contrast)],
            "n_test": [len(self.split.test_concept), len(self.split.test_contrast)],
            "synapses": [s.to_dict() for s in self.synapses], "n_significant": len(self.significant),
        }

    def summary(self, config) -> str:
        """One line: the best synapse and whether it is significant on the held-out sentences."""
        what = ("neuron-level sigma" if self.level == "neuron" else "hub-level rho") + " synapses"
        what += " that grow with the concept" if self.strengthening else " larger after concept sentences"
        n_c, n_k = len(self.split.test_concept), len(self.split.test_contrast)
        if not self.synapses:
            return f"no {what} on the selection sentences: nothing to test (null result)"
        best = self.best
        line = (f"best of {len(self.synapses)} {what}, on {n_c} vs {n_k} held-out sentences: "
                f"{best.synapse.describe(config)}, U = {best.test.U:.0f} of {n_c * n_k}, p = {best.test.p:.3g} "
                f"(Bonferroni x{len(self.synapses)}: {best.p_bonferroni:.3g}), "
                f"rank-biserial {best.test.rank_biserial:.2f}, median {best.medians[0]:.3g} after concept vs "
                f"{best.medians[1]:.3g} after contrast sentences")
        verdict = (f"{len(self.significant)} significant at alpha = {self.alpha}" if self.significant
                   else f"none significant at alpha = {self.alpha} (an honest null result)")
        return f"{line}; {verdict}"

    def table(self, config) -> str:
        """The reported synapses as a text table, best (by selection) first."""
        head = (f"{'#':>2}  {'synapse':<66} {'sel r':>6} {'U':>7} {'of':>5} {'p':>9} {'p_bonf':>9} "
                f"{'r':>6}  sig  {'median concept':>14} {'median contrast':>15}")
        rows = [head]
        for k, s in enumerate(self.synapses):
            rows.append(f"{k:>2}  {s.synapse.describe(config):<66} {s.selection.rank_biserial:>6.2f} "
                        f"{s.test.U:>7.0f} {s.test.n_concept * s.test.n_contrast:>5} {s.test.p:>9.2e} "
                        f"{s.p_bonferroni:>9.2e} {s.test.rank_biserial:>6.2f}  {'yes' if s.significant else 'no ':<3}  "
                        f"{s.medians[0]:>14.4g} {s.medians[1]:>15.4g}")
        return "\n".join(rows)


def _read_batch(model, sentences: list[str], level: str, max_tokens: int, name: str) -> list[SentenceRecord]:
    """The records of one batch of sentences (a task of :func:`read_sentences`)."""
    return record_sentences(model, sentences, level, max_tokens, len(sentences), name=name)


def read_sentences(model, sentences: list[str], level: str = "neuron", max_tokens: int = DEFAULT_MAX_TOKENS,
                   batch_size: int = 16, name: str = "sentences", progress: bool = False,
                   scheduler=None) -> list[SentenceRecord]:
    """``record_sentences`` with each batch of ``batch_size`` sentences a task of ``scheduler``
    (``bdh_graph.distributed.engine``): the model goes to each worker once, the records come back in order. The
    batches are those ``record_sentences`` makes, so the records are the same."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    sentences = check_sentences(sentences, name, max_tokens)
    batches = [sentences[start:start + batch_size] for start in range(0, len(sentences), batch_size)]
    with engine(scheduler) as eng, eng.shared(model) as (shared,):
        done = dict(eng.map(_read_batch, ((shared, batch, level, max_tokens, name) for batch in batches),
                            len(batches), f"reading {name}", "batch", progress))
    return [record for k in range(len(batches)) for record in done[k]]


def synapse_values(records: list[SentenceRecord], layers, pres, posts) -> np.ndarray:
    """State of the given entries after each sentence, (sentences, entries), float64."""
    layers, pres, posts = (torch.as_tensor(np.asarray(a), dtype=torch.long) for a in (layers, pres, posts))
    return torch.stack([r.synapse_values(layers, pres, posts) for r in records]).double().numpy()


def find_concept_synapses(model, concept: list[str], contrast: list[str], level: str = "neuron",
                          presynaptic: str | None = None, top_k: int = 5, candidates: int = 1000,
                          test_fraction: float = 0.5, alpha: float = 0.01, seed: int = 0,
                          max_tokens: int = DEFAULT_MAX_TOKENS, layers: list[int] | None = None,
                          strengthening: bool = True, batch_size: int = 16, progress: bool = False,
                          scheduler=None) -> ConceptSynapses:
    """Find the ``top_k`` synapses that best separate ``concept`` from ``contrast`` sentences and test them on
    held-out sentences (module doc: split, record, screen, select, test).

    ``level``: ``"neuron"`` ranks the paper's synapses ``sigma[l][i, j]`` (presynaptic ``"model"`` neurons by
    default, or ``"input"`` neurons, or ``"all"``); ``"hub"`` ranks the tensor model's ``rho[l][c, j]``.
    ``layers`` restricts the screen (default: all). ``strengthening`` (default) keeps only synapses that grow
    with the concept (``screen_synapses``). Memory is about ``16 * rows * n`` bytes for the screen plus
    ``4 L (n_pre + n)`` bytes per recorded token. ``progress``: bars while the sentences are read and screened.
    ``scheduler``: where the sentences are read (``batch_size`` sentences a task) and the layers screened
    (``bdh_graph.distributed.engine``: None, this process; ``"local:N"``, a scheduler address or an ``Engine``);
    the result is the same.
    """
    c = model.config
    rows = presynaptic_rows(c, level, presynaptic)
    for name, value, lo in (("top_k", top_k, 1), ("candidates", candidates, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if top_k > candidates:
        raise ValueError(f"top_k={top_k} must not exceed candidates={candidates}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if layers is not None and (not layers or any(not 0 <= l < c.n_layer for l in layers)):
        raise ValueError(f"layers must be a non-empty list of layer indices in [0, {c.n_layer}), got {layers!r}")
    split = split_sentences(concept, contrast, test_fraction, seed, max_tokens)

    with engine(scheduler) as eng, eng.shared(model):  # sent once for the four lists of sentences
        def record(sentences, name):
            return read_sentences(model, sentences, level, max_tokens, batch_size, name, progress, eng)

        sel_c = record(split.selection_concept, "selection concept sentences")
        sel_k = record(split.selection_contrast, "selection contrast sentences")
        screen = screen_synapses(sel_c, sel_k, rows, candidates, layers, strengthening, progress, eng)
        val_c = synapse_values(sel_c, screen.layers, screen.pres, screen.posts)
        val_k = synapse_values(sel_k, screen.layers, screen.pres, screen.posts)
        U_sel = stats.mannwhitneyu(val_c, val_k, alternative="greater", axis=0).statistic
        order = np.lexsort((-screen.t, -np.asarray(U_sel)))[:top_k]  # by selection U, then t
        del sel_c, sel_k

        entries = (screen.layers[order], screen.pres[order], screen.posts[order])
        test_c = synapse_values(record(split.test_concept, "held-out concept sentences"), *entries)
        test_k = synapse_values(record(split.test_contrast, "held-out contrast sentences"), *entries)
    results = []
    for m, i in enumerate(order):
        syn = Synapse(int(screen.layers[i]), int(screen.pres[i]), int(screen.posts[i]), level)
        test = mann_whitney(test_c[:, m], test_k[:, m])
        p_bonf = min(1.0, len(order) * test.p)
        results.append(SynapseResult(syn, float(screen.t[i]), mann_whitney(val_c[:, i], val_k[:, i]), test, p_bonf,
                                     bool(p_bonf < alpha), test_c[:, m], test_k[:, m]))
    return ConceptSynapses(results, split, level, presynaptic or ("model" if level == "neuron" else None), alpha,
                           screen.entries, len(screen.t), seed, strengthening)


class SentenceTrace(NamedTuple):
    """A synapse's state after each token of one sentence read from a zero state; ``values[-1]`` is the state after
    the sentence, the value the test ranks."""

    sentence: str
    concept: bool
    values: np.ndarray


def held_out_traces(model, found: ConceptSynapses, per_set: int = 3) -> list[SentenceTrace]:
    """The best synapse of ``found`` over held-out sentences as its test reads them: each sentence alone from a zero
    state (``synapse_trace``), token by token. The first ``per_set`` concept, then contrast sentences of the held-out
    lists (their order is the random split's: a random sample)."""
    if found.best is None:
        raise ValueError("no concept synapse was reported (found.synapses is empty): there is nothing to trace")
    if isinstance(per_set, bool) or not isinstance(per_set, int) or per_set < 1:
        raise ValueError(f"per_set must be an integer >= 1, got {per_set!r}")
    chosen = ([(s, True) for s in found.split.test_concept[:per_set]]
              + [(s, False) for s in found.split.test_contrast[:per_set]])
    return [SentenceTrace(sentence, concept, synapse_trace(model, sentence, found.best.synapse,
                                                           max_tokens=len(sentence.encode("utf-8"))))
            for sentence, concept in chosen]
