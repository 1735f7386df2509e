"""The chart dicts the Crashes and signature pages draw: series, stacking and geometry."""

from __future__ import annotations

from chalicelib.viewer import charts

DAYS = ["2026-11-24", "2026-11-25", "2026-11-26"]


def test_an_empty_chart_has_bars_of_nothing() -> None:
    chart = charts.reports_chart(DAYS, {})
    assert chart["series"] == [] and chart["total"] == 0 and chart["max"] == 0
    assert [bar["segments"] for bar in chart["svg"]["bars"]] == [[], [], []]
    assert [bar["title"] for bar in chart["svg"]["bars"]] == [
        "2026-11-24: 0 reports", "2026-11-25: 0 reports", "2026-11-26: 0 reports"]


def test_series_are_ranked_by_count_then_name_and_the_rest_is_other() -> None:
    by_day = {"2026-11-25": {"b": 2, "a": 2, "": 5, "c": 1, "d": 1, "e": 1, "f": 1},
              "2026-11-26": {"z": 1}, "2026-10-01": {"a": 99}}
    chart = charts.reports_chart(DAYS, by_day)
    assert [(s["name"], s["count"], s["pattern"]) for s in chart["series"]] == [
        ("no version", 5, "solid"), ("a", 2, "stripes"), ("b", 2, "dots"),
        ("c", 1, "grid"), ("d", 1, "hlines"), ("other versions", 3, "vlines")]
    assert [row["counts"] for row in chart["rows"]] == [
        [0, 0, 0, 0, 0, 0], [5, 2, 2, 1, 1, 2], [0, 0, 0, 0, 0, 1]]
    assert chart["total"] == 14  # days outside the chart are not counted
    bar = chart["svg"]["bars"][1]
    assert bar["title"] == ("2026-11-25: 13 reports (no version: 5, a: 2, b: 2, c: 1, d: 1, "
                            "other versions: 2)")
    # Stacked from the bottom: each segment starts where the one below ended.
    tops = [(s["y"], s["height"]) for s in bar["segments"]]
    assert tops[0] == (round(120 - 5 * 120 / 13, 2), round(5 * 120 / 13, 2))
    assert abs(tops[-1][0]) < 0.05
    one = chart["svg"]["bars"][2]["segments"]
    assert [(s["series"], s["height"]) for s in one] == [(5, round(120 / 13, 2))]


def test_a_version_named_like_the_rest_keeps_its_own_series() -> None:
    chart = charts.reports_chart(DAYS, {"2026-11-26": {"other versions": 3, "1.0": 1}})
    assert [s["version"] for s in chart["series"]] == ["other versions", "1.0"]


def test_sparkline_bars_scale_to_the_busiest_day_and_one_report_shows() -> None:
    spark = charts.sparkline(DAYS, {"2026-11-24": {"a": 200}, "2026-11-26": {"a": 1, "b": 1}})
    assert [(b["height"], b["y"]) for b in spark["bars"]] == [
        (20.0, 0.0), (0.0, 20.0), (1.0, 19.0)]
    assert [b["x"] for b in spark["bars"]] == [0, 4, 8]
    assert spark["total"] == 202 and spark["max"] == 200 and spark["width"] == 11


def test_merge_days_sums_versions_per_day() -> None:
    merged = charts.merge_days([{"2026-11-26": {"a": 1}}, {"2026-11-26": {"a": 2, "b": 1},
                                                           "2026-01-01": {"a": 5}}], DAYS)
    assert merged == {"2026-11-24": {}, "2026-11-25": {}, "2026-11-26": {"a": 3, "b": 1}}


def test_day_labels_fall_each_week_back_from_the_newest_day() -> None:
    days = [f"2026-11-{n:02}" for n in range(1, 31)]
    bars = charts.reports_chart(days, {})["svg"]["bars"]
    assert [b["label"] for b in bars if b["label"]] == ["11-02", "11-09", "11-16", "11-23",
                                                         "11-30"]
    assert [b["x"] for b in bars[:2]] == [charts.AXIS_WIDTH,
                                          charts.AXIS_WIDTH + charts.BAR_WIDTH + charts.BAR_GAP]
