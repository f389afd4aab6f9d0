"""Arguments and output shared by the ``bdh-graph`` commands."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..model.checkpoints import load_model
from ..kernels import available_backends, check_device
from ..model.tensor import BDH
from ..text import default_passage, read_text


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="a .safetensors or released .pt checkpoint (default: the bundled model)")
    parser.add_argument("--n-layer", type=int, default=None,
                        help="depth of a released .pt checkpoint, which cannot record it (default 6)")


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
                        help="where torch runs: cpu, cuda or cuda:<index> (default: cpu)")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--device`` of the commands that run a network (see ``bdh_graph.kernels``)."""
    parser.add_argument("--backend", choices=available_backends(), default="numba",
                        help="where the network's kernels run (default: numba; torch also runs on cuda)")
    add_device_argument(parser)


def add_text_argument(parser: argparse.ArgumentParser, default_bytes: int = 256) -> None:
    parser.add_argument("--text", type=Path, default=None,
                        help=f"UTF-8 text file (default: a {default_bytes}-byte held-out passage of the default corpus)")


def text_from_args(args: argparse.Namespace, default_bytes: int = 256) -> str:
    return read_text(args.text) if args.text is not None else default_passage(default_bytes)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def print_result(args: argparse.Namespace, data: dict, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human-readable ``text``."""
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)
