"""Independent pieces of work run in this process or on Dask (``dask.distributed``): one engine, three schedulers.

Four kinds of work split into independent tasks: the row (or column) tiles of a graph product
(``graphs.neuron_graphs``), the graphs of a modularity sweep, observed and null (``structure.sweep``), the
readings or sentences of a batch run (``experiments.memory``, ``interpretability.monosemantic``), and the snapshots of
a training run (``experiments.emergence``). Each is written as a task function, a pure function of its arguments
defined at module level; an :class:`Engine` maps it over the tasks' arguments and hands the results back with
their index, to be combined in index order (or by a rule that does not depend on the order).

Schedulers (:func:`parse_scheduler`, the ``--scheduler`` option):

- ``"none"`` (default): in this process, one task after the other, in order;
- ``"local"`` or ``"local:N"``: a ``LocalCluster`` of N single-threaded worker processes on this machine (N
  defaults to its CPU count), started and closed by :func:`engine`, which prints the Dask dashboard's address;
- ``"tcp://host:port"``: a running Dask scheduler (``dask scheduler`` by hand, dask-jobqueue on SLURM or PBS,
  dask-kubernetes), left running.

On Dask, data that many tasks read (graph factors, a model, the sentences' records) is scattered once to every
worker (:meth:`Engine.shared`) and tasks refer to it; tasks are submitted a bounded number at a time and their
results gathered as they complete, so a worker holds its current tasks' data and results, the driver the
combined result. A task on a worker that dies is run again by the scheduler on another; as tasks are pure, the
result is the same. Dask cannot rebuild scattered data that lived only on a dead worker (its memory manager may
have dropped the other copies) and cancels the tasks that read it: the engine scatters that value again from
the driver and submits those tasks again, at most ``RETRIES`` times each. Randomness comes from
:func:`task_rng`, seeded by the run's seed and the task's index, never by a worker or the time, so results equal
the in-process run's.

Dask is an optional extra: ``pip install "bdh-graph[distributed]"``.
"""
from __future__ import annotations

import os
import socket
import sys
import uuid
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from urllib.parse import urlsplit

import numpy as np
from tqdm.auto import tqdm

from .errors import install_command, require

EXTRA = "distributed"
INSTALL = install_command(EXTRA)
SCHEDULER_FORMS = "none, local, local:N (N >= 1 worker processes) or tcp://host:port (a running Dask scheduler)"
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler before giving up
# Tasks in flight at once: at least 20, because Dask's active memory manager keeps one replica of scattered data
# per waiting task only while fewer than 20 wait; below that it may drop copies that the next tasks fetch again.
MIN_IN_FLIGHT = 20
RETRIES = 3  # submissions again of one task whose shared data a dead worker took with it


def require_dask(purpose: str = "a Dask scheduler"):
    """``distributed`` (Dask's scheduler and workers), or :class:`MissingExtraError` saying what to install."""
    return require("distributed", purpose=purpose, extra=EXTRA)


@dataclass(frozen=True)
class Scheduler:
    """Where tasks run: ``kind`` is ``"none"`` (this process), ``"local"`` (a LocalCluster of ``workers`` processes,
    None for one per CPU) or ``"address"`` (the scheduler at ``address``)."""

    kind: str
    workers: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.kind == "local":
            return "local" if self.workers is None else f"local:{self.workers}"
        return self.address if self.kind == "address" else "none"


def parse_scheduler(text: str, name: str = "scheduler") -> Scheduler:
    """``"none"``, ``"local"``, ``"local:N"`` or ``"tcp://host:port"`` as a :class:`Scheduler`; anything else is refused
    naming ``name`` and the forms expected.

    >>> parse_scheduler("local:2")
    Scheduler(kind='local', workers=2, address=None)
    """
    named = f"{name} {text!r}" if name else repr(text)
    if not isinstance(text, str):
        raise ValueError(f"{named}: expected a string, one of {SCHEDULER_FORMS}")
    if text == "none":
        return Scheduler("none")
    if text == "local" or text.startswith("local:"):
        workers = text[len("local:"):] if text != "local" else None
        if workers is not None and not (workers.isdigit() and int(workers) >= 1):
            raise ValueError(f"{named}: a LocalCluster needs N >= 1 worker processes (local:N), got {workers!r}")
        return Scheduler("local", None if workers is None else int(workers))
    if text.startswith("tcp://"):
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"{named}: expected a scheduler address tcp://host:port, e.g. tcp://10.0.0.5:8786")
        return Scheduler("address", address=text)
    raise ValueError(f"{named}: expected one of {SCHEDULER_FORMS}")


def task_rng(seed: int, *index: int) -> np.random.Generator:
    """The random generator of one task: seeded by the run's ``seed`` and the task's ``index`` (e.g. its point and
    null model), so a task draws the same numbers wherever and whenever it runs."""
    return np.random.default_rng([int(seed), *map(int, index)])


class _Shared:
    """A value scattered to the workers, pickled whole: Dask's own serializers rebuild some objects (a torch module)
    from their attributes alone and lose what lies elsewhere (its hooks)."""

    def __init__(self, value) -> None:
        self.value = value


def _run(func, *args):
    """A task on a worker: ``func`` of its arguments, each shared value unwrapped."""
    return func(*(arg.value if isinstance(arg, _Shared) else arg for arg in args))


class Engine:
    """Runs task functions over their arguments, in this process (``client`` None) or on a Dask ``client``."""

    def __init__(self, client=None, description: str = "in this process") -> None:
        self.client = client
        self.description = description
        self._shared: dict[int, list] = {}  # id of a value shared now -> [value, its future, blocks sharing it]
        self._shared_key: dict[str, int] = {}  # key of each future that held a value shared now -> the value's id

    @property
    def in_process(self) -> bool:
        return self.client is None

    def threads(self) -> int:
        """Worker threads the tasks can use now (1 in this process)."""
        return 1 if self.client is None else max(1, sum(self.client.nthreads().values()))

    @contextmanager
    def shared(self, *values):
        """The ``values`` as tasks see them, for the ``with`` block: themselves in this process; on Dask a future of
        one copy on every worker each, scattered on entry (a value shared again inside the block is not sent
        again; None is not sent) and released on exit.

        >>> with eng.shared(factors) as (factors_on_workers,):                  # doctest: +SKIP
        ...     results = list(eng.map(tile_edges, [(factors_on_workers, ...), ...]))
        """
        if self.client is None:
            yield values
            return
        held = []
        try:
            for value in values:
                if value is None:
                    continue
                entry = self._shared.get(id(value))
                if entry is None:  # the entry keeps the value alive, so its id stays its own
                    entry = self._shared[id(value)] = [value, self._scatter(value), 0]
                entry[2] += 1
                held.append(id(value))
            yield tuple(None if value is None else self._shared[id(value)][1] for value in values)
        finally:
            for key in held:
                entry = self._shared[key]
                entry[2] -= 1
                if entry[2] == 0:
                    entry[1].release()
                    del self._shared[key]
                    self._shared_key = {k: v for k, v in self._shared_key.items() if v != key}

    def _scatter(self, value):
        future = self.client.scatter(_Shared(value), broadcast=True, hash=False)
        self._shared_key[future.key] = id(value)
        return future

    def _reshare_lost(self) -> None:
        """Scatter again every shared value whose data the cluster lost."""
        for entry in self._shared.values():
            if entry[1].status != "finished":
                entry[1].release()
                entry[1] = self._scatter(entry[0])

    def _current(self, args: tuple) -> tuple:
        """``args`` with each future of a shared value replaced by the value's future now."""
        return tuple(self._shared[self._shared_key[arg.key]][1] if getattr(arg, "key", None) in self._shared_key
                     else arg for arg in args)

    def map(self, func, arguments, total: int | None = None, desc: str | None = None, unit: str = "task",
            progress: bool = False, first_alone: bool = False):
        """Yield ``(index, func(*arguments[index]))`` for each tuple of ``arguments``: in order in this process, as
        they complete on Dask. ``arguments`` may be a generator: it is read one task at a time, just before the
        task is submitted, so it can depend on the results yielded so far; with ``first_alone`` the first task
        completes before any other is submitted (when its result makes every other cheaper). A task's exception is
        raised here."""
        arguments = iter(arguments)
        with tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False) as bar:
            if self.client is None:
                for index, args in enumerate(arguments):
                    result = func(*args)
                    bar.update(1)
                    yield index, result
                return
            yield from self._dask_map(func, enumerate(arguments), bar, first_alone)

    def _dask_map(self, func, numbered, bar, first_alone: bool):
        distributed = require_dask()
        in_flight = distributed.as_completed(loop=self.client.loop)
        task_of = {}  # key of a future in flight -> (index, arguments, submissions so far)

        def submit_one(index: int, args: tuple, submissions: int) -> None:
            args = self._current(args)
            future = self.client.submit(_run, func, *args, key=f"{func.__name__}-{uuid.uuid4().hex}")
            task_of[future.key] = index, args, submissions + 1
            in_flight.add(future)

        def submit(count: int) -> None:
            for index, args in islice(numbered, count):
                submit_one(index, args, 0)

        window = max(MIN_IN_FLIGHT, 2 * self.threads())
        submit(1 if first_alone else window)
        try:
            for future in in_flight:
                index, args, submissions = task_of.pop(future.key)
                try:
                    result = future.result()
                except CancelledError:  # its shared data died with a worker, or someone cancelled it
                    self._reshare_lost()
                    if submissions > RETRIES or all(a is b for a, b in zip(args, self._current(args))):
                        raise  # no shared value it read was lost
                    submit_one(index, args, submissions)
                    continue
                future.release()
                bar.update(1)
                yield index, result
                submit(window - len(task_of))
        finally:
            for future in in_flight.futures:  # a task failed, or the caller stopped early
                future.cancel()


def _connect(distributed, address: str):
    """A client of the scheduler at ``address``; a clear ``ConnectionError`` within ``CONNECT_TIMEOUT`` seconds
    when nothing answers there."""
    parts = urlsplit(address)
    where = f"scheduler {address!r}"
    try:  # a plain socket first: a refused or unreachable address is told at once, not after Dask's retries
        socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT).close()
    except OSError as err:
        raise ConnectionError(f"{where}: cannot connect ({err.strerror or err}); is a Dask scheduler running there? "
                              "(start one with 'dask scheduler', or use --scheduler local)") from None
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"{where}: something listens there, but no Dask scheduler answered within "
                              f"{CONNECT_TIMEOUT:g} s ({err})") from None


def _dashboard(client) -> str:
    return client.dashboard_link or "none (Dask serves it with bokeh: pip install 'bokeh>=3.1')"


def _announce(text: str) -> None:
    print(f"dask: {text}", file=sys.stderr, flush=True)


@contextmanager
def engine(scheduler=None, announce=_announce):
    """An :class:`Engine` for ``scheduler``: None or ``"none"`` (this process), a scheduler string
    (:func:`parse_scheduler`) or :class:`Scheduler`, an :class:`Engine` (used as it is), or a
    ``distributed.Client`` (used, not closed). A LocalCluster is started here and closed on exit; ``announce``
    is told its dashboard address (printed on stderr by default).

    >>> with engine("local:2") as eng:                                         # doctest: +SKIP
    ...     circuits = product_graph(factors, Strongest(1000), scheduler=eng)
    """
    if isinstance(scheduler, Engine):
        yield scheduler
        return
    if scheduler is not None and not isinstance(scheduler, (str, Scheduler)):
        distributed = require_dask("a Dask client as scheduler")
        if not isinstance(scheduler, distributed.Client):
            raise ValueError(f"scheduler must be {SCHEDULER_FORMS}, a Scheduler, an Engine or a distributed.Client, "
                             f"got {type(scheduler).__name__}")
        yield Engine(scheduler, f"the Dask scheduler {scheduler.scheduler.address}")
        return
    if not isinstance(scheduler, Scheduler):
        scheduler = parse_scheduler("none" if scheduler is None else scheduler)
    if scheduler.kind == "none":
        yield Engine()
        return
    distributed = require_dask(f"scheduler {str(scheduler)!r}")
    cluster = None
    if scheduler.kind == "local":
        workers = scheduler.workers or os.cpu_count() or 1
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
        client = distributed.Client(cluster)
        announce(f"a LocalCluster of {workers} worker process{'es' if workers > 1 else ''} (1 thread each); "
                 f"dashboard {_dashboard(client)}")
        description = f"a LocalCluster of {workers} workers"
    else:
        client = _connect(distributed, scheduler.address)
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        announce(f"connected to {scheduler.address}, {workers} workers now"
                 + ("; tasks wait for the first worker to join" if workers == 0 else "")
                 + f"; dashboard {_dashboard(client)}")
        description = f"the Dask scheduler {scheduler.address}"
    try:
        yield Engine(client, description)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["CONNECT_TIMEOUT", "Engine", "INSTALL", "RETRIES", "SCHEDULER_FORMS", "Scheduler", "engine",
           "parse_scheduler", "require_dask", "task_rng"]
