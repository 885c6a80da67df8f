"""Charts drawn on the server as SVG: bars per day, stacked by member, project or model.

Only numbers and names come out of here; the template writes the SVG (names escaped as any text),
and the colours are CSS classes (``series-0`` ..), so the page needs no script and no inline style.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .usage import Usage

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 56, 24, 10
SERIES = 8  # colours; past the seventh, the rest are one "others"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str  # shown on hover: day, name, cost


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    days: list[DayLabel]
    legend: list[tuple[int, str]]
    empty: bool
    plot_left: int
    plot_bottom: float


def cost_per_day(usage: Usage, *, by: str) -> Chart:
    names = [t.name for t in usage.by(by)]
    shown = names[: SERIES - 1] if len(names) > SERIES else names
    series = {name: i for i, name in enumerate(shown)}
    others = len(shown)
    days = usage.days()
    per_day: dict[datetime.date, dict[int, float]] = {day: {} for day in days}
    for row in usage.rows:
        index = series.get(getattr(row, by), others)
        cell = per_day.setdefault(row.day, {})
        cell[index] = cell.get(index, 0.0) + row.cost_usd
    peak = max((sum(cell.values()) for cell in per_day.values()), default=0.0)
    top = _nice(peak)
    plot_height = HEIGHT - BOTTOM - TOP
    step = (WIDTH - LEFT) / max(len(days), 1)
    bars: list[Bar] = []
    for n, day in enumerate(days):
        y = float(HEIGHT - BOTTOM)
        for index in sorted(per_day[day]):
            cost = per_day[day][index]
            height = plot_height * cost / top if top else 0.0
            y -= height
            name = shown[index] if index < len(shown) else "others"
            bars.append(Bar(LEFT + n * step + 1, y, max(step - 2, 1), height, index, f"{day}: {name}, ${cost:.4f}"))
    ticks = [Tick(HEIGHT - BOTTOM - plot_height * k / 4, f"${top * k / 4:.2f}") for k in range(5)]
    labels = [DayLabel(LEFT + n * step + step / 2, day.strftime("%m-%d")) for n, day in enumerate(days) if n % 5 == 0]
    legend = [(i, name) for name, i in series.items()] + ([(others, "others")] if len(names) > len(shown) else [])
    return Chart(
        WIDTH, HEIGHT, bars, ticks, labels, legend, empty=peak == 0, plot_left=LEFT, plot_bottom=HEIGHT - BOTTOM
    )


def _nice(value: float) -> float:
    """A round top for the axis, at or above ``value``."""
    if value <= 0:
        return 0.0
    magnitude: float = 10.0 ** (len(str(int(value))) - 1) if value >= 1 else 10.0 ** -len(str(int(1 / value)))
    for factor in (1, 2, 2.5, 5, 10):
        if magnitude * factor >= value:
            return magnitude * factor
    return value
