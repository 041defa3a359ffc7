"""The RevOps report: what drives the lead score, overall and per segment, how well the tiers match
what happened on the out-of-time test period, and example leads with their reasons in plain words.

Pure functions: the test snapshots and the scorer in, tables, matplotlib figures and one
self-contained HTML string out (charts embedded as base64 PNG, no external file, script or font),
so the page opens offline, travels by e-mail and sits beside the model in MLflow. Contributions are
the scorer's exact TreeSHAP values summed per source signal (``ReasonBook.grouped``); every name a
reader sees comes from the feature catalog's vocabulary, never a column name.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import Feature, attribute_label, category_text, feature_label
from features.contract import CUTOFF, LABEL, LEAD_ID
from models.metrics import band
from models.reasons import REASON_COLUMNS, RISK_COLUMN, group_key
from models.scorer import TIERS, LeadScorer, TierParams

_BLUE, _RED, _GREY, _INK = "#2f6db3", "#c8453b", "#b9bec6", "#1f2933"
_CMAP = LinearSegmentedColormap.from_list("low_high", ["#2f6db3", "#b56fb0", "#e0483e"])
LOG_ODDS_NOTE = "+0.7 doubles a lead's odds of converting and -0.7 halves them"


class ReportParams(BaseModel):
    """The ``report`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_signals: int = Field(12, ge=1)
    """Signals shown in the driver charts and segment tables."""
    dependence_plots: int = Field(4, ge=0)
    """How many of the top signals get a chart of "value vs effect"."""
    examples: int = Field(10, ge=0)
    """Example leads with their reasons (spread over the tiers)."""
    beeswarm_rows: int = Field(2000, ge=50)
    """Snapshots drawn (seeded) for the per-lead charts; the averages use every test row."""
    segments: dict[str, list[float]] = {"lead_source": [], "employees": [1, 50, 250, 1000]}
    """Columns to break the drivers down by; a numeric column is cut into bands at the listed edges."""
    min_segment_rows: int = Field(100, ge=1)
    """Segments with fewer test rows are left out (too few to say anything)."""
    seed: int = 0


@dataclass(frozen=True)
class ModelInfo:
    """Which model the report explains (shown in the header)."""

    name: str
    version: str
    run_id: str = ""


@dataclass(frozen=True)
class Explained:
    """The test rows with their scores and their contributions per source signal."""

    frame: pd.DataFrame
    """The rows as given (features, ``lead_id``, ``cutoff``, ``label``)."""
    scores: pd.DataFrame
    """``LeadScorer.score`` output, same index."""
    signals: pd.DataFrame
    """Contribution of each source signal (group key columns) per row, log-odds."""
    labels: Mapping[str, str]
    """Plain name of each signal."""
    main_feature: Mapping[str, Feature]
    """Per signal, the member feature with the largest mean |contribution| (its value colours charts)."""


def explain_rows(scorer: LeadScorer, frame: pd.DataFrame) -> Explained:
    """Score ``frame`` and sum its exact contributions per source signal (the input is not modified)."""
    scores = scorer.score(frame)
    contrib = scorer.contributions(frame)[scorer.features].to_numpy()
    book = scorer.reasons
    sums, _ = book.grouped(contrib)
    signals = pd.DataFrame(sums, index=frame.index, columns=list(book.groups))
    strength = np.abs(contrib).mean(axis=0) if len(contrib) else np.zeros(contrib.shape[1])
    main: dict[str, Feature] = {}
    best: dict[str, float] = {}
    for j, feature in enumerate(book.features):
        g = group_key(feature)
        if g not in best or strength[j] > best[g]:
            best[g], main[g] = float(strength[j]), feature
    return Explained(frame, scores, signals, dict(book.group_labels()), main)


# --- tables --------------------------------------------------------------------------------------


def importance(signals: pd.DataFrame) -> pd.Series:
    """Mean |contribution| per signal, largest first (the global drivers)."""
    return signals.abs().mean(axis=0).sort_values(ascending=False, kind="stable")


def segment_keys(frame: pd.DataFrame, column: str, edges: Sequence[float]) -> pd.Series:
    """The segment of each row: the column's text value, or its band when ``edges`` are given."""
    values = frame[column]
    if edges:
        return band(values, edges).fillna("not known")
    return values.map(lambda v: "not known" if pd.isna(v) else category_text(v).replace("_", " "))


def segment_drivers(
    signals: pd.DataFrame, keys: pd.Series, signals_shown: Sequence[str], min_rows: int
) -> tuple[pd.DataFrame, pd.Series]:
    """Mean |contribution| of ``signals_shown`` (rows) within each segment (columns) with at least
    ``min_rows`` rows, and the row count of each kept segment."""
    counts = keys.value_counts()
    kept = sorted((k for k, n in counts.items() if n >= min_rows), key=_segment_order)
    table = pd.DataFrame(
        {k: signals.loc[keys == k, list(signals_shown)].abs().mean(axis=0) for k in kept},
        index=list(signals_shown),
    )
    return table, counts.reindex(kept).astype(int)


def _segment_order(key: str) -> tuple[int, float, str]:
    head = str(key).split("-")[0].rstrip("+")
    try:
        return (0, float(head), "")
    except ValueError:
        return (1 if key != "not known" else 2, 0.0, str(key))


def tier_table(probability: np.ndarray, label: np.ndarray, tiers: TierParams) -> pd.DataFrame:
    """Per tier (and in all): rows, share, mean predicted probability, expected and observed
    conversions and the observed rate."""
    p = np.asarray(probability, dtype=float)
    y = np.asarray(label).astype(int)
    names = np.where(p >= tiers.hot, "hot", np.where(p >= tiers.warm, "warm", "cold"))
    ranges = {"hot": f"{tiers.hot:.0%} or more", "warm": f"{tiers.warm:.0%} to {tiers.hot:.0%}",
              "cold": f"below {tiers.warm:.0%}", "all": "any"}
    rows = []
    for tier in (*TIERS, "all"):
        mask = np.ones(len(p), dtype=bool) if tier == "all" else names == tier
        n = int(mask.sum())
        rows.append({
            "tier": tier, "range": ranges[tier], "rows": n, "share": n / len(p) if len(p) else float("nan"),
            "mean_predicted": float(p[mask].mean()) if n else float("nan"),
            "expected": float(p[mask].sum()), "converted": int(y[mask].sum()),
            "observed_rate": float(y[mask].mean()) if n else float("nan"),
        })
    return pd.DataFrame(rows).set_index("tier")


def pick_examples(scores: pd.DataFrame, frame: pd.DataFrame, n: int) -> pd.Index:
    """``n`` example rows of distinct leads, spread over the tiers (hot first) and, within a tier, evenly
    over its range of probabilities, so the examples show the whole picture and not only the best."""
    if n == 0 or len(scores) == 0:
        return scores.index[:0]
    latest = frame.sort_values(CUTOFF, kind="stable").drop_duplicates(LEAD_ID, keep="last").index
    pool = scores.loc[latest].sort_values("probability", ascending=False, kind="stable")
    sizes = pool["tier"].value_counts().reindex(list(TIERS), fill_value=0)
    present = [t for t in TIERS if sizes[t] > 0]
    quota = dict.fromkeys(present, 0)
    for i in range(min(n, len(pool))):  # round robin over the tiers that still have leads to give
        open_tiers = [t for t in present if quota[t] < sizes[t]]
        quota[open_tiers[i % len(open_tiers)]] += 1
    chosen: list[Any] = []
    for tier in present:
        part = pool[pool["tier"] == tier].index
        k = quota[tier]
        if k:
            chosen.extend(part[np.unique(np.linspace(0, len(part) - 1, k).round().astype(int))])
    return pd.Index(chosen)


# --- figures -------------------------------------------------------------------------------------


def _axes_style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9, colors=_INK)
    ax.grid(axis="x", alpha=0.25)


def drivers_figure(strength: pd.Series, labels: Mapping[str, str]) -> Figure:
    """Horizontal bars of the mean |contribution| of each signal, strongest on top."""
    shown = strength.iloc[::-1]
    fig = Figure(figsize=(8.5, 0.38 * len(shown) + 1.3), dpi=110)
    ax = fig.add_subplot()
    ax.barh([labels.get(g, g) for g in shown.index], shown.to_numpy(), color=_BLUE)
    for y, v in enumerate(shown.to_numpy()):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8, color=_INK)
    ax.set_xlabel("Average push on a lead's score, up or down (log-odds)", fontsize=9)
    _axes_style(ax)
    fig.tight_layout()
    return fig


def _colour_values(values: pd.Series, feature: Feature) -> np.ndarray:
    """Each value's rank in [0, 1] among the shown values; NaN for text values and missing ones."""
    if feature.categorical:
        return np.full(len(values), np.nan)
    x = pd.to_numeric(values, errors="coerce").astype(float)
    return x.rank(pct=True).to_numpy()


def _swarm_offsets(x: np.ndarray, width: float = 0.38, bins: int = 70) -> np.ndarray:
    """Vertical offsets that spread points sharing an x bin into a symmetric swarm."""
    if len(x) == 0:
        return np.zeros(0)
    lo, hi = float(np.min(x)), float(np.max(x))
    which = np.zeros(len(x), dtype=int) if hi == lo else np.minimum(((x - lo) / (hi - lo) * bins).astype(int), bins - 1)
    offsets = np.zeros(len(x))
    counts = np.bincount(which, minlength=bins)
    step = width / max(1, counts.max() / 2)
    for b in np.flatnonzero(counts):
        members = np.flatnonzero(which == b)
        k = np.arange(len(members))
        offsets[members] = np.where(k % 2 == 0, 1, -1) * ((k + 1) // 2) * step
    return offsets


def beeswarm_figure(ex: Explained, shown: Sequence[str], rows: pd.Index) -> Figure:
    """One dot per lead snapshot and signal: how far the signal pushed that lead's score, coloured by
    the lead's own value of the signal (blue low, red high, grey text or not known)."""
    fig = Figure(figsize=(9.5, 0.5 * len(shown) + 1.8), dpi=110)
    ax = fig.add_subplot()
    for i, g in enumerate(reversed(list(shown))):
        x = ex.signals.loc[rows, g].to_numpy()
        feature = ex.main_feature[g]
        c = _colour_values(ex.frame.loc[rows, feature.name], feature)
        y = i + _swarm_offsets(x)
        grey = np.isnan(c)
        ax.scatter(x[grey], y[grey], s=5, color=_GREY, alpha=0.6, linewidths=0)
        ax.scatter(x[~grey], y[~grey], s=5, c=c[~grey], cmap=_CMAP, vmin=0, vmax=1, alpha=0.8, linewidths=0)
    ax.axvline(0, color="#7b8794", linewidth=0.8)
    ax.set_yticks(range(len(shown)), [ex.labels.get(g, g) for g in reversed(list(shown))])
    ax.set_xlabel("Push on the lead's score (log-odds): left lowers the chance, right raises it", fontsize=9)
    _axes_style(ax)
    mappable = ax.collections[-1] if ax.collections else None
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=ax, pad=0.01, fraction=0.03, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"], fontsize=8)
        bar.set_label("the lead's own value (grey: a category or not known)", fontsize=8)
    fig.tight_layout()
    return fig


def dependence_figure(ex: Explained, group: str) -> tuple[Figure, str]:
    """The lead's value of a signal's main feature (x) against the signal's push on its score (y),
    with the average per value range; a category signal as the average push per category. Also a
    short note on what was left out of the chart."""
    feature = ex.main_feature[group]
    push = ex.signals[group]
    values = ex.frame[feature.name]
    fig = Figure(figsize=(5.6, 3.7), dpi=110)
    ax = fig.add_subplot()
    note = ""
    if feature.categorical:
        keys = values.map(feature.describe)  # each category in the catalog's words ("Job level: director")
        means = push.groupby(keys).mean().sort_values()
        counts = keys.value_counts()
        means = means[counts.reindex(means.index).to_numpy() >= 20].tail(12)
        ax.barh(list(means.index), means.to_numpy(), color=np.where(means.to_numpy() >= 0, _RED, _BLUE))
        ax.axvline(0, color="#7b8794", linewidth=0.8)
        ax.set_xlabel("Average push on the score (log-odds)", fontsize=9)
        _axes_style(ax)
        note = "Values seen in fewer than 20 snapshots are left out." if len(means) < keys.nunique() else ""
    else:
        x = pd.to_numeric(values, errors="coerce").astype(float)
        known = x.notna().to_numpy()
        top = float(np.nanquantile(x[known], 0.99)) if known.any() else 0.0
        shown = known & (x.to_numpy() <= top)
        ax.scatter(x[shown], push[shown], s=6, alpha=0.25, color=_BLUE, linewidths=0)
        mids, avg = _average_curve(x[shown].to_numpy(), push[shown].to_numpy())
        if len(mids) > 1:
            ax.plot(mids, avg, color=_RED, linewidth=2, marker="o", markersize=3, label="average")
            ax.legend(fontsize=8, frameon=False)
        ax.axhline(0, color="#7b8794", linewidth=0.8)
        ax.set_xlabel(feature_label(feature), fontsize=9)
        ax.set_ylabel("Push on the score (log-odds)", fontsize=9)
        _axes_style(ax)
        ax.grid(axis="y", alpha=0.25)
        parts = []
        if (~known).sum():
            parts.append(f"{int((~known).sum()):,} snapshots with no value ({_missing_words(feature)}) are not drawn")
        if (known & ~shown).sum():
            parts.append(f"the top 1% of values (above {top:,.4g}) are not drawn")
        note = ("; ".join(parts) + ".").capitalize() if parts else ""
    ax.set_title(ex.labels.get(group, group), fontsize=10, color=_INK, loc="left")
    fig.tight_layout()
    return fig, note


def _average_curve(x: np.ndarray, y: np.ndarray, bins: int = 10, distinct: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The mean of ``y`` per value of ``x`` (few distinct values, such as counts) or per decile of ``x``."""
    if len(x) < 20:
        return np.zeros(0), np.zeros(0)
    values = np.unique(x)
    if len(values) <= distinct:
        means = pd.Series(y).groupby(x).mean()
        return means.index.to_numpy(dtype=float), means.to_numpy()
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    return pd.Series(x).groupby(which).median().to_numpy(), pd.Series(y).groupby(which).mean().to_numpy()


def _missing_words(feature: Feature) -> str:
    text = feature.describe(None)
    return text[0].lower() + text[1:]


def figure_png(fig: Figure) -> str:
    """The figure as a base64 PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- the page ------------------------------------------------------------------------------------


def explanations_html(
    scorer: LeadScorer, test: pd.DataFrame, params: ReportParams, *, horizon_days: int, model: ModelInfo,
    generated_at: pd.Timestamp | None = None,
) -> str:
    """The whole RevOps report for the out-of-time ``test`` rows, as one self-contained HTML page."""
    if len(test) == 0:
        raise ValueError("the out-of-time test part has no rows: there is nothing to report on")
    ex = explain_rows(scorer, test)
    strength = importance(ex.signals)
    shown = list(strength.index[: params.top_signals])
    rng = np.random.default_rng(params.seed)
    take = min(params.beeswarm_rows, len(test))
    sample = test.index[np.sort(rng.choice(len(test), size=take, replace=False))]
    label = test[LABEL].to_numpy()
    tiers = tier_table(ex.scores["probability"].to_numpy(), label, scorer.params.tiers)
    period = (test[CUTOFF].min(), test[CUTOFF].max())

    parts = [_head(model, period, len(test), int(test[LEAD_ID].nunique()), horizon_days, generated_at)]
    parts.append(_tier_section(tiers, horizon_days))
    parts.append(_section(
        "What moves a lead's score the most",
        "Each bar is one signal the model reads, such as pricing-page visits or company size (a signal's "
        "counts over the last 7, 30 and 90 days and all time, and how recent it is, count as one). Its length "
        f"is how far that signal moves a lead's score on average, up or down, over the {len(test):,} test "
        f"snapshots. On this scale, {LOG_ODDS_NOTE}.",
        _img(drivers_figure(strength.iloc[: params.top_signals], ex.labels), "Strongest signals"),
    ))
    parts.append(_section(
        "Which way each signal pushes",
        f"Each dot is one lead on one day ({take:,} drawn at random from the test period). Dots right of the "
        "line are leads whose chance this signal raised, dots to the left are leads it lowered. Red dots are "
        "leads with a high value of the signal (many visits, a large company), blue dots a low one; where the "
        "signal is a time since the last action, red means long ago. Grey dots are categories (such as the "
        "lead source) or values not known. Red on the right and blue on the left means \"more of it is "
        "better\".",
        _img(beeswarm_figure(ex, shown, sample), "Per-lead effect of each signal"),
    ))
    parts.append(_dependence_section(ex, shown[: params.dependence_plots]))
    for column, edges in params.segments.items():
        parts.append(_segment_section(ex, column, edges, shown[: min(10, len(shown))], params.min_segment_rows))
    parts.append(_examples_section(ex, pick_examples(ex.scores, test, params.examples), horizon_days))
    parts.append(_method_section(horizon_days))
    return _page("Lead scoring: what drives the score", "\n".join(parts))


def _head(model: ModelInfo, period: tuple[pd.Timestamp, pd.Timestamp], rows: int, leads: int, horizon: int,
          generated_at: pd.Timestamp | None) -> str:
    made = f" Made {generated_at:%Y-%m-%d %H:%M} UTC." if generated_at is not None else ""
    run = f", training run {html.escape(model.run_id[:12])}" if model.run_id else ""
    return (
        "<header><h1>Lead scoring: what drives the score</h1>"
        f"<p class='lede'>The model gives every open marketing-qualified lead a <b>chance of becoming "
        f"sales-qualified within {horizon} days</b>, a tier (hot, warm or cold) and the reasons behind it. "
        f"This report checks it on <b>{rows:,} snapshots of {leads:,} leads</b> from "
        f"{period[0]:%d %b %Y} to {period[1]:%d %b %Y}: a period the model never learned from, so it is a fair "
        "test of how it will do on new leads. A snapshot is what we knew about a lead on one day; an open "
        "lead has one every two weeks.</p>"
        f"<p class='meta'>Model {html.escape(model.name)} version {html.escape(model.version)}{run}.{made}</p>"
        "</header>"
    )


def _section(title: str, explain: str, body: str, note: str = "") -> str:
    tail = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<section><h2>{html.escape(title)}</h2><p class='explain'>{html.escape(explain)}</p>{body}{tail}</section>"


def _img(fig: Figure, alt: str) -> str:
    return f"<img src='{figure_png(fig)}' alt='{html.escape(alt)}'>"


def _pct(x: float, digits: int = 1) -> str:
    return "–" if x != x else f"{x:.{digits}%}"


def _chance(p: float) -> str:
    """A probability as a percentage, one decimal, rounded down so it never reads above its tier's
    cut-off (a cold 9.96% is "9.9%", not "10.0%")."""
    return f"{np.floor(p * 1000 + 1e-9) / 10:.1f}%"


def _tier_section(tiers: pd.DataFrame, horizon: int) -> str:
    head = ("<tr><th>Tier</th><th>Chance range</th><th>Snapshots</th><th>Share</th>"
            "<th>Predicted conversion<br><span>average chance</span></th>"
            "<th>Expected SQLs</th><th>Actual SQLs</th><th>Observed conversion</th></tr>")
    body = []
    for tier, r in tiers.iterrows():
        cls = " class='total'" if tier == "all" else ""
        name = "All" if tier == "all" else f"<span class='tier {tier}'>{tier.capitalize()}</span>"
        body.append(
            f"<tr{cls}><td>{name}</td><td>{html.escape(r['range'])}</td><td>{int(r['rows']):,}</td>"
            f"<td>{_pct(r['share'], 0)}</td><td>{_pct(r['mean_predicted'])}</td><td>{r['expected']:,.0f}</td>"
            f"<td>{int(r['converted']):,}</td><td><b>{_pct(r['observed_rate'])}</b></td></tr>"
        )
    table = f"<table class='tiers'>{head}{''.join(body)}</table>"
    return _section(
        "Do the tiers hold up?",
        "For each tier: how many test snapshots fell in it, the average chance the model gave them, and how "
        f"many of those leads really became sales-qualified within {horizon} days. When the model is honest, "
        "predicted and observed conversion are close in every tier, and the hot tier converts far more often "
        "than the cold one. Tiers use fixed chance cut-offs, so \"hot\" means the same after every retrain.",
        table,
    )


def _dependence_section(ex: Explained, groups: Sequence[str]) -> str:
    if not groups:
        return ""
    cells = []
    for g in groups:
        fig, note = dependence_figure(ex, g)
        cap = f"<figcaption>{html.escape(note)}</figcaption>" if note else ""
        cells.append(f"<figure>{_img(fig, ex.labels.get(g, g))}{cap}</figure>")
    return _section(
        "How the strongest signals work",
        "For the strongest signals: the lead's value (across) against how much it moved that lead's score "
        "(up and down). The red line is the average. It shows where a signal starts to matter, for example "
        "from how many pricing-page visits, and whether more is always better.",
        f"<div class='grid'>{''.join(cells)}</div>",
    )


def _segment_section(ex: Explained, column: str, edges: Sequence[float], shown: Sequence[str], min_rows: int) -> str:
    name = attribute_label(column).split(" (")[0]
    title = f"Drivers by {name[0].lower() + name[1:]}"
    if column not in ex.frame.columns:
        return _section(title, f"This data has no {name.lower()}, so this breakdown is not available.", "")
    keys = segment_keys(ex.frame, column, edges)
    table, counts = segment_drivers(ex.signals, keys, shown, min_rows)
    if table.empty:
        return _section(title, f"No {name.lower()} has {min_rows} or more test snapshots.", "")
    rates = pd.Series(ex.frame[LABEL].to_numpy(), index=keys.to_numpy()).groupby(level=0).mean()
    top = float(table.to_numpy().max()) or 1.0
    head = "<tr><th>Signal</th>" + "".join(f"<th>{html.escape(str(k))}</th>" for k in table.columns) + "</tr>"
    info = ("<tr class='info'><td>Snapshots · observed conversion</td>"
            + "".join(f"<td>{counts[k]:,} · {_pct(rates[k])}</td>" for k in table.columns) + "</tr>")
    rows = []
    for g, r in table.iterrows():
        cells = "".join(
            f"<td style='background:rgba(47,109,179,{0.08 + 0.72 * v / top:.2f});"
            f"color:{'#fff' if v / top > 0.55 else _INK}'>{v:.2f}</td>"
            for v in r.to_numpy()
        )
        rows.append(f"<tr><td class='signal'>{html.escape(ex.labels.get(g, g))}</td>{cells}</tr>")
    return _section(
        title,
        f"The same average push as above, for the leads of each {name.lower()} separately (darker = stronger). "
        "A signal that matters much more in one column than in the others is worth a look by the team that "
        f"owns those leads. Groups with fewer than {min_rows} test snapshots are left out.",
        f"<div class='scroll'><table class='segments'>{head}{info}{''.join(rows)}</table></div>",
    )


def _examples_section(ex: Explained, rows: pd.Index, horizon: int) -> str:
    if len(rows) == 0:
        return ""
    cards = []
    for i in rows:
        s, f = ex.scores.loc[i], ex.frame.loc[i]
        reasons = [s[c] for c in REASON_COLUMNS if s[c]]
        items = "".join(f"<li><span class='up'>▲</span>{html.escape(r)}</li>" for r in reasons)
        if s[RISK_COLUMN]:
            items += f"<li><span class='down'>▼</span>{html.escape(s[RISK_COLUMN])}</li>"
        outcome = (f"became sales-qualified within {horizon} days" if f[LABEL]
                   else f"did not become sales-qualified within {horizon} days")
        cards.append(
            f"<div class='lead'><div class='top'><span class='tier {s['tier']}'>{s['tier'].capitalize()}</span>"
            f"<b>{_chance(s['probability'])}</b> chance · lead {html.escape(str(f[LEAD_ID]))} on "
            f"{pd.Timestamp(f[CUTOFF]):%d %b %Y}</div><ul>{items}</ul>"
            f"<div class='outcome'>What happened: {outcome}.</div></div>"
        )
    return _section(
        "Example leads and their reasons",
        f"{len(rows)} leads from the test period, spread over the tiers. Lines with a green ▲ are the reasons "
        "that raise the lead's chance most (strongest first); the red ▼ line is what holds it back most. This is exactly "
        "what the scores file gives sales for every lead. A reason such as \"Viewed blog posts only twice\" or "
        "\"Has not viewed the careers page yet\" means the model learned from past outcomes that leads who do a "
        "lot of that (for example researchers or job seekers) convert less, so little of it counts in the "
        "lead's favour.",
        f"<div class='leads'>{''.join(cards)}</div>",
    )


def _method_section(horizon: int) -> str:
    return _section(
        "How this is worked out",
        "The model adds up the evidence of every signal into one score, which is turned into a chance that was "
        "checked against real outcomes (calibrated). The share of the score due to each signal is computed "
        "exactly for every lead (SHAP values): the pushes of all signals add up to the lead's score. A "
        "signal's time windows (last 7, 30, 90 days, all time) and its recency are counted together as one "
        f"signal. \"Converted\" means the lead became sales-qualified within {horizon} days after the "
        "snapshot. Averages and the tier table use every test snapshot; the dot charts use a random sample.",
        "",
    )


_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2933;margin:0;background:#f5f7fa}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:28px;margin:8px 0 12px}h2{font-size:21px;margin:0 0 6px;color:#102a43}
.lede{font-size:16px;line-height:1.5;max-width:900px}.meta{color:#627d98;font-size:13px}
section{border-top:1px solid #d9e2ec;padding:22px 0 8px}
.explain{font-size:15px;line-height:1.5;max-width:900px;color:#334e68}
.note,figcaption{font-size:12px;color:#627d98}
img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:14px;margin:8px 0}
th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:right}
th{background:#f0f4f8;font-weight:600;vertical-align:bottom}th span{font-weight:400;font-size:12px;color:#627d98}
td:first-child,th:first-child{text-align:left}tr.total td{font-weight:600;border-top:2px solid #9fb3c8}
table.segments td{text-align:center;min-width:70px}table.segments td.signal{text-align:left;white-space:nowrap}
tr.info td{font-size:12px;color:#486581;background:#f8fafc}
.scroll{overflow-x:auto}
.tier{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;margin-right:6px}
.tier.hot{background:#c8453b}.tier.warm{background:#d9822b}.tier.cold{background:#2f6db3}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}figure{margin:0}
.leads{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.lead{border:1px solid #d9e2ec;border-radius:8px;padding:10px 14px;font-size:14px}
.lead ul{margin:8px 0;padding-left:0;list-style:none}.lead li{margin:3px 0}
.up,.down{display:inline-block;width:18px;font-size:11px}.up{color:#2f9e44}.down{color:#c8453b}
.outcome{font-size:12px;color:#627d98}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )
