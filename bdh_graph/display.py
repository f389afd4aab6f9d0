"""Short summaries for notebooks: a model, a network or an analysis shows what it is at a glance
(``_repr_html_``, as scipy and pandas objects do), its sizes, wiring, backend and mode, or its verdicts."""
from __future__ import annotations

from html import escape


def html_summary(title: str, rows: list[tuple[str, object]]) -> str:
    """A captioned two-column HTML table of ``rows`` (what, value); every text is escaped."""
    body = "".join(f"<tr><th style='text-align:left'>{escape(what)}</th>"
                   f"<td style='text-align:left'>{escape(str(value))}</td></tr>" for what, value in rows)
    return f"<table><caption style='text-align:left'><b>{escape(title)}</b></caption>{body}</table>"
