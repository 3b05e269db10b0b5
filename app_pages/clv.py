"""Customer lifetime value: BG/NBD x Gamma-Gamma, with its backtest next to the values."""

from datetime import timedelta

import streamlit as st

from crm_core import glossary, summaries
from crm_core.analytics import clv
from crm_core.errors import CRMError
from crm_core.figures import model_charts
from crm_core.privacy import mask_pii
from crm_ui import auth_ui, drill_ui, filters_ui, model_ui, pins, plain, tables, widgets

user = auth_ui.require_view("clv")
st.title("Customer lifetime value")
widgets.filter_note("clv")
filters = filters_ui.current_filters()
first, last = model_ui.model_span_or_stop(filters)

with st.expander("Model settings", expanded=False):
    c1, c2, c3, c4, c5 = st.columns(5)
    model = c1.selectbox(
        "Purchase model",
        list(clv.PURCHASE_MODELS),
        format_func=clv.PURCHASE_MODELS.get,
        help="How repeat purchases and drop-out are modelled. BG/NBD is the usual choice; "
        "Pareto/NBD lets customers leave at any time; MBG/NBD also after the first purchase.",
    )
    unit = c2.radio(
        "Time unit",
        list(clv.TIME_UNITS),
        horizontal=True,
        help="Unit of recency and T. Weeks are days / 7 (the published CDNOW convention); "
        "the values do not depend on it.",
    )
    calibration_end = c3.date_input(
        "Calibration end",
        value=model_ui.default_calibration_end(first, last),
        min_value=first + timedelta(days=1),
        max_value=last - timedelta(days=1),
        help="The backtest fits on orders up to this day and predicts the purchases after "
        "it (the holdout) up to the end of the sidebar period. Values below use all data.",
    )
    horizon = c4.slider(
        "Horizon (months)", 1, 60, 12, help="How far ahead CLV adds up expected spend."
    )
    discount = c5.number_input(
        "Monthly discount rate",
        0.0,
        0.2,
        0.01,
        step=0.005,
        format="%.3f",
        help="Money next month is worth 1 / (1 + rate) of money now (1% a month ~ 12.7% a year).",
    )
settings = clv.CLVSettings(
    model=model,
    time_unit=unit,
    calibration_end=calibration_end,
    observation_end=last,
    horizon_months=horizon,
    monthly_discount=discount,
    countries=filters.countries,
    channels=filters.channels,
)
try:
    report = model_ui.clv_report(settings)
    parts = model_ui.clv_breakdowns(settings)
except clv.NotReadyError as exc:
    model_ui.show_not_ready(exc)
    st.stop()
except CRMError as exc:
    st.error(str(exc))
    st.stop()
plain.summary(summaries.clv(report))
explained = summaries.backtest(report.backtest, unit)
for note in report.notes:
    st.warning(note)

bt = report.backtest
st.caption(
    f"{clv.PURCHASE_MODELS[model]} + Gamma-Gamma on {len(report.customers):,} customers, "
    f"data to {report.observation_end:%d %b %Y}; CLV over {horizon} months. Backtest: fitted "
    f"up to {bt.calibration_end:%d %b %Y}, predicting {bt.holdout_units:.0f} {unit} after it."
)
cards = st.container(horizontal=True)  # cards wrap on a narrow screen (crm_ui/style.py)
row = [cards.container() for _ in range(5)]
values = report.customers
row[0].metric("Customers valued", f"{len(values):,}", border=True)
row[1].metric(
    "Mean CLV",
    model_ui.money(values["clv"].mean()),
    border=True,
    help=f"Over the next {horizon} months. {glossary.help_for('clv')}",
)
row[2].metric("Total CLV", model_ui.money(values["clv"].sum()), border=True)
row[3].metric(
    "Backtest error",
    f"{bt.total_error:+.1%}",
    border=True,
    help=glossary.help_for("backtest_error"),
)
plain.meaning(row[3], explained["total_error"])
row[4].metric(
    "Backtest MAE",
    f"{bt.mae:.2f}",
    border=True,
    help=glossary.help_for("backtest_mae"),
)
plain.meaning(row[4], explained["mae"])

values_tab, next_tab, backtest_tab, matrix_tab, top_tab = st.tabs(
    ["Values", "Next purchase", "Backtest", "Frequency-recency", "Top customers"]
)
with next_tab:
    model_ui.next_purchase_panel(report)
with values_tab:
    st.plotly_chart(model_charts.clv_histogram(parts["histogram"], "$"), width="stretch")
    pins.pin_button("clv", "clv_histogram", pins.settings_of(settings, "clv", "clv_histogram"))
    st.caption("RFM segments as on the Segmentation page (recency, frequency, spend quintiles).")
    for key, title in (
        ("rfm_segment", "CLV by RFM segment"),
        ("acquisition_channel", "CLV by acquisition channel"),
        ("country", "CLV by country"),
    ):
        drill_ui.clv_group(
            model_charts.clv_by_group(parts[key], key, title),
            parts[key],
            values,
            key,
            filters,
            report.observation_end,
            (parts[key], f"clv_by_{key}.csv", f"Download {title} (CSV)"),
        )
with backtest_tab:
    tables.show_table(
        {
            "parameter": list(bt.params),
            "calibration fit": list(bt.params.values()),
            "fit on all data": [report.params.get(k) for k in bt.params],
        },
        column_config={
            "calibration fit": st.column_config.NumberColumn(format="%.4g"),
            "fit on all data": st.column_config.NumberColumn(format="%.4g"),
        },
    )
    widgets.chart_with_download(
        model_charts.backtest_by_frequency(bt.by_frequency, f"{bt.holdout_units:.0f} {unit}"),
        bt.by_frequency,
        "clv_backtest_by_frequency.csv",
        "Download backtest (CSV)",
    )
    st.plotly_chart(model_charts.period_histogram(bt.period_histogram), width="stretch")
    st.caption(
        f"Holdout purchases: predicted {bt.predicted_total:,.0f}, actual {bt.actual_total:,.0f}."
    )
with matrix_tab:
    st.caption("For a customer whose first purchase was the longest time ago (largest T).")
    st.plotly_chart(
        model_charts.frequency_recency_heatmap(
            report.expected_matrix,
            f"Expected purchases in the next {horizon} months",
            ".2f",
            unit,
        ),
        width="stretch",
    )
    st.plotly_chart(
        model_charts.frequency_recency_heatmap(
            report.alive_matrix,
            "P(alive): probability the customer is still a customer",
            ".0%",
            unit,
        ),
        width="stretch",
    )
with top_tab:
    top = mask_pii(parts["top"], user.role)
    leading = ["customer_id", "clv", "p_alive", "expected_purchases", "expected_aov", "frequency"]
    drill_ui.customer_rows(
        top,
        "top_customers",
        width="stretch",
        column_order=[*leading, *(c for c in top.columns if c not in leading)],
        column_config={"frequency": "Repeat purchases"},
    )
