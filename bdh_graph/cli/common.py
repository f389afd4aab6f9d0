"""Arguments and output shared by the ``bdh-graph`` commands.

Option values are checked while the command line is parsed, by the argument types below, so a bad value is
refused before any work starts, with a message that names the command and the flag::

    bdh-graph generate: error: argument --temperature: must be > 0, got 0

Output paths (``--out``) are checked the same way: a folder must not be a file, a file must not be a folder, and
the place must be writable. Every command's help shows each option's default once (``HelpFormatter``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from ..distributed import INSTALL as DASK_INSTALL
from ..distributed import Scheduler, parse_scheduler, require_dask
from ..files import atomic_path
from ..errors import MissingExtraError
from ..kernels import available_backends, check_device
from ..model.checkpoints import load_model
from ..model.tensor import BDH
from ..structure.significance import check_null_draws
from ..text import default_passage, read_text

DOCS = "docs/model.md in the bdh_graph repository"  # where the mathematics is written down


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, once: not when the text already speaks of its default, and
    not for options without a value by default (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        no_default = (default is None or default is False or default is argparse.SUPPRESS
                      or (isinstance(default, (list, tuple)) and not default))
        positional = not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)
        if no_default or positional or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """The parser of ``bdh-graph`` and of each of its commands: every one shows its defaults alike
    (``HelpFormatter``, whatever formatter a command module asks for)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)


# -- argument types: a bad value is refused at parse time, and argparse names the flag ---------------------------

def checked(convert, check):
    """An argparse type: ``convert(text)`` (a float must be finite), refused unless ``check(value)`` accepts it.
    ``check`` raises ``ValueError`` or ``TypeError`` with the message to show (the library's own rules fit:
    ``Threshold``, ``TopK``, ...)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(convert, "a value")
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        try:
            check(value)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value
    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names the type in some messages
    return parse


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def at_least(low):
    """A check: ``value >= low``."""
    def check(value) -> None:
        if value < low:
            raise ValueError(f"must be >= {_show(low)}, got {_show(value)}")
    return check


def above(low):
    """A check: ``value > low``."""
    def check(value) -> None:
        if value <= low:
            raise ValueError(f"must be > {_show(low)}, got {_show(value)}")
    return check


def between(low, high, include_low: bool = True, include_high: bool = False):
    """A check: ``value`` in the interval from ``low`` to ``high`` (by default ``[low, high)``)."""
    def check(value) -> None:
        inside = ((low <= value if include_low else low < value)
                  and (value <= high if include_high else value < high))
        if not inside:
            interval = f"{'[' if include_low else '('}{_show(low)}, {_show(high)}{']' if include_high else ')'}"
            raise ValueError(f"must be in {interval}, got {_show(value)}")
    return check


def count(low: int = 1):
    """An integer ``>= low``."""
    return checked(int, at_least(low))


positive_number = checked(float, above(0))  # a finite number > 0

null_draws = checked(int, check_null_draws)  # --null-draws: 0 (none) or an integer >= 2


def input_file(text: str) -> Path:
    """A file that exists (a text, a sentence list)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"'{path}' is a folder; expected a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file '{path}' does not exist")
    return path


def output_folder(text: str) -> Path:
    """A folder to write into: created if missing, refused if it is a file or cannot be written."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"'{path}' is a file; expected a folder (it is created if missing)")
    _check_writable(path)
    return path


def output_file(text: str) -> Path:
    """A file to write: refused if it is a folder, if its folder does not exist, or if it cannot be written."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"'{path}' is a folder; expected a file name, e.g. {path / 'out.png'}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    _check_writable(path)
    return path


def _check_writable(path: Path) -> None:
    """Refuse ``path`` unless it, or the nearest of its folders that exists, is a writable folder (or file)."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if existing != path and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create '{path}': '{existing}' is a file")
    if not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        raise argparse.ArgumentTypeError(f"cannot write '{path}': '{existing}' is not writable")


def say(text: str) -> None:
    """A progress line on stderr (stdout stays for the result, e.g. ``--json``)."""
    print(text, file=sys.stderr, flush=True)


# -- arguments shared by several commands ------------------------------------------------------------------------

def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="a .safetensors or released .pt checkpoint file (default: the bundled model)")
    parser.add_argument("--n-layer", type=count(1), default=None,
                        help="depth of a released .pt checkpoint, which cannot record it (default: 6, the released "
                             "model's)")


def model_from_args(args: argparse.Namespace) -> BDH:
    """The model of ``args``, on ``args.device`` where the command has ``--device``."""
    overrides = {"n_layer": args.n_layer} if args.n_layer is not None else {}
    return load_model(args.checkpoint, **overrides).to(getattr(args, "device", "cpu"))


def device_type(text: str) -> str:
    """``--device``'s type: the device, refused at parse time (with what to install) if it cannot run here."""
    try:
        return str(check_device(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_type, default="cpu",
                        help="where torch runs: cpu, cuda or cuda:<index>")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--device`` of the commands that run a network (see ``bdh_graph.kernels``)."""
    parser.add_argument("--backend", choices=available_backends(), default=None,
                        help="where the network's kernels run (default: numba; torch, the one that runs on cuda, "
                             "with --device cuda)")
    add_device_argument(parser)


def scheduler_type(text: str) -> Scheduler:
    """``--scheduler``'s type (``bdh_graph.distributed.parse_scheduler``); anything but ``none`` needs Dask, and
    without it the message says what to install."""
    try:
        scheduler = parse_scheduler(text, name="")
        if scheduler.kind != "none":
            require_dask(f"--scheduler {text}")
    except (ValueError, MissingExtraError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return scheduler


def add_scheduler_argument(parser: argparse.ArgumentParser, work: str) -> None:
    """``--scheduler`` of the commands whose work splits into independent tasks (``bdh_graph.distributed``)."""
    parser.add_argument("--scheduler", type=scheduler_type, default="none",
                        help=f"where {work} run: none (this process), local[:N] (a Dask LocalCluster of N worker "
                             "processes, one per CPU without N; its dashboard address is printed) or "
                             "tcp://host:port (a running Dask scheduler, e.g. of dask-jobqueue on SLURM); the "
                             f"results are the same. Dask: {DASK_INSTALL}")


def add_text_argument(parser: argparse.ArgumentParser, default_bytes: int = 256) -> None:
    parser.add_argument("--text", type=input_file, default=None,
                        help=f"UTF-8 text file (default: a {default_bytes}-byte held-out passage of the default "
                             "corpus)")


def text_from_args(args: argparse.Namespace, default_bytes: int = 256) -> str:
    return read_text(args.text) if args.text is not None else default_passage(default_bytes)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def print_result(args: argparse.Namespace, data: dict, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human-readable ``text``."""
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)


def write_report(args: argparse.Namespace, name: str, result, files: dict, **extra) -> int:
    """An experiment's report: ``result.to_dict()``, ``extra`` and the figures ``files`` written atomically as
    ``args.out/name``, then printed (as JSON with ``--json``, the report's file among the figures; else the result's
    summary and the files written)."""
    data = {**result.to_dict(), **extra, "figures": files}
    path = args.out / name
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
    files = {**files, "report": str(path)}
    print_result(args, {**data, "figures": files}, f"{result.summary()}\n  wrote {', '.join(files.values())}")
    return 0
