"""Choose the bank example's settings on a time-ordered validation that never sees the test.

The pipeline's test part is the last 25 % of rows (rows are in date order). This script drops those
rows first. What is left is cut as the pipeline cuts it: the train part (rows [0, 60 %)) and the
calibration part ([60 %, 75 %)). Each candidate is fitted on the train part with leadlift's own code
(``fit_lgbm``: early stopping on a lead holdout of the train part; ``fit_naive_bayes``) and scored
on the calibration part. Candidates: the five macro-economic columns kept or left out; for LightGBM
stumps or 7-leaf trees, categoricals split many-vs-many (LightGBM's default, up to 4 levels one-hot)
or one level at a time (up to 32); for the additive naive Bayes 0 (categoricals only), 5 or 10
quantile bins per numeric column and unseen levels smoothed or neutral.

The rule: per family, the best validation ROC AUC wins; the macro columns are chosen on the best
candidate over both families, and they stay out unless keeping them gains at least ``TIE`` (0.005)
validation ROC AUC (they are time proxies, constant within a month: fewer such columns on a tie).
The winners go into ``params.yaml``. Which *family* becomes the main model is then not chosen here:
the pipeline fits both on the train part and keeps the better on the calibration part
(``train.candidates``), and refits it on the first 75 % (``train.final_refit``).

An earlier fold (fit on [0, 45 %), validate on [45 %, 60 %)) was tried too and dropped: every model,
naive Bayes included, ranks that period worse than chance (ROC AUC 0.42 to 0.45), so it could not
tell settings apart.

A second step then chooses naive Bayes's options for drift (``models/nbayes.py``): recency weights
(``half_life`` none, 1, 0.5 or 0.25 of the fitted rows' span) and column selection (``select`` none,
backward or forward), on the columns and settings chosen above. Column selection picks its columns on
a validation part, so scoring it on that same part would flatter it. This step is therefore nested:
the calibration part is cut in two in time order, columns are selected on the first half
([60 %, 67.5 %)), and every candidate (fitted on the train part) is scored on the second half
([67.5 %, 75 %)), which neither the fit nor the selection saw. The best second-half ROC AUC wins, but
only if it beats the plain model (no weights, no selection) by at least ``TIE``; otherwise the plain
model stays.

    .venv/bin/python examples/bank-marketing/select_settings.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from features.contract import LABEL  # noqa: E402
from features.tabular import DataParams, read_table, tabular_snapshots  # noqa: E402
from models.lgbm import LGBMParams, fit_lgbm  # noqa: E402
from models.nbayes import NaiveBayesParams, fit_naive_bayes, select_columns  # noqa: E402

DATA = ROOT / "../shared/data/bank-marketing/bank-additional-full.csv"
MACRO = ["emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"]
TRAIN_END, VALID_END = 0.60, 0.75  # the pipeline's train and calibration parts; the test starts at 75 %
TIE = 0.005  # validation ROC AUC the macro columns (or the drift options) must gain to be kept
HALF_VALID = 0.675  # the nested step: select columns on [60 %, 67.5 %), score on [67.5 %, 75 %)


def pre_test_snapshots() -> tuple[pd.DataFrame, int]:
    """The snapshots of the rows before the test part (the first 75 %), and the file's row count."""
    raw = read_table(DATA)
    n = len(raw)
    pre_test = raw.iloc[: int(np.floor(VALID_END * n))]  # the test rows are never read below
    params = DataParams(source="files", leads=str(DATA), mapping={"outcome": "y", "row_order_is_time": True},
                        missing_tokens=["", "unknown"], exclude=["duration"], audit={"enabled": False})
    snaps, _ = tabular_snapshots(pre_test, params)
    return snaps, n


def main() -> None:
    snaps, n = pre_test_snapshots()
    a = int(np.floor(TRAIN_END * n))
    train, valid = snaps.iloc[:a], snaps.iloc[a:]
    every = [c for c in snaps.columns if c not in ("lead_id", "cutoff", "label")]
    sets = {"kept": every, "dropped": [c for c in every if c not in MACRO]}
    rows = []
    for (macro, features), leaves, onehot in itertools.product(sets.items(), (2, 7), (4, 32)):
        lgbm = LGBMParams(num_leaves=leaves, max_bin=255, min_child_samples=200, lambda_l2=10.0, learning_rate=0.05,
                          n_estimators=1000, early_stopping_rounds=50, max_cat_to_onehot=onehot, num_threads=2)
        model = fit_lgbm(train, lgbm, features=features)
        auc = roc_auc_score(valid[LABEL], model.predict_proba(valid)[:, 1])
        rows.append({"family": "lightgbm", "macro": macro,
                     "settings": f"num_leaves={leaves} max_cat_to_onehot={onehot}", "valid_auc": round(float(auc), 4)})
        print(rows[-1], flush=True)
    nb_grid = itertools.product(sets.items(), (0, 5, 10), ("smoothed", "neutral"))
    for (macro, features), bins, unseen in nb_grid:
        model = fit_naive_bayes(train, features, NaiveBayesParams(numeric_bins=bins, unseen=unseen))
        auc = roc_auc_score(valid[LABEL], model.predict_proba(valid)[:, 1])
        rows.append({"family": "naive_bayes", "macro": macro,
                     "settings": f"numeric_bins={bins} unseen={unseen}", "valid_auc": round(float(auc), 4)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).sort_values("valid_auc", ascending=False, kind="stable")
    print(table.to_string(index=False))
    best = {m: table[table["macro"] == m]["valid_auc"].max() for m in sets}
    macro = "kept" if best["kept"] >= best["dropped"] + TIE else "dropped"
    print(f"macro columns {macro} (best validation ROC AUC kept {best['kept']}, dropped {best['dropped']})")
    for family in ("lightgbm", "naive_bayes"):
        chosen = table[(table["family"] == family) & (table["macro"] == macro)].iloc[0]
        print(f"chosen {family}: {chosen['settings']} (validation ROC AUC {chosen['valid_auc']})")
    nb = table[(table["family"] == "naive_bayes") & (table["macro"] == macro)].iloc[0]["settings"]
    base = dict(item.split("=") for item in nb.split())
    drift_options(snaps, a, int(np.floor(HALF_VALID * n)), sets[macro],
                  NaiveBayesParams(numeric_bins=int(base["numeric_bins"]), unseen=base["unseen"]))


def drift_options(
    snaps: pd.DataFrame, a: int, b: int, features: list[str], nb: NaiveBayesParams
) -> tuple[pd.DataFrame, dict]:
    """The nested step (module docstring): fit on rows [0, a), select columns on [a, b), score on [b, end).
    Returns every candidate's figure and the chosen options."""
    train, first, second = snaps.iloc[:a], snaps.iloc[a:b], snaps.iloc[b:]
    rows = []
    for select, half_life in itertools.product(("none", "backward", "forward"), (None, 1.0, 0.5, 0.25)):
        params = nb.model_copy(update={"select": select, "half_life": half_life})
        kept = features if select == "none" else list(select_columns(train, first, features, params).kept)
        model = fit_naive_bayes(train, kept, params)
        auc = roc_auc_score(second[LABEL], model.decision_function(second))
        rows.append({"select": select, "half_life": half_life, "columns": len(kept),
                     "second_half_auc": round(float(auc), 4)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    plain = table.iloc[0]
    best = table.sort_values("second_half_auc", ascending=False, kind="stable").iloc[0]
    chosen = best if best["second_half_auc"] >= plain["second_half_auc"] + TIE else plain
    print(table.to_string(index=False))
    print(f"chosen naive_bayes drift options: select={chosen['select']} half_life={chosen['half_life']} "
          f"(second-half ROC AUC {chosen['second_half_auc']} vs plain {plain['second_half_auc']})")
    half_life = None if pd.isna(chosen["half_life"]) else float(chosen["half_life"])
    return table, {"select": str(chosen["select"]), "half_life": half_life}


if __name__ == "__main__":
    main()
