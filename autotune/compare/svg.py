"""Small SVG charts (grouped bars with error bars, lines and steps), written as text.

Why not matplotlib: importing and drawing three figures with it took 1.4 s of the 4.2 s CPU that
`autotune compare` spent over 1,000 runs (bench/tracking/compare_speed.py), against a 5 s
budget; these charts take milliseconds. Text stays text, in the browser's sans-serif.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
FONT = 'font-family="sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 12))
    return ticks


def _label(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2g}"


@dataclass
class Frame:
    """The plotting area of a chart and its data ranges."""

    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float
    left: float = 52
    right: float = 22  # room for the last x tick label, centred on the edge
    top: float = 26
    bottom: float = 40

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return (
            self.height
            - self.bottom
            - (v - self.y0) / span * (self.height - self.top - self.bottom)
        )


def _axes(
    f: Frame,
    yticks: list[float],
    xticks: list[tuple[float, str]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
) -> list[str]:
    out = []
    bottom, top = f.height - f.bottom, f.top
    for t in yticks:
        y = f.y(t)
        out.append(
            f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.width - f.right}" y2="{y:.1f}" '
            'stroke="#e4e4e4"/>'
        )
        out.append(
            f'<text x="{f.left - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_label(t)}</text>'
        )
    for x, text in xticks:
        px = f.x(x)
        out.append(
            f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#444"/>'
        )
        out.append(
            f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle" {FONT}>'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<rect x="{f.left}" y="{top}" width="{f.width - f.left - f.right}" '
        f'height="{bottom - top}" fill="none" stroke="#444"/>'
    )
    if title:
        out.append(
            f'<text x="{f.width / 2:.1f}" y="16" text-anchor="middle" {FONT} font-size="12">'
            f"{escape(title)}</text>"
        )
    if xlabel:
        out.append(
            f'<text x="{(f.left + f.width - f.right) / 2:.1f}" y="{f.height - 6}" '
            f'text-anchor="middle" {FONT}>{escape(xlabel)}</text>'
        )
    if ylabel:
        cy = (top + bottom) / 2
        out.append(
            f'<text x="12" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 12 {cy:.1f})" '
            f"{FONT}>{escape(ylabel)}</text>"
        )
    return out


def _legend(labels: list[str], x: float, y: float) -> list[str]:
    # A translucent card, so a legend drawn over the data leaves it readable.
    width = 20 + 6.2 * max((len(label) for label in labels), default=0)
    out = [
        f'<rect x="{x - 4}" y="{y - 12}" width="{width:.0f}" height="{14 * len(labels) + 6}" '
        'fill="#fff" fill-opacity="0.8"/>'
    ]
    for i, label in enumerate(labels):
        yy = y + 14 * i
        out.append(f'<rect x="{x}" y="{yy - 8}" width="10" height="10" fill="{color(i)}"/>')
        out.append(f'<text x="{x + 14}" y="{yy + 1}" {FONT}>{escape(label)}</text>')
    return out


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def bars(
    groups: list[str],
    series: list[str],
    cells: dict[tuple[str, str], tuple[float, float]],
    ylabel: str,
    reference: float | None = None,
) -> str:
    """Grouped bars: for each group (x) a bar per series, ``cells[(group, series)]`` giving
    (mean, half-width of its interval; NaN for none); a dashed line at ``reference``."""
    values = [m for m, _ in cells.values()] + [m + h for m, h in cells.values() if math.isfinite(h)]
    hi = max([*values, reference or 0.0, 0.0])
    lo = min([*values, 0.0])
    yticks = nice_ticks(lo, hi)
    legend_w = 14 + 7 * max((len(s) for s in series), default=0)
    width = max(360.0, 70.0 * len(groups) * max(1, len(series)) / 2) + legend_w
    f = Frame(width, 300, -0.5, len(groups) - 0.5, yticks[0], yticks[-1], right=legend_w + 16)
    body = _axes(f, yticks, [(i, g) for i, g in enumerate(groups)], ylabel=ylabel)
    slot = 0.8 / max(1, len(series))
    for si, s in enumerate(series):
        for gi, g in enumerate(groups):
            if (g, s) not in cells:
                continue
            mean, half = cells[(g, s)]
            xl, xr = f.x(gi - 0.4 + slot * si), f.x(gi - 0.4 + slot * (si + 0.9))
            top, base = f.y(max(mean, 0.0)), f.y(min(mean, 0.0))
            body.append(
                f'<rect x="{xl:.1f}" y="{top:.1f}" width="{xr - xl:.1f}" '
                f'height="{base - top:.1f}" fill="{color(si)}"><title>{escape(s)} · '
                f"{escape(g)}: {mean:.3f}</title></rect>"
            )
            if math.isfinite(half):
                xm = (xl + xr) / 2
                y_lo, y_hi = f.y(mean - half), f.y(mean + half)
                body.append(
                    f'<path d="M{xm:.1f} {y_lo:.1f}V{y_hi:.1f}M{xm - 3:.1f} {y_lo:.1f}'
                    f'h6M{xm - 3:.1f} {y_hi:.1f}h6" stroke="#000" fill="none"/>'
                )
    if reference is not None:
        y = f.y(reference)
        body.append(
            f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.width - f.right}" y2="{y:.1f}" '
            'stroke="#000" stroke-dasharray="5 3"/>'
        )
    body += _legend(series, f.width - f.right + 10, f.top + 8)
    return _svg(f.width, f.height, body, f"{ylabel} by group")


Line = tuple[str, list[float], list[float]]  # label, xs, ys


def lines(
    series: list[Line],
    title: str,
    xlabel: str,
    *,
    step: bool = False,
    width: float = 460,
    height: float = 240,
    legend: bool = True,
) -> str:
    """One line per series (``step``: held until the next point, as a knob setting is)."""
    xs = [x for _, sx, _ in series for x in sx]
    ys = [y for _, _, sy in series for y in sy if math.isfinite(y)]
    if not xs or not ys:
        return _svg(
            width, height, _axes(Frame(width, height, 0, 1, 0, 1), [], [], title=title), title
        )
    yticks = nice_ticks(min(ys), max(ys), 4)
    xticks = nice_ticks(min(xs), max(xs), 5)
    f = Frame(width, height, xticks[0], xticks[-1], yticks[0], yticks[-1])
    body = _axes(f, yticks, [(t, _label(t)) for t in xticks], title=title, xlabel=xlabel)
    for i, (label, sx, sy) in enumerate(series):
        pts = [(f.x(x), f.y(y)) for x, y in zip(sx, sy, strict=True) if math.isfinite(y)]
        if not pts:
            continue
        d = f"M{pts[0][0]:.1f} {pts[0][1]:.1f}"
        for qx, qy in pts[1:]:
            d += f"H{qx:.1f}V{qy:.1f}" if step else f"L{qx:.1f} {qy:.1f}"
        body.append(
            f'<path d="{d}" fill="none" stroke="{color(i)}" stroke-width="1.6">'
            f"<title>{escape(label)}</title></path>"
        )
    if legend:
        body += _legend([label for label, _, _ in series], f.left + 8, f.top + 12)
    return _svg(f.width, f.height, body, title)
