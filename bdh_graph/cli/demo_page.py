"""The demo as one page: ``index.html`` in the demo's folder, each part's result in words beside its figures, in
the order the parts ran. The page is self-contained (inline style, no script, figures linked by relative paths,
nothing fetched from a network); ``results.json`` beside it holds every number it states."""
from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..files import atomic_path

STYLE = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
section{display:flex;flex-wrap:wrap;gap:1.5em;border-top:1px solid #ccc;padding:1em 0}
.words{flex:1 1 480px}.words pre{white-space:pre-wrap;font-size:90%;background:#f6f6f6;padding:.6em}
.figures{flex:1 1 560px}figure{margin:0 0 1em 0}img{max-width:100%}figcaption{font-size:80%;color:#555}"""


@dataclass(frozen=True)
class Part:
    """One part of the demo as it ran: ``name`` (its key in results.json), what it did (``doing``), its result
    in words (``summary``) and the figures it wrote."""

    name: str
    doing: str
    summary: str
    figures: list[Path]


def figures_of(result) -> list[Path]:
    """The PNG files a part's result names (in its ``figure``, ``figures`` and ``files`` entries; its words, the
    ``summary``, are not searched), each once."""
    if isinstance(result, dict):
        found = [f for key, value in result.items() if key != "summary" for f in figures_of(value)]
    elif isinstance(result, (list, tuple)):
        found = [f for value in result for f in figures_of(value)]
    else:
        found = [Path(result)] if isinstance(result, (str, Path)) and str(result).endswith(".png") else []
    return list(dict.fromkeys(found))


def write_page(folder: Path, title: str, parts: list[Part]) -> Path:
    """Write ``folder/index.html`` from ``parts`` (figures linked relative to ``folder``) and return its path."""
    sections = []
    for k, part in enumerate(parts, start=1):
        figures = "".join(
            f"<figure><img src=\"{escape(rel)}\" alt=\"{escape(rel)}\"><figcaption>{escape(rel)}</figcaption></figure>"
            for rel in (Path(os.path.relpath(f, folder)).as_posix() for f in part.figures))
        sections.append(f"<section id=\"{escape(part.name)}\"><div class=\"words\"><h2>{k}. {escape(part.name)}</h2>"
                        f"<p class=\"doing\">{escape(part.doing)}</p><pre class=\"result\">{escape(part.summary)}</pre>"
                        f"</div><div class=\"figures\">{figures}</div></section>")
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1><p>Every number on this page is in "
            f"<a href=\"results.json\">results.json</a>.</p>\n" + "\n".join(sections) + "\n</body></html>\n")
    path = folder / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
