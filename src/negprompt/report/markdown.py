"""Markdown plumbing of the report: pipe tables through pandas/tabulate, prose through the Jinja2 template
(templates/report.md.j2). The figures' formatting stays with the sections that state them."""

from __future__ import annotations

import functools

import pandas as pd
from tabulate import DataRow, TableFormat

from negprompt import NegPromptError

# a cell with no value at all (None), written as the bare `| |` where an empty string is `|  |`; Unicode private use
BARE = "\ue000"


def _row(cells: list[str], colwidths, colaligns) -> str:
    return "|" + "|".join(" " if c == f" {BARE} " else c for c in cells) + "|"


# GitHub's pipe table without column alignment: each cell as given between "| ", a "|---|" rule under the head,
# so a row's line in the markdown does not change when another row gets wider
PIPE = TableFormat(
    lineabove=None,
    linebelowheader=lambda colwidths, colaligns: "|---" * len(colwidths) + "|",
    linebetweenrows=None,
    linebelow=None,
    headerrow=DataRow("|", "|", "|"),
    datarow=_row,
    padding=1,
    with_header_hide=None,
)


def table(rows: list[list], columns: list[str]) -> str:
    """A markdown pipe table of formatted cells (strings, or None for a bare cell) under the header `columns`."""
    if any(len(r) != len(columns) for r in rows):
        raise NegPromptError(f"markdown table: every row needs {len(columns)} cells, one per column {columns}")
    df = pd.DataFrame([[BARE if c is None else c for c in r] for r in rows], columns=range(len(columns)), dtype=object)
    return df.to_markdown(
        index=False, headers=columns, tablefmt=PIPE, stralign=None, numalign=None, disable_numparse=True
    )


@functools.cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("negprompt.report", "templates"),
        autoescape=False,  # markdown, not HTML
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing figure is an error, not an empty string in the report
    )
    env.filters["fmt"] = format  # Python's format spec, {{ x | fmt(".0%") }} (Jinja's `format` is printf-style)
    return env


def render(template: str, **context) -> str:
    """A template of src/negprompt/report/templates/ filled with `context`."""
    return _environment().get_template(template).render(**context)
