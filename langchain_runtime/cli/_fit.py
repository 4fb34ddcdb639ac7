"""Tables that fit the terminal without cutting an id or splitting a word.

A cell is never cut or wrapped: an id is what a user copies, a state or a cost is
read whole. When a table's natural width is wider than the terminal, its long free
text (a note) moves below it; when even that is too wide, each row is shown as a
heading (its first cell) and ``key: value`` pairs, packed into lines of the width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "print_fitted", "summary_title"]


@dataclass(frozen=True)
class Column:
    """A column: its header, and how its cells line up."""

    name: str
    justify: JustifyMethod = "left"


def summary_title(console: Console, head: str, summary: str) -> str:
    """``head · summary`` on one line when it fits the console, else on two lines."""
    one = f"{head} · {summary}"
    return one if Text.from_markup(one).cell_len <= console.width else f"{head}\n{summary}"


def _table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    footer: Sequence[str] | None,
    **options: object,
) -> Table:
    table = Table(show_footer=footer is not None, **options)  # type: ignore[arg-type]
    for i, column in enumerate(columns):
        table.add_column(
            column.name,
            justify=column.justify,
            no_wrap=True,
            footer=footer[i] if footer is not None else "",
        )
    for row in rows:
        table.add_row(*row)
    return table


def _fits(console: Console, table: Table) -> bool:
    """True when ``table`` at its natural width (every cell whole) fits the console."""
    unbounded = console.options.update_width(1_000_000)
    return Measurement.get(console, unbounded, table).maximum <= console.width


def _pack(console: Console, heading: str, pairs: Sequence[tuple[str, str]]) -> None:
    """``heading``, then ``key: value`` pairs, as many to a line as fit (indented)."""
    console.print(Text.from_markup(heading, style="bold"), no_wrap=True, overflow="ignore")
    line = Text("  ")
    for key, value in pairs:
        item = Text(f"{key}: ") + Text.from_markup(value)
        if line.cell_len > 2 and line.cell_len + 3 + item.cell_len > console.width:
            console.print(line, no_wrap=True, overflow="ignore")
            line = Text("  ")
        line += Text("   ") + item if line.cell_len > 2 else item
    if line.cell_len > 2:
        console.print(line, no_wrap=True, overflow="ignore")


def _title(console: Console, title: str | None) -> None:
    """The title above the table, wrapped between words to the console's width."""
    if title:
        console.print(Text.from_markup(title, style="italic"))


def print_fitted(
    console: Console,
    *,
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    notes: Mapping[int, str] | None = None,
    footer: Sequence[str] | None = None,
    **options: object,
) -> None:
    """Print ``rows`` (rich markup, already escaped) so that no cell is cut or split.

    Args:
        title: A line above the table (may hold a newline; see :func:`summary_title`).
        columns: The columns; every row has one cell per column.
        rows: The cells.
        notes: Free text for some rows (by row index): a ``note`` column when the
            table still fits with it, else a line below the table per note.
        footer: A footer cell per column (a totals row), or None.
        options: Passed to :class:`rich.table.Table` (``box``, ``caption``...).
    """
    notes = {i: n for i, n in (notes or {}).items() if n}
    if notes:
        wide = _table(
            [*columns, Column("note")],
            [[*row, notes.get(i, "")] for i, row in enumerate(rows)],
            [*footer, ""] if footer is not None else None,
            **options,
        )
        if _fits(console, wide):
            _title(console, title)
            console.print(wide)
            return
    table = _table(columns, rows, footer, **options)
    if _fits(console, table):
        _title(console, title)
        console.print(table)
        for i in sorted(notes):
            console.print(Text.from_markup(f"{rows[i][0]}: ") + Text.from_markup(notes[i]))
        return
    # a listing: each row's first cell as a heading, the other cells under it
    _title(console, title)
    for i, row in enumerate(rows):
        pairs = [(c.name, cell) for c, cell in zip(columns[1:], row[1:], strict=True) if cell]
        _pack(console, row[0], pairs)
        if i in notes:
            console.print(Text("  note: ") + Text.from_markup(notes[i]))
    if footer is not None:
        pairs = [(c.name, cell) for c, cell in zip(columns[1:], footer[1:], strict=True) if cell]
        _pack(console, footer[0], pairs)
    caption = options.get("caption")
    if isinstance(caption, str):
        console.print(Text.from_markup(caption))
