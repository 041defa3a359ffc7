"""The data profile: what is in the user's table, how the outcome varies, and what looks wrong.

``profile`` computes a JSON-ready summary (rows, each column's type, missing share, cardinality,
top values with their outcome rate, the outcome rate over time with a censoring warning, the
leakage audit's suspects); ``profile_html`` renders it as one self-contained HTML page (inline
CSS, charts embedded as PNG) that a non-engineer can read. Both are pure: the caller writes the
page (``reports/data_profile.html``).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.audit import Suspect

TOP_VALUES = 6
NUMERIC_BINS = 4
ORDER_BINS = 20
MIN_PERIOD_ROWS = 30
CENSOR_RATIO = 0.5
"""A trailing period is 'collapsed' when its outcome rate is below this share of the typical rate."""
CENSOR_BASELINE_PERIODS = 3
"""The typical rate is the median over the periods before the last ``CENSOR_BASELINE_PERIODS``."""


# --- the numbers ---------------------------------------------------------------------------------


def profile(
    frame: pd.DataFrame,
    label: np.ndarray,
    types: Mapping[str, str],
    *,
    time_column: str | None = None,
    suspects: Sequence[Suspect | Mapping[str, Any]] = (),
    row_order: bool = False,
    kept: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """A JSON-ready profile of ``frame`` (typed columns) against the 0/1 ``label``.

    Columns listed in ``types`` are profiled. The outcome over time uses ``time_column``
    (calendar months) or, with ``row_order``, equal-size blocks of rows in file order.
    ``suspects`` are the leakage audit's findings; ``kept`` those the user keeps on purpose;
    ``notes`` are sentences shown in the summary (how the data was split, columns not used).
    """
    y = np.asarray(label).astype(np.int8)
    frame = frame.reset_index(drop=True)
    columns = [_column_profile(frame[c], y, str(types[c])) for c in types if c in frame.columns]
    if time_column is not None:
        over_time = outcome_by_month(frame[time_column], y)
    elif row_order:
        over_time = outcome_by_row_block(y)
    else:
        over_time = {"unit": None, "periods": [], "censoring_warning": None,
                     "note": "no date column and rows not in time order: outcome over time not shown"}
    suspect_dicts = [s.to_dict() if isinstance(s, Suspect) else dict(s) for s in suspects]
    for s in suspect_dicts:
        s["kept"] = s["column"] in set(kept)
    return {
        "rows": int(len(frame)),
        "columns": int(len(columns)),
        "positives": int(y.sum()),
        "outcome_rate": _round(y.mean() if len(y) else float("nan")),
        "time_column": time_column,
        "column_profiles": columns,
        "over_time": over_time,
        "suspects": suspect_dicts,
        "notes": [str(n) for n in notes],
    }


def _round(x: float, digits: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def _column_profile(s: pd.Series, y: np.ndarray, kind: str) -> dict[str, Any]:
    filled = s.notna().to_numpy()
    out: dict[str, Any] = {
        "name": str(s.name),
        "type": kind,
        "missing_share": _round(1 - filled.mean()) if len(s) else None,
        "cardinality": int(s.nunique(dropna=True)),
        "missing_outcome_rate": _round(y[~filled].mean()) if (~filled).any() else None,
    }
    if kind == "numeric" and filled.any():
        v = s.astype("float64")
        out["min"], out["median"], out["max"] = (_round(v.min()), _round(v.median()), _round(v.max()))
        few = out["cardinality"] <= TOP_VALUES or v.value_counts().iloc[0] >= 0.3 * filled.sum()
        out["values"] = _top_values(v.map(_num, na_action="ignore"), y) if few else _numeric_bins(v, y)
    elif kind == "boolean":
        out["values"] = _top_values(s.astype("object").map({True: "yes", False: "no"}), y)
    elif kind == "date" and filled.any():
        out["min"], out["max"] = s.min().isoformat(), s.max().isoformat()
        out["values"] = []
    elif kind == "categorical":
        out["values"] = _top_values(s, y)
    else:
        out["values"] = []
    return out


def _top_values(s: pd.Series, y: np.ndarray) -> list[dict[str, Any]]:
    text = s.astype("object").where(s.notna())
    frame = pd.DataFrame({"v": text.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)), "y": y})
    stats = frame.dropna(subset=["v"]).groupby("v", sort=False)["y"].agg(["count", "mean"])
    stats = stats.sort_index().sort_values("count", ascending=False, kind="stable")
    top = [{"value": str(v), "rows": int(r["count"]), "share": _round(r["count"] / len(s)), "outcome_rate": _round(r["mean"])}
           for v, r in stats.head(TOP_VALUES).iterrows()]
    rest = stats.iloc[TOP_VALUES:]
    if len(rest):
        rows = int(rest["count"].sum())
        rate = float((rest["count"] * rest["mean"]).sum() / rows)
        top.append({"value": f"({len(rest)} other value{'s' if len(rest) > 1 else ''})", "rows": rows, "share": _round(rows / len(s)),
                    "outcome_rate": _round(rate)})
    return top


def _numeric_bins(v: pd.Series, y: np.ndarray) -> list[dict[str, Any]]:
    filled = v.notna().to_numpy()
    edges = np.unique(np.quantile(v[filled], np.linspace(0, 1, NUMERIC_BINS + 1)))
    if len(edges) < 2:
        return []
    codes = np.clip(np.searchsorted(edges, v[filled].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    out = []
    yf = y[filled]
    for b in range(len(edges) - 1):
        m = codes == b
        if m.any():
            out.append({"value": f"{_num(edges[b])} to {_num(edges[b + 1])}", "rows": int(m.sum()),
                        "share": _round(m.sum() / len(v)), "outcome_rate": _round(yf[m].mean())})
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.3g}"


def outcome_by_month(dates: pd.Series, y: np.ndarray) -> dict[str, Any]:
    """Rows, positives and outcome rate per calendar month (UTC), with the censoring check."""
    ok = dates.notna().to_numpy()
    month = dates[ok].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M").astype("str").to_numpy()
    stats = pd.DataFrame({"p": month, "y": y[ok]}).groupby("p")["y"].agg(["count", "sum"]).sort_index()
    periods = [{"period": str(p), "rows": int(r["count"]), "positives": int(r["sum"]),
                "outcome_rate": _round(r["sum"] / r["count"])} for p, r in stats.iterrows()]
    return {"unit": "month", "periods": periods, "censoring_warning": censoring_warning(periods, "month")}


def outcome_by_row_block(y: np.ndarray, blocks: int = ORDER_BINS) -> dict[str, Any]:
    """Outcome rate in equal blocks of rows in file order (the file's rows are in time order)."""
    edges = np.linspace(0, len(y), min(blocks, max(len(y), 1)) + 1).astype(int)
    periods = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            periods.append({"period": f"rows {a + 1:,}–{b:,}", "rows": int(b - a), "positives": int(y[a:b].sum()),
                            "outcome_rate": _round(y[a:b].mean())})
    return {"unit": "row block", "periods": periods, "censoring_warning": censoring_warning(periods, "block")}


def censoring_warning(periods: Sequence[Mapping[str, Any]], unit: str) -> str | None:
    """A sentence when the outcome rate collapses in the last periods, else None.

    The typical rate is the median over the earlier periods (those with at least
    ``MIN_PERIOD_ROWS`` rows, excluding the last ``CENSOR_BASELINE_PERIODS``). When the last
    period and any run of periods just before it are below ``CENSOR_RATIO`` × typical, recent
    leads have probably not had time to convert yet and would be counted as failures.
    """
    usable = [p for p in periods if p["rows"] >= MIN_PERIOD_ROWS and p["outcome_rate"] is not None]
    if len(usable) < CENSOR_BASELINE_PERIODS + 2:
        return None
    typical = float(np.median([p["outcome_rate"] for p in usable[:-CENSOR_BASELINE_PERIODS]]))
    if typical <= 0:
        return None
    run = []
    for p in reversed(usable):
        if p["outcome_rate"] < CENSOR_RATIO * typical:
            run.append(p)
        else:
            break
    if not run:
        return None
    run.reverse()
    names = ", ".join(str(p["period"]) for p in run)
    rates = ", ".join(f"{p['outcome_rate']:.1%}" for p in run)
    plural = f"{len(run)} {unit}s" if len(run) > 1 else f"{unit}"
    return (f"The outcome rate drops from a typical {typical:.1%} to {rates} in the last {plural} ({names}). "
            "Recent leads have probably not had time to convert yet: counting them as failures would teach "
            "the model that recent leads are bad. Leave these periods out of training, or use conversion "
            "dates (sql_at) so leadlift can apply a horizon.")


# --- the page --------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2933;margin:0;background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #e4e7eb;padding-bottom:4px}
p.lead{color:#52606d;margin:0 0 16px}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{flex:1;min-width:150px;background:#f0f4f8;border-radius:8px;padding:12px 16px}
.card b{display:block;font-size:22px}.card span{color:#52606d;font-size:13px}
.warn{background:#fff8e1;border-left:5px solid #f0b429;padding:10px 14px;border-radius:4px;margin:12px 0}
.bad{background:#fdecea;border-left:5px solid #d64545;padding:10px 14px;border-radius:4px;margin:8px 0}
.ok{background:#e3f9e5;border-left:5px solid #3ebd93;padding:10px 14px;border-radius:4px;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:13px}th{background:#f0f4f8;text-align:left;position:sticky;top:0}
th,td{padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}tr.suspect td{background:#fdf2f2}
.vals{margin:0;padding:0;list-style:none}.vals li{white-space:nowrap}
.bar{display:inline-block;height:9px;background:#4098d7;border-radius:2px;vertical-align:middle;margin-right:6px}
.muted{color:#7b8794}.tag{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;background:#e4e7eb}
.tag.numeric{background:#dceefb}.tag.categorical{background:#e8e1fb}.tag.boolean{background:#e3f9e5}
.tag.date{background:#fff3c4}.tag.leak{background:#facdcd;color:#8a1c1c}img{max-width:100%}
"""


def profile_html(profile_dict: Mapping[str, Any], title: str = "Data profile") -> str:
    """One self-contained HTML page (inline CSS, base64 PNG chart) for a profile from ``profile``."""
    p = profile_dict
    e = html.escape
    rate = p["outcome_rate"]
    suspects = p.get("suspects", [])
    over = p.get("over_time", {})
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{e(title)}</h1>",
        "<p class='lead'>What leadlift found in your data before training: the columns and how each relates to "
        "the outcome, how the outcome changes over time, and columns that look like they give the answer away.</p>",
        "<div class='cards'>",
        _card(f"{p['rows']:,}", "rows (leads)"),
        _card(f"{p['columns']}", "columns profiled"),
        _card(f"{p['positives']:,}", "converted"),
        _card(f"{rate:.1%}" if rate is not None else "–", "outcome rate (converted / all)"),
        _card(str(sum(1 for s in suspects if not s.get("kept"))), "columns excluded as leaks"),
        "</div>",
        _notes_html(p.get("notes", [])),
        "<h2>Columns that may leak the outcome</h2>",
        "<p class='muted'>A column leaks when it is filled in after the outcome is known (for example the length "
        "of the sales call, or a contract date). It makes a model look excellent in testing and useless in "
        "practice, so leadlift leaves it out unless you keep it on purpose.</p>",
        _suspects_html(suspects),
        f"<h2>Outcome over time{' (by ' + e(over['unit']) + ')' if over.get('unit') else ''}</h2>",
        _over_time_html(over),
        "<h2>Columns</h2>",
        "<p class='muted'>Missing: share of rows with no value (including tokens such as <i>unknown</i>). "
        "Values: the most common values (for numbers, four equal-size ranges) with their share of rows and the "
        f"share of those leads that converted; compare with the overall rate of {rate:.1%}.</p>"
        if rate is not None else "",
        _columns_html(p["column_profiles"], {s["column"] for s in suspects}),
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _notes_html(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"


def _card(value: str, label: str) -> str:
    return f"<div class='card'><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>"


def _suspects_html(suspects: Sequence[Mapping[str, Any]]) -> str:
    if not suspects:
        return "<div class='ok'>No column looks like it was filled in after the outcome.</div>"
    rows = []
    for s in suspects:
        action = "kept on purpose (params: audit.keep)" if s.get("kept") else "excluded from the features"
        reason = s["reason"][:1].upper() + s["reason"][1:]
        rows.append(f"<div class='bad'><b>{html.escape(s['column'])}</b> — {action}.<br>"
                    f"{html.escape(reason)}. <span class='muted'>[rule: {html.escape(s['rule'])}]</span></div>")
    return "".join(rows)


def _over_time_html(over: Mapping[str, Any]) -> str:
    if not over.get("periods"):
        return f"<p class='muted'>{html.escape(over.get('note', 'No time information.'))}</p>"
    warning = over.get("censoring_warning")
    head = (f"<div class='warn'><b>Recent periods look incomplete.</b> {html.escape(warning)}</div>" if warning
            else "<div class='ok'>No sign that recent leads are cut off before they could convert.</div>")
    unit = ("<p class='muted'>The rows of the file are in time order, so time is shown as equal blocks of rows "
            "(oldest first).</p>" if over.get("unit") == "row block" else "")
    return head + unit + f"<img alt='outcome rate over time' src='data:image/png;base64,{_time_chart(over)}'>"


def _time_chart(over: Mapping[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periods = over["periods"]
    labels = [str(p["period"]) for p in periods]
    x = np.arange(len(periods))
    fig, ax = plt.subplots(figsize=(10.5, 3.6), dpi=100)
    ax.bar(x, [p["rows"] for p in periods], color="#d9e2ec", label="leads")
    ax.set_ylabel("leads", color="#52606d")
    ax2 = ax.twinx()
    rates = [np.nan if p["outcome_rate"] is None else 100 * p["outcome_rate"] for p in periods]
    ax2.plot(x, rates, color="#2680c2", marker="o", linewidth=2, label="outcome rate")
    ax2.set_ylabel("converted (%)", color="#2680c2")
    ax2.set_ylim(bottom=0)
    ax.set_xticks(x)
    step = max(1, len(x) // 16)
    ax.set_xticklabels([lb if i % step == 0 else "" for i, lb in enumerate(labels)], rotation=45, ha="right",
                       fontsize=8)
    for spine in ("top",):
        ax.spines[spine].set_visible(False)
        ax2.spines[spine].set_visible(False)
    ax.set_title("Leads (bars) and share converted (line)", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _columns_html(columns: Sequence[Mapping[str, Any]], suspects: set[str]) -> str:
    rows = ["<table><tr><th>Column</th><th>Type</th><th>Missing</th><th>Distinct values</th>"
            "<th>Values (share of rows · converted)</th></tr>"]
    for c in columns:
        leak = c["name"] in suspects
        tag = f"<span class='tag {html.escape(c['type'])}'>{html.escape(c['type'])}</span>"
        if leak:
            tag += " <span class='tag leak'>leak suspect</span>"
        miss = c["missing_share"]
        miss_txt = "–" if miss is None else (f"{miss:.1%}" if miss else "none")
        if miss and c.get("missing_outcome_rate") is not None:
            miss_txt += f"<br><span class='muted'>{c['missing_outcome_rate']:.1%} of these converted</span>"
        rows.append(f"<tr class='{'suspect' if leak else ''}'><td><b>{html.escape(c['name'])}</b>"
                    f"{_range_txt(c)}</td><td>{tag}</td><td>{miss_txt}</td><td>{c['cardinality']:,}</td>"
                    f"<td>{_values_html(c.get('values', []))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _range_txt(c: Mapping[str, Any]) -> str:
    if c["type"] == "numeric" and c.get("min") is not None:
        return f"<br><span class='muted'>min {_num(c['min'])} · median {_num(c['median'])} · max {_num(c['max'])}</span>"
    if c["type"] == "date" and c.get("min"):
        return f"<br><span class='muted'>{html.escape(c['min'][:10])} to {html.escape(c['max'][:10])}</span>"
    return ""


def _values_html(values: Sequence[Mapping[str, Any]]) -> str:
    if not values:
        return "<span class='muted'>–</span>"
    items = []
    for v in values:
        width = max(1, int(round(60 * (v["outcome_rate"] or 0))))
        items.append(f"<li><span class='bar' style='width:{width}px'></span>{html.escape(v['value'])} "
                     f"<span class='muted'>({v['share']:.0%} · {v['outcome_rate']:.1%} converted)</span></li>")
    return f"<ul class='vals'>{''.join(items)}</ul>"
