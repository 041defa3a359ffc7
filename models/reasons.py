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
training rows), and where a contribution goes against it the sentence says so: "Viewed blog posts
only 8 times so far".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.catalog import Catalog, Feature, Kind, signal_label

REASON_COLUMNS: tuple[str, ...] = ("reason_1", "reason_2", "reason_3")
RISK_COLUMN = "risk_1"


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
        return replace(self, effects=learned_effects(self.features, values, contributions, min_corr))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def grouped(self, contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group sums ``(n, groups)`` and, per group, the member feature with the largest |value|.

        ``contributions`` is ``(n, features)`` (no base-value column).
        """
        n, p = contributions.shape
        if p != len(self.features):
            raise ValueError(f"expected {len(self.features)} contribution columns, got {p}")
        g = len(self.groups)
        sums = np.zeros((n, g))
        rep = np.zeros((n, g), dtype=np.int64)
        best = np.full((n, g), -1.0)
        for j in range(p):
            k = self._group_of[j]
            col = contributions[:, j]
            sums[:, k] += col
            better = np.abs(col) > best[:, k]
            rep[better, k] = j
            best[better, k] = np.abs(col[better])
        return sums, rep

    def explain(
        self, values: pd.DataFrame, contributions: np.ndarray, n_reasons: int = len(REASON_COLUMNS)
    ) -> pd.DataFrame:
        """``reason_1..n`` (top positive groups), ``risk_1`` (the most negative group) as sentences,
        with their contributions (``reason_1_shap``…) on the log-odds scale; empty where none."""
        sums, rep = self.grouped(contributions)
        n = len(values)
        order = np.argsort(-sums, axis=1, kind="stable")[:, :n_reasons]
        out: dict[str, np.ndarray] = {}
        slots = [(f"reason_{i + 1}", order[:, i], +1) for i in range(min(n_reasons, order.shape[1]))]
        slots.append((RISK_COLUMN, np.argmin(sums, axis=1), -1))
        rows = np.arange(n)
        for name, group, sign in slots:
            shap = sums[rows, group]
            valid = shap * sign > 0
            feature = rep[rows, group]
            out[name] = self._sentences(values, feature, valid, sign)
            out[f"{name}_shap"] = np.where(valid, shap, 0.0)
        for i in range(order.shape[1], n_reasons):  # fewer signal groups than reason slots: empty slots
            out[f"reason_{i + 1}"] = np.full(n, "", dtype=object)
            out[f"reason_{i + 1}_shap"] = np.zeros(n)
        return pd.DataFrame(out, index=values.index)

    def _sentences(self, values: pd.DataFrame, feature: np.ndarray, valid: np.ndarray, sign: int) -> np.ndarray:
        """Render each row's sentence once per distinct (feature, value, low): counts repeat a lot.

        ``sign`` is the slot's (+1 reasons, -1 the risk): against the feature's learned effect, the
        value is a reason because it is low, and the sentence says "only"."""
        out = np.full(len(values), "", dtype=object)
        effects = np.asarray(self.effects, dtype=np.int64) if self.effects else np.zeros(len(self.features), np.int64)
        against = effects[feature] == -sign
        for j in np.unique(feature[valid]):
            decl = self.features[j]
            for low in (False, True):
                rows = np.flatnonzero(valid & (feature == j) & (against == low))
                if len(rows) == 0:
                    continue
                column = values[decl.name].iloc[rows]
                codes, uniques = pd.factorize(column, use_na_sentinel=True)
                rendered = np.array([decl.describe(u, low=low) for u in uniques] + [decl.describe(None)], dtype=object)
                out[rows] = rendered[np.where(codes < 0, len(uniques), codes)]
        return out

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
        x = pd.to_numeric(values[f.name], errors="coerce").to_numpy(dtype=float)
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
