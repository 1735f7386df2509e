"""Reports-per-day charts as plain dicts: the data, and the geometry the SVG templates
draw (`_chart.html`, `_sparkline.html`). No script draws them: the server does.

A chart stacks each day's reports by version: the TOP_VERSIONS most reported versions,
then one "other versions" series. Each series has a colour and a fill pattern of its
own, so the chart reads without colour too; the legend names each series with its
count, and each bar has a title with the day's numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

TOP_VERSIONS = 5
OTHER = "other versions"
NO_VERSION = "no version"
PATTERNS = ("solid", "stripes", "dots", "grid", "hlines", "vlines")
# Told apart by people with the common colour-vision deficiencies, and by pattern too.
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
# Chart geometry, in SVG user units.
BAR_WIDTH, BAR_GAP, PLOT_HEIGHT, AXIS_WIDTH, LABEL_HEIGHT = 22, 5, 120, 36, 18
SPARK_BAR, SPARK_HEIGHT = 3, 20

DayCounts = Mapping[str, Mapping[str, int]]  # day -> version -> reports


def version_label(version: str) -> str:
    return version if version else NO_VERSION


def reports_chart(days: list[str], by_day: DayCounts) -> dict:
    """The stacked-bar chart of `days` (oldest first) from per-day version counts."""
    totals: Counter[str] = Counter()
    for day in days:
        totals.update({v: n for v, n in (by_day.get(day) or {}).items() if n > 0})
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    top = [version for version, _ in ranked[:TOP_VERSIONS]]
    others = sum(n for _, n in ranked[TOP_VERSIONS:])
    series = [{"name": version_label(v), "version": v, "count": totals[v]} for v in top]
    if others:
        series.append({"name": OTHER, "version": None, "count": others})
    for index, item in enumerate(series):
        item["pattern"] = PATTERNS[index % len(PATTERNS)]
        item["colour"] = COLOURS[index % len(COLOURS)]
        item["index"] = index
    rows = []
    for day in days:
        counted = by_day.get(day) or {}
        per_series = [counted.get(v, 0) for v in top]
        if others:
            per_series.append(sum(n for v, n in counted.items() if v not in top and n > 0))
        rows.append({"day": day, "total": sum(per_series), "counts": per_series})
    highest = max((row["total"] for row in rows), default=0)
    return {
        "days": list(days),
        "series": series,
        "rows": rows,
        "total": sum(row["total"] for row in rows),
        "max": highest,
        "svg": _geometry(rows, series, highest),
    }


def _geometry(rows: list[dict], series: list[dict], highest: int) -> dict:
    scale = PLOT_HEIGHT / highest if highest else 0.0
    bars = []
    for position, row in enumerate(rows):
        x = AXIS_WIDTH + position * (BAR_WIDTH + BAR_GAP)
        bottom, segments = float(PLOT_HEIGHT), []
        for index, reports in enumerate(row["counts"]):
            if not reports:
                continue
            height = round(reports * scale, 2)
            bottom -= height
            segments.append({"series": index, "count": reports, "y": round(bottom, 2),
                             "height": height, "pattern": series[index]["pattern"]})
        parts = ", ".join(f"{series[s['series']]['name']}: {s['count']}" for s in segments)
        noun = "report" if row["total"] == 1 else "reports"
        title = f"{row['day']}: {row['total']} {noun}" + (f" ({parts})" if parts else "")
        bars.append({"x": x, "day": row["day"], "total": row["total"], "title": title,
                     "segments": segments,
                     # A label each week, counted back from the newest day.
                     "label": row["day"][5:] if (len(rows) - 1 - position) % 7 == 0 else ""})
    width = AXIS_WIDTH + len(rows) * (BAR_WIDTH + BAR_GAP)
    return {"width": width, "height": PLOT_HEIGHT + LABEL_HEIGHT, "plot_height": PLOT_HEIGHT,
            "bar_width": BAR_WIDTH, "bars": bars, "axis_width": AXIS_WIDTH}


def sparkline(days: list[str], by_day: DayCounts) -> dict:
    """A small bar per day (no axes), for a table row; the bars' titles give the numbers."""
    totals = [sum(n for n in (by_day.get(day) or {}).values() if n > 0) for day in days]
    highest = max(totals, default=0)
    bars = []
    for position, (day, total) in enumerate(zip(days, totals, strict=True)):
        height = round(total * SPARK_HEIGHT / highest, 2) if highest else 0.0
        if total:
            height = max(height, 1.0)  # a single report still shows
        bars.append({"x": position * (SPARK_BAR + 1), "y": round(SPARK_HEIGHT - height, 2),
                     "height": height, "day": day, "total": total,
                     "title": f"{day}: {total}"})
    return {"days": len(days), "max": highest, "total": sum(totals), "bars": bars,
            "width": max(1, len(days) * (SPARK_BAR + 1) - 1), "height": SPARK_HEIGHT,
            "bar_width": SPARK_BAR}


def merge_days(maps: Iterable[Mapping[str, Mapping[str, int]]], days: list[str]) -> dict:
    """Sum several signatures' per-day version counts (days outside `days` dropped)."""
    wanted, merged = set(days), {day: Counter() for day in days}
    for by_day in maps:
        for day, versions in by_day.items():
            if day in wanted:
                merged[day].update(versions)
    return {day: dict(counted) for day, counted in merged.items()}
