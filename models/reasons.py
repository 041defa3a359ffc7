"""Reason codes: exact SHAP contributions grouped per source signal and said in plain words.

A lead's contributions (TreeSHAP values of the LightGBM raw score, one per model feature) are
summed per *group*: the features that read the same source signal (pricing-page views in the
7/30/90-day and all-time windows, and the days since the last one, are one group), so a reason
is never repeated in three windows. Within a group the sentence comes from the member with the
largest absolute contribution for that lead, rendered by the feature catalog's template with the
lead's own value ("Viewed the pricing page 4 times in the last 7 days"). No raw feature names.

A count can be a reason because it is *low*: the model learns from outcomes that heavy blog readers
(researchers, students) convert less, so few blog visits raise a lead's chance. Said plainly that
would read "Viewed blog posts 8 times so far" as a reason to call, which is backwards. The book keeps
the direction of each feature's learned effect (``with_effects``, from the model's contributions on
training rows), and where a contribution goes against it with a value under the level where the
effect works (``only_below``) the sentence says so: "Viewed blog posts only 8 times so far". A value
above that level that still raises the score (a non-monotone effect, such as sales recycles) gets the
plain sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numba
import numpy as np
import pandas as pd

from features.catalog import Catalog, Feature, Kind, signal_label

REASON_COLUMNS: tuple[str, ...] = ("reason_1", "reason_2", "reason_3")
RISK_COLUMN = "risk_1"
RECENT_DAYS = 30.0  # a recency further back than this, as a reason for a lead, is said as a past fact


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)


def group_key(feature: Feature) -> str:
    """The source signal a feature reads: its event filter, or its lead column, or itself."""
    if feature.events is not None:
        return feature.events.key
    if feature.column is not None and feature.kind == Kind.ATTRIBUTE:
        return f"attribute:{feature.column}"
    return feature.name


def _fallback(name: str) -> Feature:
    """A declaration for a model feature the catalog does not know (e.g. a tabular export's column)."""
    label = name.replace("_", " ").strip().capitalize()
    return Feature(name=name, kind=Kind.ATTRIBUTE, description="{label}: {value}", unit="", column=name,
                   label=label, categorical=True)


@dataclass(frozen=True)
class ReasonBook:
    """How one model's features turn into sentences: declarations, groups, and the catalog version."""

    features: tuple[Feature, ...]
    """One declaration per model feature, in the model's column order."""
    catalog_version: str
    catalog_names: tuple[str, ...] = ()
    """Every feature the catalog declared when the model was trained (the model may use fewer)."""
    effects: tuple[int, ...] = ()
    """Per model feature, which way its learned effect goes (+1: more raises the score, -1: more lowers
    it, 0: no clear direction); empty when not learned (see ``with_effects``)."""
    only_below: tuple[float, ...] = ()
    """Per model feature, the value under which a reason against its effect reads "only": the median
    of the feature over training rows where it works *with* its effect (heavy blog reading that lowers
    the score). "Viewed blog posts only 8 times" fits a lead under that level; a lead far above it
    whose value still raises the score (a non-monotone effect) gets the plain sentence. Empty: every
    such reason says "only"."""
    groups: tuple[str, ...] = field(init=False)
    _group_of: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        groups = list(dict.fromkeys(group_key(f) for f in self.features))
        index = {g: i for i, g in enumerate(groups)}
        object.__setattr__(self, "groups", tuple(groups))
        object.__setattr__(self, "_group_of", np.array([index[group_key(f)] for f in self.features], dtype=np.int64))

    @classmethod
    def from_catalog(cls, catalog: Catalog, model_features: Sequence[str]) -> ReasonBook:
        decls = tuple(catalog[n] if n in catalog else _fallback(n) for n in model_features)
        return cls(decls, catalog.version, tuple(catalog.feature_names))

    def with_effects(self, values: pd.DataFrame, contributions: np.ndarray, min_corr: float = 0.3) -> ReasonBook:
        """A copy that knows the direction of each feature's effect, from the model's ``contributions``
        ``(n, features)`` on ``values`` (training rows)."""
        effects = learned_effects(self.features, values, contributions, min_corr)
        return replace(self, effects=effects, only_below=only_below(self.features, values, contributions, effects))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def grouped(self, contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group sums ``(n, groups)`` and, per group, the member feature with the largest |value|.

        ``contributions`` is ``(n, features)`` (no base-value column).
        """
        contributions = self._checked(contributions)
        sums, rep = _group_sums(contributions, self._group_of, len(self.groups))
        return sums, rep

    def _checked(self, contributions: np.ndarray) -> np.ndarray:
        n, p = contributions.shape
        if p != len(self.features):
            raise ValueError(f"expected {len(self.features)} contribution columns, got {p}")
        # no copy: the kernels read a strided view (the explainer's columns without the base value) as is
        return contributions if contributions.dtype == np.float64 else contributions.astype(np.float64)

    def explain(
        self, values: pd.DataFrame, contributions: np.ndarray, n_reasons: int = len(REASON_COLUMNS)
    ) -> pd.DataFrame:
        """``reason_1..n`` (top positive groups), ``risk_1`` (the most negative group) as sentences,
        with their contributions (``reason_1_shap``…) on the log-odds scale; empty where none."""
        k = n_reasons  # with fewer signal groups than slots, the last slots stay empty (group -1)
        top_group, top_sum, top_rep = _rank_groups(self._checked(contributions), self._group_of, len(self.groups), k)
        out: dict[str, np.ndarray] = {}
        memo: dict[tuple[int, bool, bool, object], str] = {}
        slots = [(f"reason_{i + 1}", i, +1) for i in range(k)] + [(RISK_COLUMN, k, -1)]
        for name, i, sign in slots:
            shap = top_sum[:, i]
            valid = (top_group[:, i] >= 0) & (shap * sign > 0)
            out[name] = self._sentences(values, top_rep[:, i], valid, sign, memo)
            out[f"{name}_shap"] = np.where(valid, shap, 0.0)
        return pd.DataFrame(out, index=values.index)

    def _sentences(
        self, values: pd.DataFrame, feature: np.ndarray, valid: np.ndarray, sign: int,
        memo: dict[tuple[int, bool, bool, object], str] | None = None,
    ) -> np.ndarray:
        """Render each row's sentence once per distinct (feature, value, wording): counts repeat a lot.

        ``sign`` is the slot's (+1 reasons, -1 the risk): against the feature's learned effect, the
        value is a reason because it is low, and the sentence says "only". A recency more than
        ``RECENT_DAYS`` past that is a reason *for* the lead is said as a past fact ("Chatted with the
        team before (last time 178 days ago)"): what raises the score is that it happened at all.
        ``memo`` keeps rendered sentences across the slots of one ``explain`` call. Rows are sorted once
        by (feature, low), so each run of rows is one slice, not a pass over all rows per feature."""
        out = np.full(len(values), "", dtype=object)
        memo = {} if memo is None else memo
        effects = np.asarray(self.effects, dtype=np.int64) if self.effects else np.zeros(len(self.features), np.int64)
        rows = np.flatnonzero(valid)
        if len(rows) == 0:
            return out
        key = feature[rows] * 2 + (effects[feature[rows]] == -sign)
        order = np.argsort(key, kind="stable")
        rows, key = rows[order], key[order]
        edges = np.flatnonzero(np.diff(key)) + 1
        for start, stop in zip(np.r_[0, edges], np.r_[edges, len(rows)]):
            j, against = int(key[start] // 2), bool(key[start] % 2)
            decl = self.features[j]
            run = rows[start:stop]
            column = values[decl.name].iloc[run]
            split_low = against and bool(self.only_below)
            split_past = sign > 0 and decl.earlier is not None
            x = _numbers(column) if split_low or split_past else None  # parsed once per run
            # NaN and values at or above the level: the plain sentence
            low = x < self.only_below[j] if split_low else np.full(len(run), against)
            past = x > RECENT_DAYS if split_past else np.zeros(len(run), dtype=bool)
            for is_low in (True, False):
                for earlier in (False, True):
                    pick = (low == is_low) & (past == earlier)
                    if pick.any():
                        out[run[pick]] = self._render(decl, j, is_low, earlier, column.iloc[np.flatnonzero(pick)], memo)
        return out

    def _render(self, decl: Feature, j: int, low: bool, earlier: bool, column: pd.Series,
                memo: dict[tuple[int, bool, bool, object], str]) -> np.ndarray:
        """The sentence of each value in ``column`` (rendered once per distinct value)."""
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        rendered = np.empty(len(uniques) + 1, dtype=object)
        for u, value in enumerate(uniques):
            text = memo.get((j, low, earlier, value))
            if text is None:
                text = memo[(j, low, earlier, value)] = decl.describe(value, low=low, earlier=earlier)
            rendered[u] = text
        rendered[-1] = decl.describe(None)
        return rendered[codes]  # code -1 (missing) takes the last entry

    def global_importance(self, contributions: np.ndarray) -> pd.Series:
        """Mean |contribution| per group over the rows, largest first (the global drivers)."""
        sums, _ = self.grouped(contributions)
        return pd.Series(np.abs(sums).mean(axis=0), index=list(self.groups)).sort_values(ascending=False)

    def group_labels(self) -> Mapping[str, str]:
        """A short plain name per group (for charts and tables), from the catalog's signal vocabulary."""
        labels: dict[str, str] = {}
        for f in self.features:
            labels.setdefault(group_key(f), signal_label(f))
        return labels


def learned_effects(
    features: Sequence[Feature], values: pd.DataFrame, contributions: np.ndarray, min_corr: float = 0.3
) -> tuple[int, ...]:
    """Per feature: the sign of the rank correlation between its values and its own contributions
    when at least ``min_corr`` in size, else 0 (categories: always 0)."""
    out = []
    for j, f in enumerate(features):
        if f.categorical or f.name not in values.columns:
            out.append(0)
            continue
        x = _numbers(values[f.name])
        c = contributions[:, j]
        keep = np.isfinite(x)
        if keep.sum() < 20 or np.ptp(x[keep]) == 0 or np.ptp(c[keep]) == 0:
            out.append(0)
            continue
        rx = pd.Series(x[keep]).rank().to_numpy()
        rc = pd.Series(c[keep]).rank().to_numpy()
        corr = float(np.corrcoef(rx, rc)[0, 1])
        out.append(int(np.sign(corr)) if abs(corr) >= min_corr else 0)
    return tuple(out)


def only_below(
    features: Sequence[Feature], values: pd.DataFrame, contributions: np.ndarray, effects: Sequence[int]
) -> tuple[float, ...]:
    """Per feature with a learned effect: the median of its values over the rows where its contribution
    has the effect's sign (more blog reading, lower score: the rows it lowers); +inf where there is
    no effect or no such row (every reason against the effect then says "only")."""
    out = []
    for j, f in enumerate(features):
        e = effects[j] if j < len(effects) else 0
        if e == 0 or f.name not in values.columns:
            out.append(float("inf"))
            continue
        x = _numbers(values[f.name])
        working = np.isfinite(x) & (np.sign(contributions[:, j]) == e)
        out.append(float(np.median(x[working])) if working.any() else float("inf"))
    return tuple(out)


# Hand-written kernels (numba) because a lead's reasons need, per row, the group sums, each group's
# largest member and the top groups: with numpy that is a pass over the whole (n, groups) matrix per
# feature plus a full argsort per row, which dominated whole-base scoring; one fused pass per row
# keeps it a small share of the TreeSHAP time.


@numba.njit(cache=True, nogil=True, inline="always")
def _row_groups(contrib: np.ndarray, i: int, group_of: np.ndarray, sums: np.ndarray, rep: np.ndarray,
                best: np.ndarray) -> None:
    """Row ``i``'s group sums into ``sums`` and each group's largest |member| (first on ties) into ``rep``."""
    sums[:] = 0.0
    best[:] = -1.0
    for j in range(contrib.shape[1]):
        g = group_of[j]
        c = contrib[i, j]
        sums[g] += c
        if abs(c) > best[g]:
            best[g] = abs(c)
            rep[g] = j


@numba.njit(cache=True, nogil=True)
def _group_sums(contrib: np.ndarray, group_of: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    n = contrib.shape[0]
    sums = np.zeros((n, n_groups))
    rep = np.zeros((n, n_groups), dtype=np.int64)
    best = np.empty(n_groups)
    for i in range(n):
        _row_groups(contrib, i, group_of, sums[i], rep[i], best)
    return sums, rep


@numba.njit(cache=True, nogil=True)
def _rank_groups(
    contrib: np.ndarray, group_of: np.ndarray, n_groups: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the ``k`` groups with the largest sums (ties: the earlier group first, as a stable
    sort), then the group with the smallest sum (the first on ties) in column ``k``; their sums and
    their largest members (``-1`` where there are fewer than ``k`` groups)."""
    n = contrib.shape[0]
    top_group = np.full((n, k + 1), -1, dtype=np.int64)
    top_sum = np.zeros((n, k + 1))
    top_rep = np.zeros((n, k + 1), dtype=np.int64)
    sums = np.zeros(n_groups)
    best = np.empty(n_groups)
    rep = np.zeros(n_groups, dtype=np.int64)
    for i in range(n):
        _row_groups(contrib, i, group_of, sums, rep, best)
        filled = 0
        low = 0
        for g in range(n_groups):
            if sums[g] < sums[low]:
                low = g
            s = sums[g]
            pos = filled
            while pos > 0 and s > top_sum[i, pos - 1]:  # strict: an equal sum stays behind the earlier group
                pos -= 1
            if pos < k:
                last = min(filled, k - 1)
                for q in range(last, pos, -1):
                    top_sum[i, q] = top_sum[i, q - 1]
                    top_group[i, q] = top_group[i, q - 1]
                top_sum[i, pos] = s
                top_group[i, pos] = g
                if filled < k:
                    filled += 1
        for q in range(filled):
            top_rep[i, q] = rep[top_group[i, q]]
        top_group[i, k] = low
        top_sum[i, k] = sums[low]
        top_rep[i, k] = rep[low]
    return top_group, top_sum, top_rep
