"""Every view's figures as plain JSON-ready data, under the same filters as the app, and the
KPI overview as an e-mail (`overview_report`) for scheduled reports.

`python -m crm_core report VIEW --json` prints these; scripts, notebooks and tests read the
numbers the pages show without a browser. Each report says which filters it used.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from crm_core import display, metrics, summaries
from crm_core.analytics import churn, clv, cohorts, funnels, rfm, surveys
from crm_core.config import Settings, get_settings
from crm_core.delivery import Attachment, Message
from crm_core.errors import ChartImageError, CRMError
from crm_core.filters import COMPARISONS, Filters, plural
from crm_core.store import Store, utcnow

if TYPE_CHECKING:
    import plotly.graph_objects as go


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready rows (dates as ISO text, missing values as null)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _filters(filters: Filters) -> dict[str, Any]:
    return {
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "compare": filters.compare,
        "countries": list(filters.countries),
        "channels": list(filters.channels),
    }


def overview(store: Store, filters: Filters) -> dict[str, Any]:
    """KPIs against the comparison period, the revenue trend and the cohort grid."""
    kpis = metrics.kpis_as_dict(metrics.compute_kpis(store, filters), filters)
    grid = cohorts.cohort_retention(store, filters)
    return {
        **kpis,
        "trend": records(metrics.revenue_trend(store, filters)),
        "cohorts": records(grid.reset_index()) if not grid.empty else [],
    }


def segmentation(store: Store, filters: Filters, window_days: int | None = None) -> dict[str, Any]:
    """RFM as of the period's last day for the filter's customers: segment sizes, R x F grid."""
    scores = rfm.rfm_scores(store, filters.end, window_days, filters)
    grid = rfm.rf_grid(scores) if not scores.empty else pd.DataFrame()
    return {
        "as_of": filters.end.isoformat(),
        "window_days": window_days,
        "customers": len(scores),
        "segments": records(rfm.segment_summary(scores)),
        "rf_grid": {
            f"R{r}": {f"F{f}": int(grid.loc[r, f]) for f in grid.columns} for r in grid.index
        },
    }


def survey_report(store: Store, filters: Filters) -> dict[str, Any]:
    """NPS and CSAT with intervals, the monthly trend and the touchpoint breakdown."""
    summary = surveys.summary(store, filters)
    return {
        "scores": {
            name: {
                "value": s.value,
                "low": s.low,
                "high": s.high,
                "responses": s.responses,
            }
            for name, s in summary.items()
        },
        "trend": records(surveys.monthly_trend(store, filters)),
        "by_touchpoint": records(surveys.breakdown(store, filters, "touchpoint")),
    }


def funnel_report(
    store: Store,
    filters: Filters,
    steps: tuple[str, ...] = funnels.DEFAULT_STEPS,
    order: str = "strict",
    window_days: int = 7,
) -> dict[str, Any]:
    """The event funnel's steps (customers, conversion, drop-off) and the lead funnel."""
    result = funnels.event_funnel(store, filters, list(steps), order=order, window_days=window_days)
    return {
        "steps": records(result.steps),
        "order": order,
        "window_days": window_days,
        "leads": records(funnels.lead_funnel(store, filters)),
    }


def _model_end(store: Store, filters: Filters) -> date:
    """The last day the models may use: the period's end, or the filter's last order."""
    span = clv.data_span(store, filters)
    if span is None:
        raise CRMError("No completed orders in this filter: nothing to model.")
    return min(span[1], filters.end)


def clv_report(store: Store, filters: Filters) -> dict[str, Any]:
    """CLV model parameters and backtest over the filter's customers, data to the period end."""
    report = clv.analyse(
        store,
        clv.CLVSettings(
            observation_end=_model_end(store, filters),
            countries=filters.countries,
            channels=filters.channels,
        ),
    )
    return {**report.as_dict(), "customers": len(report.customers)}


def churn_report(store: Store, filters: Filters) -> dict[str, Any]:
    """Churn validation figures, drivers and risk bands as of the period's last day."""
    report = churn.analyse(
        store,
        churn.ChurnSettings(
            as_of=_model_end(store, filters),
            countries=filters.countries,
            channels=filters.channels,
        ),
    )
    return report.as_dict()


def campaign_report(store: Store, filters: Filters) -> dict[str, Any]:
    """Campaign ROI (last-touch, 30-day lookback) and incrementality under the filters."""
    from crm_core.analytics import campaigns

    return campaigns.report(store, filters)


REPORTS: dict[str, Callable[[Store, Filters], dict[str, Any]]] = {
    "overview": overview,
    "segmentation": segmentation,
    "campaigns": campaign_report,
    "surveys": survey_report,
    "funnels": funnel_report,
    "clv": clv_report,
    "churn": churn_report,
}
"""The views whose figures `report` prints, by name."""


def report(store: Store, view: str, filters: Filters) -> dict[str, Any]:
    """One view's figures under `filters`, with the filters it used."""
    if view not in REPORTS:
        raise CRMError(f"Unknown view {view!r}; choose one of: {', '.join(REPORTS)}.")
    if filters.end < filters.start:
        raise CRMError(f"--end {filters.end} is before --start {filters.start}.")
    figures = REPORTS[view](store, filters)
    return metrics.json_ready({"view": view, **figures, "filters": _filters(filters)})


def resolve_filters(
    default: Filters | None,
    start: date | None = None,
    end: date | None = None,
    countries: tuple[str, ...] = (),
    channels: tuple[str, ...] = (),
    compare: str = "previous",
) -> Filters:
    """The CLI's filters: the given days, else the app's default period (last 12 months)."""
    if default is None and (start is None or end is None):
        raise CRMError("The store has no orders; give --start and --end, or import orders.")
    base = default or Filters(start=start, end=end)
    return replace(
        base,
        start=start or base.start,
        end=end or base.end,
        countries=countries,
        channels=channels,
        compare=compare,
    )


# --- the KPI overview as an e-mail (scheduled reports) ------------------------------------

REPORT_WIDTH = 640
"""Width in pixels of an e-mailed report's card (what Gmail and Outlook show comfortably)."""
CHART_WIDTH = 584
CHART_HEIGHT = 330
TALL_CHART_HEIGHT = 500
_FONT = "Arial, Helvetica, sans-serif"
_INK, _MUTED, _LINE = "#111827", "#4b5563", "#e5e7eb"
_GOOD, _BAD = "#047857", "#b91c1c"


def figure_png(
    fig: go.Figure,
    *,
    width: int = CHART_WIDTH,
    height: int = CHART_HEIGHT,
    scale: float = 2.0,
    settings: Settings | None = None,
) -> bytes:
    """A Plotly figure as PNG bytes, drawn by kaleido in the system Chromium (CRM_CHROMIUM,
    default /usr/bin/chromium; no download, no network).

    ChartImageError (with the reason) when no Chromium or kaleido is at hand; reports then
    go without the image."""
    settings = settings or get_settings()
    browser = settings.chromium
    if not browser or not Path(browser).is_file() or not os.access(browser, os.X_OK):
        raise ChartImageError(
            f"no Chromium at {browser!r} to draw the chart (set CRM_CHROMIUM to its path)"
        )
    try:
        import kaleido
    except ImportError as exc:
        raise ChartImageError("kaleido is not installed (pip install -r requirements.txt)") from exc
    figure = fig.to_dict() if hasattr(fig, "to_dict") else fig
    try:
        data = kaleido.calc_fig_sync(
            figure,
            opts={"format": "png", "width": width, "height": height, "scale": scale},
            # the browser given outright, not through kaleido's BROWSER_PATH variable
            kopts={"timeout": 60, "path": browser},
        )
    except Exception as exc:  # a browser that fails to start or to draw: no image, no crash
        raise ChartImageError(
            f"the chart could not be drawn ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(data, bytes | bytearray) or not bytes(data).startswith(b"\x89PNG"):
        raise ChartImageError("the chart renderer returned no PNG image")
    return bytes(data)


LABEL_CHARACTERS = 22
"""Longest category label under an e-mailed chart's x axis; longer ones end in "…"."""


def _category_labels(fig: go.Figure) -> list[str]:
    """The text categories along the x axis, in order of first appearance."""
    axes = (getattr(trace, "x", None) for trace in fig.data)
    values = (x for axis in axes if axis is not None for x in axis)
    return list(dict.fromkeys(x for x in values if isinstance(x, str)))


def email_figure(fig: go.Figure) -> go.Figure:
    """A copy of an app figure styled for a white e-mail (fixed size). Many long category
    labels (campaign names) are shortened, slanted and given a taller chart, so that they
    neither overlap nor leave the bars no room."""
    figure = type(fig)(fig)
    labels = _category_labels(figure)
    crowded = len(labels) > 8 and max(map(len, labels)) > 12
    figure.update_layout(
        template="plotly_white",
        width=CHART_WIDTH,
        height=TALL_CHART_HEIGHT if crowded else CHART_HEIGHT,
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        font={"family": _FONT, "size": 12, "color": _INK},
    )
    if crowded:
        short = [
            text if len(text) <= LABEL_CHARACTERS else text[: LABEL_CHARACTERS - 1] + "…"
            for text in labels
        ]
        figure.update_xaxes(
            tickmode="array", tickvals=labels, ticktext=short, tickangle=-50, tickfont_size=10
        )
    return figure


def chart_block(
    fig: go.Figure, name: str, title: str, *, settings: Settings | None = None
) -> tuple[Attachment | None, str]:
    """A chart as an inline PNG and the HTML that shows it (cid:<name>), or, without an image,
    one line that says so."""
    figure = email_figure(fig)
    try:
        png = figure_png(figure, height=figure.layout.height, settings=settings)
    except ChartImageError as exc:
        note = (
            f'<p style="margin:0;font-size:13px;color:{_MUTED};">The chart "{escape(title)}" '
            f"is not included: {escape(str(exc))}. Open the app to see it.</p>"
        )
        return None, note
    image = Attachment(name=name, data=png, mime="image/png")
    html = (
        f'<img src="cid:{escape(name)}" width="{CHART_WIDTH}" alt="{escape(title)}" '
        f'style="display:block;width:100%;max-width:{CHART_WIDTH}px;height:auto;border:0;">'
    )
    return image, html


def _change_style(kpi: metrics.KPIValue) -> tuple[str, str]:
    """The change's text with an arrow, and its colour (green when it is good news)."""
    text = metrics.format_change(kpi)
    if text is None or not kpi.change:
        return (text or "–"), _MUTED
    up = kpi.change > 0
    good = up == kpi.metric.higher_is_better
    return ("▲ " if up else "▼ ") + text, (_GOOD if good else _BAD)


def _period_lines(filters: Filters) -> list[str]:
    """The period, the one it is compared with, and the countries and channels, in words."""
    compared = filters.comparison()
    countries = (
        f"Countries: {', '.join(filters.countries)}" if filters.countries else "All countries"
    )
    channels = f"channels: {', '.join(filters.channels)}" if filters.channels else "all channels"
    return [
        f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y} ({plural(filters.days, 'day')}).",
        f"Compared with the {COMPARISONS[filters.compare].lower()}: "
        f"{compared.start:%d %b %Y} – {compared.end:%d %b %Y}.",
        f"{countries}; {channels}.",
    ]


def _plain(value: float | None) -> float | int | None:
    """A KPI value for a spreadsheet: counts as whole numbers, others to 6 decimals."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else round(value, 6)


def kpi_frame(kpis: dict[str, metrics.KPIValue], filters: Filters) -> pd.DataFrame:
    """The KPIs as a table: raw values for spreadsheets and the overview's formatted text."""
    compared = filters.comparison()
    return pd.DataFrame(
        [
            {
                "kpi": name,
                "label": kpi.metric.label,
                "value": _plain(kpi.value),
                "compared_value": _plain(kpi.previous),
                "change": None if kpi.change is None else round(kpi.change, 6),
                "shown": metrics.format_value(kpi.metric, kpi.value, display.CURRENCY),
                "shown_change": metrics.format_change(kpi) or "",
                "period_start": filters.start.isoformat(),
                "period_end": filters.end.isoformat(),
                "compared_start": compared.start.isoformat(),
                "compared_end": compared.end.isoformat(),
                "countries": " ".join(filters.countries),
                "channels": " ".join(filters.channels),
            }
            for name, kpi in kpis.items()
        ],
        columns=KPI_COLUMNS,
        dtype=object,  # counts stay whole numbers beside money in the value columns
    )


KPI_COLUMNS = [
    "kpi", "label", "value", "compared_value", "change", "shown", "shown_change",
    "period_start", "period_end", "compared_start", "compared_end", "countries", "channels",
]  # fmt: skip
"""The columns of a report's KPI table and CSV attachment."""


def kpi_csv(kpis: dict[str, metrics.KPIValue], filters: Filters) -> bytes:
    """The KPIs as CSV (`kpi_frame`)."""
    return kpi_frame(kpis, filters).to_csv(index=False).encode("utf-8")


_TABLE = 'role="presentation" cellpadding="0" cellspacing="0" border="0"'
_H2 = f"margin:0 0 8px;font-size:16px;line-height:22px;color:{_INK};"
_SMALL = f"font-size:12px;line-height:18px;color:{_MUTED};"


def _email_page(title: str, about_lines: list[str], sections: list[str], footer: str) -> str:
    """An e-mail-friendly HTML page: a white card of table rows with inline styles (what
    Gmail and Outlook render), a title, lines about the report, its sections, a footer."""
    card = (
        f"width:100%;max-width:{REPORT_WIDTH}px;background:#ffffff;border:1px solid {_LINE};"
        f"font-family:{_FONT};color:{_INK};"
    )
    muted = f"font-size:14px;line-height:20px;color:{_MUTED};"
    about = "\n".join(
        f'<p style="margin:{"6px" if i == 0 else "2px"} 0 0;{muted}">{escape(line)}</p>'
        for i, line in enumerate(about_lines)
    )
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title></head>
<body style="margin:0;padding:0;background:#f3f4f6;">
<table {_TABLE} width="100%" style="background:#f3f4f6;">
<tr><td align="center" style="padding:24px 12px;">
<table {_TABLE} width="{REPORT_WIDTH}" style="{card}">
<tr><td style="padding:24px 28px 8px;">
<h1 style="margin:0;font-size:22px;line-height:28px;color:{_INK};">{escape(title)}</h1>
{about}
</td></tr>
{body}
<tr><td style="padding:16px 28px 24px;{_SMALL}">
{footer}</td></tr>
</table></td></tr></table>
</body></html>
"""


def _kpi_section(rows: str) -> str:
    """The KPI table's section: KPI, this period, compared period, change."""
    head = f"padding:8px 10px;font-size:12px;color:{_MUTED};text-transform:uppercase;"
    headers = "".join(
        f'<th align="{side}" style="{head}">{label}</th>'
        for side, label in (
            ("left", "KPI"),
            ("right", "This period"),
            ("right", "Compared period"),
            ("right", "Change"),
        )
    )
    return (
        '<tr><td style="padding:8px 28px 16px;">'
        f'<table {_TABLE} width="100%" style="border-collapse:collapse;font-family:{_FONT};">'
        f"<tr>{headers}</tr>\n{rows}\n</table></td></tr>"
    )


def _kpi_rows(kpis: dict[str, metrics.KPIValue], notes: dict[str, str] | None = None) -> str:
    """One table row per KPI; `notes` adds a small line under a KPI's name (its filters)."""
    cell = f"padding:9px 10px;border-top:1px solid {_LINE};font-size:14px;"
    rows = []
    for name, kpi in kpis.items():
        change, colour = _change_style(kpi)
        note = (notes or {}).get(name)
        label = escape(kpi.metric.label) + (
            f'<br><span style="{_SMALL}">{escape(note)}</span>' if note else ""
        )
        rows.append(
            "<tr>"
            f'<td style="{cell}color:{_INK};">{label}</td>'
            f'<td align="right" style="{cell}color:{_INK};font-weight:bold;">'
            f"{escape(metrics.format_value(kpi.metric, kpi.value, display.CURRENCY))}</td>"
            f'<td align="right" style="{cell}color:{_MUTED};">'
            f"{escape(metrics.format_value(kpi.metric, kpi.previous, display.CURRENCY))}</td>"
            f'<td align="right" style="{cell}color:{colour};white-space:nowrap;">'
            f"{escape(change)}</td>"
            "</tr>"
        )
    return "".join(rows)


def overview_report(store: Store, filters: Filters, *, title: str | None = None) -> Message:
    """The KPI overview as an e-mail: every KPI with its change, the revenue and active
    customers trend as an inline PNG (or a line saying why not), the KPIs as CSV."""
    from crm_core.figures import charts  # Plotly: only when a report is drawn

    title = title or "KPI overview"
    kpis = metrics.compute_kpis(store, filters)
    trend = metrics.revenue_trend(store, filters)
    grain = str(trend["grain"].iloc[0])
    period_lines = _period_lines(filters)
    sentences = summaries.overview(kpis, f"the {COMPARISONS[filters.compare].lower()}")
    chart_title = f"Revenue and active customers by {grain}"
    image: Attachment | None = None
    if trend["orders"].any():
        image, chart_html = chart_block(
            charts.revenue_active_trend(trend), "revenue-trend.png", chart_title
        )
        if image is not None and trend["partial"].any():
            chart_html += (
                f'<p style="margin:6px 0 0;font-size:12px;color:{_MUTED};">Lighter bars: a '
                f"{grain} the period covers only in part.</p>"
            )
    else:
        chart_html = (
            f'<p style="margin:0;font-size:13px;color:{_MUTED};">No completed orders in this '
            "period and filter, so there is no trend to draw.</p>"
        )
    csv_name = f"kpis_{filters.start:%Y-%m-%d}_{filters.end:%Y-%m-%d}.csv"
    paragraphs = "".join(
        f'<p style="margin:0 0 8px;font-size:14px;line-height:20px;color:{_INK};">{escape(s)}</p>'
        for s in sentences
    )
    sections = [
        f'<tr><td style="padding:12px 28px 4px;">{paragraphs}</td></tr>',
        _kpi_section(_kpi_rows(kpis)),
        f'<tr><td style="padding:8px 28px 4px;"><h2 style="{_H2}">{escape(chart_title)}</h2>'
        f"\n{chart_html}</td></tr>",
    ]
    footer = (
        f"Sent by CRM Insights. The KPIs are attached as {escape(csv_name)}. Changes in green "
        "are good news, in red bad news; rates and scores change in points."
    )
    html = _email_page(title, period_lines, sections, footer)
    lines = [title, *period_lines, "", *sentences, ""]
    for kpi in kpis.values():
        value = metrics.format_value(kpi.metric, kpi.value, display.CURRENCY)
        change = metrics.format_change(kpi)
        lines.append(f"{kpi.metric.label}: {value}" + (f" ({change})" if change else ""))
    if image is None and trend["orders"].any():
        lines += ["", "The trend chart is not included (no image could be drawn)."]
    lines += ["", f"The KPIs are attached as {csv_name}."]
    return Message(
        subject=f"{title}: {filters.start:%d %b %Y} – {filters.end:%d %b %Y}",
        text="\n".join(lines),
        html=html,
        attachments=[Attachment(csv_name, kpi_csv(kpis, filters), "text/csv")],
        images=[image] if image else [],
        payload={"title": title, **metrics.kpis_as_dict(kpis, filters)},
        kind="report",
    )


# --- a Home page (pinned KPIs and charts) as an e-mail --------------------------------------

HOME_REPORT = "home"
"""The report target that sends the schedule owner's Home page (their pinned KPIs and
charts, or their role's published default)."""
SCHEDULED_REPORTS = ("overview", HOME_REPORT)
"""Reports a schedule can send: the KPI overview, or the owner's Home page."""


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _pin_record(item: Any) -> dict[str, Any]:
    """One pin's content as JSON-able data (for a webhook's payload)."""
    from crm_core import home

    pin = item.pin
    record: dict[str, Any] = {
        "title": pin.title,
        "view": pin.view,
        "item": pin.item,
        "kind": pin.kind,
        "filters": home.filters_in_words(item.filters),
        "settings": home.settings_in_words(pin.settings),
    }
    if item.empty:
        record["empty"] = item.empty
    elif item.table is not None:
        record["rows"] = records(item.table)
    return record


def home_report(store: Store, user: Any, *, title: str | None = None) -> Message:
    """`user`'s Home page as an e-mail: the pinned KPIs in one table, each pinned chart as an
    inline PNG with its filters and settings in words, and the numbers behind each pin as CSV
    attachments (one per chart, one for the KPIs)."""
    from crm_core import home, pinned
    from crm_core.filters import default_filters

    title = title or f"Home page of {user.username}"
    contents = pinned.home_contents(store, user)
    if not contents:
        raise CRMError(
            f"Home report: {user.username} has no pins and their role ({user.role}) has no "
            "published default Home, so there is nothing to send. Pin KPIs or charts from the "
            "views (Pin to home), or ask an admin to publish a default Home for the role."
        )
    today = utcnow().date()  # dated file names: a folder keeps every day's report
    kpi_items = [c for c in contents if c.pin.kind == "kpi"]
    shared = pinned.standard_filters(default_filters(store))
    about = [
        f"{plural(len(contents), 'pinned item')} as on {today:%d %b %Y}.",
        *(_period_lines(shared) if shared else []),
    ]
    sections: list[str] = []
    attachments: list[Attachment] = []
    images: list[Attachment] = []
    lines = [title, *about, ""]
    kpis = {f"pin{c.pin.pin_id}": c.kpi for c in kpi_items if c.kpi is not None}
    if kpis:
        notes = {
            f"pin{c.pin.pin_id}": home.filters_in_words(c.filters)
            for c in kpi_items
            if c.kpi is not None and c.filters != shared
        }
        sections.append(_kpi_section(_kpi_rows(kpis, notes)))
        frames = [c.table for c in kpi_items if c.table is not None]
        csv_name = f"{today:%Y-%m-%d}-kpis.csv"
        attachments.append(
            Attachment(csv_name, pd.concat(frames).to_csv(index=False).encode(), "text/csv")
        )
        for key, kpi in kpis.items():
            value = metrics.format_value(kpi.metric, kpi.value, display.CURRENCY)
            change = metrics.format_change(kpi)
            note = f" [{notes[key]}]" if key in notes else ""
            lines.append(f"{kpi.metric.label}: {value}" + (f" ({change})" if change else "") + note)
        lines.append("")
    for number, item in enumerate(contents, start=1):
        if item.pin.kind == "kpi" and item.empty is None:
            continue
        words = [home.filters_in_words(item.filters)] if item.filters != shared else []
        if item.pin.settings:
            words.append(home.settings_in_words(item.pin.settings).capitalize() + ".")
        if item.caption:
            words.append(item.caption + ".")
        about_pin = "".join(f'<p style="margin:0 0 6px;{_SMALL}">{escape(w)}</p>' for w in words)
        name = f"{today:%Y-%m-%d}-{number:02d}-{_slug(item.pin.title)}"
        if item.figure is not None:
            image, body = chart_block(item.figure, f"{name}.png", item.pin.title)
            if image is not None:
                images.append(image)
            else:
                lines.append(f"{item.pin.title}: the chart is not included (no image).")
        else:
            body = f'<p style="margin:0;font-size:13px;color:{_MUTED};">{escape(item.empty)}</p>'
        if item.table is not None and item.pin.kind == "chart":
            table = display.spreadsheet_frame(item.table).to_csv(index=False).encode()
            attachments.append(Attachment(f"{name}.csv", table, "text/csv"))
        sections.append(
            f'<tr><td style="padding:8px 28px 12px;"><h2 style="{_H2}">'
            f"{escape(item.pin.title)}</h2>{about_pin}{body}</td></tr>"
        )
        lines += [item.pin.title, *words]
        if item.empty:
            lines.append(item.empty)
        lines.append("")
    attached = ", ".join(a.name for a in attachments) or "nothing"
    footer = (
        f"Sent by CRM Insights from the Home page of {escape(user.username)}. Attached: "
        f"{escape(attached)}. Changes in green are good news, in red bad news."
    )
    lines.append(f"Attached: {attached}.")
    return Message(
        subject=f"{title}: {today:%d %b %Y}",
        text="\n".join(lines),
        html=_email_page(title, about, sections, footer),
        attachments=attachments,
        images=images,
        payload={
            "title": title,
            "home_of": user.username,
            "pins": [_pin_record(c) for c in contents],
        },
        kind="report",
    )
