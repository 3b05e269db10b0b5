"""Churn risk: an out-of-time validated model, its drivers, and the value at risk."""

import streamlit as st

from crm_core import glossary, summaries
from crm_core.analytics import churn, clv
from crm_core.errors import CRMError
from crm_core.figures import model_charts
from crm_core.privacy import mask_pii
from crm_ui import auth_ui, drill_ui, filters_ui, model_ui, pins, plain, tables, widgets

user = auth_ui.require_view("churn")
st.title("Churn risk")
widgets.filter_note("churn")
filters = filters_ui.current_filters()
_, as_of = model_ui.model_span_or_stop(filters)

c1, c2 = st.columns(2)
kind = c1.selectbox(
    "Model",
    list(churn.MODELS),
    format_func=churn.MODELS.get,
    help="Gradient boosting finds interactions and thresholds on its own; logistic "
    "regression is simpler and more stable on small stores.",
)
window = c2.number_input(
    "Churn window (days)",
    30,
    365,
    churn.DEFAULT_WINDOW_DAYS,
    step=15,
    help="A customer active in the year before a cutoff has churned when they buy nothing "
    "in this many days after it. Longer windows need longer history.",
)
settings = churn.ChurnSettings(
    model=kind,
    window_days=int(window),
    as_of=as_of,
    countries=filters.countries,
    channels=filters.channels,
)
clv_settings = clv.CLVSettings(
    observation_end=as_of, countries=filters.countries, channels=filters.channels
)
try:
    report = model_ui.churn_report(settings)
    at_risk = model_ui.value_at_risk(settings, clv_settings)
    bands = model_ui.band_summary(settings, clv_settings)
except clv.NotReadyError as exc:
    model_ui.show_not_ready(exc)
    st.stop()
except CRMError as exc:
    st.error(str(exc))
    st.stop()
plain.summary(summaries.churn(report, bands))
explained = summaries.churn_metrics(report)

st.caption(
    f"Trained on customers active at {report.train_cutoff:%d %b %Y} ({report.n_train:,}), "
    f"validated on the later window from {report.valid_cutoff:%d %b %Y} ({report.n_valid:,}; "
    f"{report.churn_rate_valid:.0%} bought nothing in the window: the validation churn share, "
    "not the churn rate KPI), then refitted on that window to score "
    f"customers as of {report.as_of:%d %b %Y}. Baseline: days since the last order alone."
)
cards = st.container(horizontal=True)  # cards wrap on a narrow screen (crm_ui/style.py)
row = [cards.container() for _ in range(4)]
for column, (name, label, higher, help_text) in zip(
    row,
    [
        (
            "roc_auc",
            "ROC AUC",
            True,
            glossary.help_for("roc_auc"),
        ),
        ("pr_auc", "PR AUC", True, glossary.help_for("pr_auc")),
        (
            "brier",
            "Brier score",
            False,
            glossary.help_for("brier"),
        ),
    ],
    strict=False,
):
    value, base = report.metric(name), report.metric(name, "baseline")
    column.metric(
        label,
        f"{value:.3f}",
        delta=f"{value - base:+.3f} vs baseline",
        delta_color="normal" if higher else "inverse",
        help=help_text,
        border=True,
    )
    plain.meaning(column, explained.get(name))
row[3].metric(
    "High-risk customers",
    f"{(report.scores['churn_band'] == 'high').sum():,}",
    help=glossary.help_for("churn_band"),
    border=True,
)

left, right = st.columns(2)
left.plotly_chart(model_charts.calibration(report.calibration), width="stretch")
right.plotly_chart(model_charts.gains(report.gains), width="stretch")
plain.meaning(left, explained.get("calibration"))
plain.meaning(right, explained.get("gains"))

for note in report.notes:
    st.warning(note, icon=":material/warning:")
with st.expander("Feature drift: scoring against training"):
    st.caption(
        "Population stability index (PSI) of each feature at the scoring date against the "
        f"data the scoring model learned from: under {churn.PSI_MOVED} stable, from "
        f"{churn.PSI_SHIFTED} shifted (the risks that lean on it are less reliable)."
    )
    tables.show_table(
        report.drift,
        width="stretch",
        column_order=["label", "psi", "trained_mean", "scoring_mean", "status"],
    )

st.subheader("What drives churn")
for sentence in report.drivers["sentence"]:
    st.markdown(f"- {sentence}")
st.caption(
    "Observed churn rates in the validation window; the bars show how much the model "
    "relies on each (permutation importance)."
)
st.plotly_chart(model_charts.importance(report.drivers), width="stretch")
columns = st.columns(max(len(report.dependence), 1))
for column, (feature, frame) in zip(columns, report.dependence.items(), strict=False):
    column.plotly_chart(model_charts.dependence(frame, churn.FEATURES[feature]), width="stretch")

st.subheader("Risk and value at risk")
st.caption(
    "Value at risk = churn risk x CLV (12 months, BG/NBD x Gamma-Gamma). P(alive) "
    "(the CLV model's probability that the customer is still a customer) is shown beside "
    "the churn risk; see the Glossary for how they differ."
)
if bands.empty:
    st.info("No customers active in the last year to score.")
else:
    drill_ui.risk_bands(
        model_charts.risk_bands(bands),
        at_risk,
        filters,
        (bands, "churn_risk_bands.csv", "Download risk bands (CSV)"),
    )
    pins.pin_button("churn", "risk_bands", {"model": kind, "window_days": int(window)})
    top = at_risk[at_risk["churn_band"] == "high"].head(25)
    st.markdown("**High-risk customers with the most value at risk**")
    st.caption(
        "Why: the features that push each customer's risk up most, from the model itself, "
        "each with the factor by which it multiplies their odds of churning against an "
        "average customer."
    )
    first = ["customer_id", "churn_risk", "value_at_risk", "clv"]  # figures first,
    last = ["churn_reasons"]  # the long "Why" text last: the figures fit at 1440 px
    shown = mask_pii(top, user.role)
    drill_ui.customer_rows(
        shown[[*first, *(c for c in shown.columns if c not in first + last), *last]],
        "high_risk_rows",
        width="stretch",
        column_config={
            "churn_reasons": st.column_config.TextColumn(width="large"),
            "nps": "Average NPS answer",
        },
    )
    high_risk = at_risk.loc[at_risk["churn_band"] == "high", "customer_id"].astype(int).tolist()
    st.caption(
        f"{len(high_risk):,} customers are in the high-risk band"
        + (
            "; click the band's bar above to save them as a segment."
            if user.can("save_segments")
            else "."
        )
    )
