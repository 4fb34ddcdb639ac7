"""Task graphs drawn as standalone SVG: a small layered layout, no JavaScript, no network.

Layers are the longest dependency path from a root (so every edge points down);
within a layer, tasks are ordered by the mean position of their dependencies (one
barycentre pass, ties by id), which keeps most edges short and uncrossed for the
graphs a workflow has. Colours follow the task states of a run when one is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["STATE_COLOURS", "Svg", "graph_svg", "layers"]

#: Fill colour per task state (also used by the run timeline).
STATE_COLOURS: Mapping[str, str] = {
    "completed": "#2e9e5b",
    "failed": "#d64541",
    "cancelled": "#e08e2b",
    "skipped": "#9aa0a6",
    "running": "#3b7dd8",
    "ready": "#8fb8ef",
    "pending": "#c9ced6",
}
_NEUTRAL = "#eef1f5"
_FONT = "font-family='ui-sans-serif,system-ui,sans-serif' font-size='13'"
_CHAR_W = 7.4  # average glyph width at 13px, for box sizing
_BOX_H, _GAP_X, _GAP_Y, _PAD = 34, 28, 54, 16


class Svg(str):
    """SVG markup that Jupyter displays as a picture (and that is still a ``str``)."""

    __slots__ = ()

    def _repr_svg_(self) -> str:
        return str(self)


def layers(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tasks grouped by depth (longest path from a root), each layer ordered.

    ``deps`` maps each task id to its dependencies; it must be acyclic (a
    ``TaskGraph`` always is).
    """
    depth: dict[str, int] = {}
    waiting = {tid: len(d) for tid, d in deps.items()}
    children: dict[str, list[str]] = {tid: [] for tid in deps}
    for tid, ds in deps.items():
        for dep in ds:
            children[dep].append(tid)
    ready = [tid for tid, n in waiting.items() if n == 0]
    while ready:  # topological order, iteratively: a long chain needs no deep stack
        tid = ready.pop()
        depth[tid] = 1 + max((depth[d] for d in deps[tid]), default=-1)
        for child in children[tid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    grouped: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for tid in sorted(depth):
        grouped[depth[tid]].append(tid)
    position: dict[str, float] = {}
    for row in grouped:

        def key(tid: str) -> tuple[float, str]:
            parents = [position[d] for d in deps[tid] if d in position]
            return (sum(parents) / len(parents) if parents else -1.0, tid)

        row.sort(key=key)
        for i, tid in enumerate(row):
            position[tid] = float(i)
    return grouped


def _width(label: str) -> float:
    return max(64.0, len(label) * _CHAR_W + 24)


def graph_svg(
    deps: Mapping[str, Sequence[str]],
    states: Mapping[str, str] | None = None,
    *,
    title: str | None = None,
) -> Svg:
    """The graph ``deps`` (task id -> its dependencies) as an SVG drawing.

    Args:
        deps: Every task id with the ids it depends on.
        states: Task id -> state (``completed``, ``failed``, ...): boxes are filled
            with the state's colour and the state shows in each box's tooltip.
        title: The drawing's accessible title.

    Example:
        >>> svg = graph_svg({"a": [], "b": ["a"], "c": ["a"]}, {"a": "completed"})
        >>> svg.count("<rect"), svg.count("marker-end=")
        (3, 2)
    """
    rows = layers(deps)
    widths = [sum(_width(t) for t in row) + _GAP_X * (len(row) - 1) for row in rows]
    total_w = max(widths, default=0.0) + 2 * _PAD
    total_h = len(rows) * _BOX_H + max(len(rows) - 1, 0) * _GAP_Y + 2 * _PAD
    boxes: dict[str, tuple[float, float, float]] = {}  # id -> x, y, width
    for r, row in enumerate(rows):
        x = _PAD + (total_w - 2 * _PAD - widths[r]) / 2
        top = float(_PAD + r * (_BOX_H + _GAP_Y))
        for tid in row:
            box_w = _width(tid)
            boxes[tid] = (x, top, box_w)
            x += box_w + _GAP_X
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{total_w:.0f}' height='{total_h:.0f}' "
        f"viewBox='0 0 {total_w:.0f} {total_h:.0f}' role='img' class='lcr-graph'>",
        f"<title>{escape(title or 'task graph')}</title>",
        "<defs><marker id='lcr-arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto-start-reverse'><path d='M0,0L10,5L0,10z' fill='#5f6b7a'/>"
        "</marker></defs>",
    ]
    for tid in sorted(deps):
        cx, cy, cw = boxes[tid]
        for dep in deps[tid]:
            px, py, pw = boxes[dep]
            x1, y1 = px + pw / 2, py + _BOX_H
            x2, y2 = cx + cw / 2, cy
            mid = (y1 + y2) / 2
            out.append(
                f"<path d='M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} "
                f"{x2:.1f},{y2 - 1:.1f}' fill='none' stroke='#5f6b7a' stroke-width='1.4' "
                "marker-end='url(#lcr-arrow)'/>"
            )
    for tid, (x, y, w) in boxes.items():
        state = (states or {}).get(tid)
        fill = STATE_COLOURS.get(state, _NEUTRAL) if state else _NEUTRAL
        ink = "#ffffff" if state in ("completed", "failed", "running", "cancelled") else "#1f2933"
        tip = f"{tid}: {state}" if state else tid
        out.append(
            f"<g class='lcr-node' data-task='{escape(tid, quote=True)}'>"
            f"<title>{escape(tip)}</title>"
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{_BOX_H}' rx='7' "
            f"fill='{fill}' stroke='#5f6b7a' stroke-width='1'/>"
            f"<text x='{x + w / 2:.1f}' y='{y + _BOX_H / 2 + 4.5:.1f}' text-anchor='middle' "
            f"fill='{ink}' {_FONT}>{escape(tid)}</text></g>"
        )
    out.append("</svg>")
    return Svg("".join(out))
