"""Exact path-dependent TreeSHAP for a LightGBM model, fast enough for whole-base scoring.

Why hand-written: ``shap.TreeExplainer`` and LightGBM's ``pred_contrib`` compute exactly these
values, but with the EXTEND/UNWIND recursion (O(leaves x depth^2) per row and tree, heavy
constants), about 0.9k rows/s for a 300-tree model on two cores: ~20x too slow to give every lead
of the base its reason codes. Here the per-row work is mostly the split decisions and one addition
of a memoised vector per tree (see 4.).

The algorithm ("leaf agreement tables", in the spirit of Fast TreeSHAP v2, Yang 2021):

1. *Leaf decomposition.* With node covers (LightGBM's ``internal_count``/``leaf_count``) the
   path-dependent game of one tree is ``v(S) = sum_l v_l prod_{d in D_l} (a_ld if d in S else r_ld)``:
   ``D_l`` the distinct features on leaf ``l``'s path (its *slots*, numbered by first appearance
   from the root), ``a_ld`` in {0, 1} whether the row agrees with every split on feature ``d`` of
   that path, ``r_ld`` the product of the cover ratios of those splits. Shapley values are linear
   in the game, and for one product game

       phi_j = v_l (a_j - r_j) * integral_0^1 prod_{d in D_l, d != j} (r_d (1 - t) + a_d t) dt

   (the Shapley weight ``k!(m-k-1)!/m!`` is a Beta integral). The integrand is a polynomial of
   degree < m, so Gauss-Legendre quadrature with ceil(m/2) nodes is *exact*; every factor is in
   [0, 1], so it is also numerically benign. This is the same quantity TreeSHAP's EXTEND/UNWIND
   recursion computes, hence equal to ``pred_contrib`` up to rounding.
2. *Tables.* A leaf's contributions depend on the row only through its agreement bits
   ``a_l`` (an m-bit code). For every leaf with ``m <= table_slots`` the m contributions of all
   ``2^m`` codes are precomputed once per model (``m 2^m`` doubles per leaf); leaves with more
   slots evaluate the quadrature per row (O(m^2), rare: they are the deepest leaves).
3. *Decisions by code.* Per batch every used feature is mapped to a small integer code (the
   interval between the model's sorted thresholds on it, with the zero band and NaN as their own
   codes; for categoricals the index among the categories any split names), so every split's
   decision is one lookup in a per-split table built from LightGBM's ``NumericalDecision`` /
   ``CategoricalDecision`` (missing types None, Zero, NaN with ``default_left``; NaN, negative and
   unknown categories go right).
4. *Patterns, memoised.* Per tree, a row's whole contribution vector is a function of its
   *pattern*, the bits of all the tree's split decisions (<= 64 splits: one uint64). Rows of lead
   data share patterns (many zeros, small counts), so per chunk of rows (one per thread) each
   distinct pattern's vector is computed once (hash table on the pattern) and added to every row
   that has it. A new pattern's vector is the sum over the tree's *parts* (runs of PART_LEAVES
   consecutive leaves): a part depends only on the bits of the splits above its leaves, which
   patterns share far more often, so part vectors are memoised too and only a new part state
   walks its leaves (agreement codes in preorder, branch-free: a slot's bit is set at the
   feature's first split on the path and cleared by any later disagreeing split on it; then each
   leaf's table row). Trees go GROUP_TREES at a time: the group's patterns for all rows, then the
   group's vectors added row by row, so a row's codes and outputs stay in cache. On the benchmark's
   lead-shaped data a 100k-row chunk has ~0.33 distinct patterns per row and tree, and ~0.04 part
   states, against 31 leaf-table reads per row and tree without memoising. Each batch's rows are worked in
   the order of their codes on the most-split features (results written back in input order), so
   neighbouring rows share decisions and the pattern vectors they read stay in cache (~12 % less
   CPU on a 31-leaf model). Trees with more than 64
   splits are computed row by row. The result does not depend on chunking or threads: a pattern's
   vector is the same sum whichever row brings it first, and each row adds the trees in order.

Measured and not kept: skipping the whole-pattern step and memoising only runs of 16, 8, 4 or 2
leaves per row (each row probing each run's state) was no faster on the benchmark's 31-leaf model
(one thread, 131k rows: 17.6, 15.1, 16.3 and 26.6 CPU-s against 15.0-15.5): the per-run hash probes
cost what the pattern vectors save. Per row and tree the time splits about evenly between the
decisions, the new patterns' vectors and the additions of the vectors into the rows, which read
memory at random (a chunk's distinct patterns do not fit in cache). Nor were these: each row adding
its pattern's part vectors (sparse, ~8.6 columns each, cache-resident) instead of one dense pattern
vector, the part ids found once per distinct pattern: 0.75x (one thread, 131k rows: 21.4 against
16.1 CPU-s), since ~69 scattered additions per row and tree cost more than 23 random reads; the
same for rare patterns only (dense vectors for patterns of >= 2, 4 or 16 rows): 0.88-0.91x;
compact hash tables (key and stamped id in one array, grown from small), sparse part vectors and
each pattern vector summed in one pass: bit-identical, 1.04-1.22x on a loaded machine but 0.89x on
a quiet one (two threads, 276k rows, median of 4: 22.4 against 20.0 s). On the 1M-lead base's
snapshots (300 trees, 30 splits and 23.4 used features per tree, 0.30 distinct patterns per row and
tree in a 131k-row chunk): a pattern as the OR of one precomputed mask per used feature instead of
one bit per split, bit-identical but no faster (one thread, 131k rows, median of 4: 23.9 against
23.9 CPU-s); batches of 32k, 65k or 131k rows instead of 262k: 1.23x, 1.11x and 1.01x slower, and
524k: the same; groups of 2, 8 or 16 trees instead of 4 (two threads, 262k rows, median of 2): 32.1,
26.1 and 28.0 against 26.8 s, so each group's pass over the chunk's output rows (163 doubles a row,
171 MB per 131k-row chunk) costs about a fifth of the time at 4, while larger groups lose as much to
pattern vectors that no longer stay in cache. Keeping every tree's pattern vectors of a chunk and
adding all 300 trees per row in a single pass (no repeated passes over the output): bit-identical,
1.49x slower (42.4 against 28.5 s, median of 3), as each row then reads vectors at random from ~2.4
GB. Ordering the output columns by how many trees use them would cut the cache lines a group's pass
touches only from 18.8 to 15.1 of 21. Two ideas the data rule out: scoring each distinct row once
(99.8 % of 262k rows have distinct codes) and adding only what changes from the previous row (in
sorted order, a row shares a tree's pattern with the row before it in 1.7 % of cases).

On a later host (1 MB L2 per core, 262k rows of the same base, two threads, bit-identical
variants): the additions done column by column (output and pattern vectors column-major, a gather
per tree column): 1.27x slower (20.3 against 16.0 s, median of 3); part states in a small table of
their own (at most 2^bits above the part) with a shortcut for a repeated state, and a software
prefetch of the pattern vectors 6 or 12 rows ahead: all within the noise (one thread, 131k rows,
median of 6: 13.1, 13.7, 12.9 s). Dropping steps there put the kernel's time at roughly a quarter
each on the decisions, the new patterns' vectors and the additions, the rest on hashing and set-up.

Only single-output models (binary, regression) are supported; linear trees are not.
Compilation is lazy (first call) and cached on disk (``cache=True``, numba's ``__pycache__``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numba
import numpy as np

K_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float, compared as double)
BATCH_ROWS = 262_144  # rows per batch, split into one chunk per thread: larger chunks share more patterns
PART_LEAVES = 4  # leaves per memoised part of a tree (see ``_chunk``)
GROUP_TREES = 4  # trees whose patterns are found together before their vectors are added to the rows
SORT_FEATURES = 8  # rows of a batch are ordered by their codes on this many most-split features
TABLE_SLOTS = 12  # leaves with at most this many distinct path features get a precomputed table
TABLE_BUDGET_BYTES = 512 * 2**20  # lower the table limit per model until the tables fit this



# ----------------------------------------------------------------------------- parsing


@dataclass
class Model:
    """The whole model as flat arrays (all trees' nodes in preorder, concatenated).

    Node arrays are indexed by global node id; leaves are nodes with ``leaf_id >= 0``.
    """

    tree_start: np.ndarray  # (T+1,) node range of each tree (trees with a split only)
    parent: np.ndarray  # (N,) int64, -1 at a root
    is_left: np.ndarray  # (N,) uint64: all ones when the node is its parent's left child, else 0
    feature: np.ndarray  # (N,) int64 split feature (splits)
    left: np.ndarray  # (N,) int64 child ids (splits)
    right: np.ndarray  # (N,) int64
    slot_bit: np.ndarray  # (N,) uint64: 1 << slot of the split's feature on its path (0 if slot >= 64)
    new_slot: np.ndarray  # (N,) uint64: all ones when the split is the first on its feature on its path
    leaf_id: np.ndarray  # (N,) int64 leaf number of a leaf node, -1 for splits
    leaf_value: np.ndarray  # (L,)
    leaf_m: np.ndarray  # (L,) slots
    slot_start: np.ndarray  # (L+1,) range of the leaf's slots in slot_feature / slot_ratio
    slot_feature: np.ndarray  # (S,) int64 feature of each slot
    slot_ratio: np.ndarray  # (S,) float64 r_ld
    table_start: np.ndarray  # (L,) int64 offset of the leaf's table in tables, -1: no table
    table_width: np.ndarray  # (L,) int64 row width of the leaf's table (the tree's widest), 0: none
    pad_local: np.ndarray  # (L, Wmax) int64 tree-local column of each table column (padding: tree width)
    part_start: np.ndarray  # (T+1,) range of each tree's parts (runs of at most PART_LEAVES leaves)
    part_mask: np.ndarray  # (Q,) uint64 pattern bits of the splits above the part's leaves
    part_leaf: np.ndarray  # (Q,) int64 node id of each part's first leaf
    part_end: np.ndarray  # (Q,) int64 node id after each part's last leaf
    tree_feat_start: np.ndarray  # (T+1,) range of each tree's used features in tree_feat
    tree_feat: np.ndarray  # (F,) int64 features each tree splits on; the index here is the local column
    slot_local: np.ndarray  # (S,) int64 tree-local column of each slot's feature
    node_col: np.ndarray  # (N,) int64 column of the split's feature in the code matrix
    lut_start: np.ndarray  # (N,) int64 start of the split's decision per code in node_lut
    node_lut: np.ndarray  # (C,) uint64 go-left (all ones) or right (0) per code of the feature
    node_bit: np.ndarray  # (C,) uint8 the same as 1 / 0 (a pattern's bit; 8x less cache than node_lut)
    split_end: np.ndarray  # (T,) end of each tree's split nodes (splits first, then leaves)
    tables: np.ndarray  # (sum width 2^m,) float64, row ``code`` of a leaf at table_start + code * width
    path_start: np.ndarray  # (L+1,) range of the leaf's path in path_node / path_left / path_slot
    path_node: np.ndarray  # (P,) int64 split node ids from the root
    path_left: np.ndarray  # (P,) uint8 the path goes left there
    path_slot: np.ndarray  # (P,) int64 the slot of that split's feature
    gl_nodes: np.ndarray  # (Qmax+1, Qmax) Gauss-Legendre nodes on [0, 1], row q holds q nodes
    gl_weights: np.ndarray  # (Qmax+1, Qmax)
    max_nodes: int
    max_m: int
    max_width: int  # most features any tree splits on


def _count(node: dict[str, Any]) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _categories(threshold: Any) -> list[int]:
    return [int(c) for c in str(threshold).split("||") if c != ""]


def _preorder(root: dict[str, Any]) -> list[tuple[dict[str, Any], int, bool]]:
    """(node, parent index, is left child) in depth-first preorder, left subtree first."""
    out: list[tuple[dict[str, Any], int, bool]] = []
    stack: list[tuple[dict[str, Any], int, bool]] = [(root, -1, False)]
    while stack:
        node, parent, left = stack.pop()
        out.append((node, parent, left))
        if "split_index" in node:
            me = len(out) - 1
            stack.append((node["right_child"], me, False))
            stack.append((node["left_child"], me, True))
    return out


def _gauss_legendre(q_max: int) -> tuple[np.ndarray, np.ndarray]:
    nodes = np.zeros((q_max + 1, max(q_max, 1)))
    weights = np.zeros_like(nodes)
    for q in range(1, q_max + 1):
        x, w = np.polynomial.legendre.leggauss(q)
        nodes[q, :q] = (x + 1) / 2
        weights[q, :q] = w / 2
    return nodes, weights


@dataclass(frozen=True)
class FeatureCoder:
    """Maps one column to small integer codes such that every split on it is a function of the code
    (the coding ``_encode`` computes).

    Numerical: the code is the interval between the sorted distinct thresholds the model uses on
    the feature (plus the zero band [-kZeroThreshold, kZeroThreshold] as its own intervals), and
    ``len(cuts) + 1`` for NaN. Categorical: the index among the categories named by any split, or
    ``len(cats)`` for anything else (other, negative, NaN).
    """

    feature: int
    categorical: bool
    cuts: np.ndarray  # numerical: sorted interval right ends; categorical: sorted category ids

    def n_codes(self) -> int:
        return len(self.cuts) + (1 if self.categorical else 2)

    def code_values(self) -> np.ndarray:
        """One value per numerical code, to tabulate split decisions: each interval's right end
        (``x <= cut`` belongs to it), a value above the last cut, NaN."""
        return np.concatenate([self.cuts, [np.nextafter(self.cuts[-1], np.inf), np.nan]])


def numerical_decision(x: np.ndarray, threshold: float, missing: str, default_left: bool) -> np.ndarray:
    """LightGBM's ``NumericalDecision``: True where the row goes left."""
    nan = np.isnan(x)
    if missing == "NaN":
        return np.where(nan, default_left, x <= threshold)
    x0 = np.where(nan, 0.0, x)
    if missing == "Zero":
        return np.where((x0 >= -K_ZERO) & (x0 <= K_ZERO), default_left, x0 <= threshold)
    return x0 <= threshold


def build_coders(trees: list[dict[str, Any]]) -> dict[int, FeatureCoder]:
    """One coder per feature used by any split, from all thresholds/categories of the model."""
    cuts: dict[int, set[float]] = {}
    cat: dict[int, bool] = {}
    for tree in trees:
        for s, _, _ in _preorder(tree["tree_structure"]):
            if "split_index" not in s:
                continue
            f = int(s["split_feature"])
            is_cat = s["decision_type"] == "=="
            cat.setdefault(f, is_cat)
            if cat[f] != is_cat:
                raise ValueError(f"feature {f} is split both as categorical and numerical")
            values = _categories(s["threshold"]) if is_cat else [float(s["threshold"])]
            cuts.setdefault(f, set()).update(values)
    coders = {}
    for f, values in cuts.items():
        if not cat[f]:
            values = values | {np.nextafter(-K_ZERO, -np.inf), K_ZERO}  # zero band: own intervals
        coders[f] = FeatureCoder(f, cat[f], np.array(sorted(values), dtype=np.float64))
    return coders


def _node_lut(split: dict[str, Any], coder: FeatureCoder) -> np.ndarray:
    """Go-left decision of one split for every code of its feature's coder."""
    if coder.categorical:
        return np.append(np.isin(coder.cuts, _categories(split["threshold"])), False)
    return numerical_decision(coder.code_values(), float(split["threshold"]), split["missing_type"],
                              bool(split["default_left"]))


def parse_model(trees: list[dict[str, Any]], n_features: int, coders: dict[int, FeatureCoder],
                table_slots: int = TABLE_SLOTS,
                table_budget: int = TABLE_BUDGET_BYTES,
                part_leaves: int = PART_LEAVES) -> tuple[Model, float]:
    """Flat arrays of every tree with a split, and the sum of the single-leaf trees' values."""
    constant = 0.0
    cols: dict[str, list[Any]] = {k: [] for k in (
        "parent", "is_left", "feature", "left", "right", "slot", "new_slot", "leaf_id")}
    column = {f: i for i, f in enumerate(sorted(coders))}
    node_col: list[int] = []
    lut_start: list[int] = []
    luts: list[np.ndarray] = []
    n_lut = 0
    tree_start = [0]
    split_end: list[int] = []
    leaf_tree: list[int] = []
    leaf_value, leaf_m, slot_start, slot_feature, slot_ratio = [], [], [0], [], []
    path_start, path_node, path_left, path_slot = [0], [], [], []
    tree_feat_start, tree_feat, slot_local = [0], [], []
    part_start, part_mask, part_leaf, part_end = [0], [], [], []
    max_nodes = 1
    for tree in trees:
        root = tree["tree_structure"]
        if "split_index" not in root:
            constant += float(root["leaf_value"])
            continue
        nodes = _preorder(root)
        base = tree_start[-1]
        max_nodes = max(max_nodes, len(nodes))
        # Per node: the distinct features (slot order) and (split, went left) path above it.
        slots_above: list[dict[int, int]] = []
        path_above: list[list[tuple[int, bool]]] = []
        children: dict[int, list[int]] = {}
        for i, (node, parent, left) in enumerate(nodes):
            if parent >= 0:
                children.setdefault(parent, []).append(i)
                pf = int(nodes[parent][0]["split_feature"])
                order = dict(slots_above[parent])
                order.setdefault(pf, len(order))
                slots_above.append(order)
                path_above.append([*path_above[parent], (parent, left)])
            else:
                slots_above.append({})
                path_above.append([])
        # Emit splits first (preorder, so parents precede children), then the leaves.
        emit = [i for i, nd in enumerate(nodes) if "split_index" in nd[0]]
        split_end.append(base + len(emit))
        emit += [i for i, nd in enumerate(nodes) if "split_index" not in nd[0]]
        new_of = {old: base + new for new, old in enumerate(emit)}
        local: dict[int, int] = {}
        for i in emit:
            if "split_index" in nodes[i][0]:
                local.setdefault(int(nodes[i][0]["split_feature"]), len(local))
        tree_feat.extend(local)
        tree_feat_start.append(len(tree_feat))
        for i in emit:
            node, parent, left = nodes[i]
            cols["parent"].append(new_of[parent] if parent >= 0 else -1)
            cols["is_left"].append(left)
            if "split_index" in node:
                f = int(node["split_feature"])
                cols["feature"].append(f)
                node_col.append(column[f])
                lut_start.append(n_lut)
                luts.append(_node_lut(node, coders[f]))
                n_lut += len(luts[-1])
                above = slots_above[i]
                cols["slot"].append(above.get(f, len(above)))
                cols["new_slot"].append(f not in above)
                cols["leaf_id"].append(-1)
            else:
                for key, fill in (("feature", 0), ("slot", 0), ("new_slot", 0)):
                    cols[key].append(fill)
                cols["leaf_id"].append(len(leaf_value))
                node_col.append(0)
                lut_start.append(0)
                order = slots_above[i]
                ratio = np.ones(len(order))
                for k, went_left in path_above[i]:
                    split = nodes[k][0]
                    child = split["left_child"] if went_left else split["right_child"]
                    ratio[order[int(split["split_feature"])]] *= _count(child) / _count(split)
                    path_node.append(new_of[k])
                    path_left.append(went_left)
                    path_slot.append(order[int(split["split_feature"])])
                path_start.append(len(path_node))
                leaf_value.append(float(node["leaf_value"]))
                leaf_tree.append(len(tree_start) - 1)
                leaf_m.append(len(order))
                slot_feature.extend(order)  # dicts keep insertion (slot) order
                slot_local.extend(local[f] for f in order)
                slot_ratio.extend(ratio)
                slot_start.append(len(slot_feature))
        for i in emit:
            kids = children.get(i, [])
            cols["left"].append(new_of[kids[0]] if kids else -1)
            cols["right"].append(new_of[kids[1]] if kids else -1)
        # Parts: runs of consecutive leaves, each with the pattern bits of the splits above them.
        leaves = [i for i in emit if "split_index" not in nodes[i][0]]
        for a in range(0, len(leaves), part_leaves):
            bits_above = 0
            for i in leaves[a:a + part_leaves]:
                for k, _ in path_above[i]:
                    if new_of[k] - base < 64:
                        bits_above |= 1 << (new_of[k] - base)
            part_mask.append(bits_above)
            part_leaf.append(new_of[leaves[a]])
            part_end.append(new_of[leaves[min(a + part_leaves, len(leaves)) - 1]] + 1)
        part_start.append(len(part_mask))
        tree_start.append(base + len(nodes))

    m = np.array(leaf_m, dtype=np.int64)
    limit = table_slots
    while limit > 0 and float(np.sum(np.where(m <= limit, m * 2.0**m, 0.0))) * 8 > table_budget:
        limit -= 1
    has_table = m <= limit
    # A table row has the leaf's own width (its slots); pad_local still has room for the widest leaf.
    # column, later overwritten by the base value), so every leaf of a tree runs the same loop.
    leaf_tree_a = np.array(leaf_tree, dtype=np.int64)
    width_of_tree = np.zeros(len(tree_start), dtype=np.int64)
    np.maximum.at(width_of_tree, leaf_tree_a, np.where(has_table, m, 0))
    width = np.where(has_table, m, 0)
    sizes = np.where(has_table, width * 2**np.where(has_table, m, 0), 0)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    tree_width = np.diff(np.array(tree_feat_start, dtype=np.int64))
    pad_local = np.zeros((len(m), max(1, int(width.max()) if len(m) else 1)), dtype=np.int64)
    for leaf in np.flatnonzero(has_table):
        pad_local[leaf, :] = tree_width[leaf_tree[leaf]]  # padding adds 0.0 to the spare column
        pad_local[leaf, :m[leaf]] = slot_local[slot_start[leaf]:slot_start[leaf + 1]]
    q_max = max(1, (int(m.max()) + 1) // 2) if len(m) else 1
    gl_nodes, gl_weights = _gauss_legendre(q_max)
    arrays = {k: np.array(cols[k], dtype=np.int64) for k in ("parent", "feature", "left", "right", "leaf_id")}
    ones = ~np.uint64(0)
    arrays["is_left"] = np.where(np.array(cols["is_left"], dtype=bool), ones, np.uint64(0))
    arrays["new_slot"] = np.where(np.array(cols["new_slot"], dtype=bool), ones, np.uint64(0))
    slots = np.array(cols["slot"], dtype=np.uint64)
    arrays["slot_bit"] = np.where(slots < 64, np.uint64(1) << np.minimum(slots, np.uint64(63)), np.uint64(0))
    go_left = np.concatenate(luts) if luts else np.zeros(0, dtype=bool)
    model = Model(
        tree_start=np.array(tree_start, dtype=np.int64), **arrays,
        node_col=np.array(node_col, dtype=np.int64), lut_start=np.array(lut_start, dtype=np.int64),
        node_lut=np.where(go_left, ~np.uint64(0), np.uint64(0)), node_bit=go_left.astype(np.uint8),
        leaf_value=np.array(leaf_value, dtype=np.float64), leaf_m=m,
        slot_start=np.array(slot_start, dtype=np.int64), slot_feature=np.array(slot_feature, dtype=np.int64),
        slot_ratio=np.array(slot_ratio, dtype=np.float64),
        table_start=np.where(has_table, offsets[:-1], -1).astype(np.int64),
        table_width=width.astype(np.int64), pad_local=pad_local,
        part_start=np.array(part_start, dtype=np.int64), part_leaf=np.array(part_leaf, dtype=np.int64),
        part_end=np.array(part_end, dtype=np.int64),
        part_mask=np.array(part_mask, dtype=np.uint64),
        tree_feat_start=np.array(tree_feat_start, dtype=np.int64),
        tree_feat=np.array(tree_feat, dtype=np.int64),
        slot_local=np.array(slot_local, dtype=np.int64),
        split_end=np.array(split_end, dtype=np.int64),
        tables=np.empty(int(offsets[-1]), dtype=np.float64),
        path_start=np.array(path_start, dtype=np.int64), path_node=np.array(path_node, dtype=np.int64),
        path_left=np.array(path_left, dtype=np.uint8), path_slot=np.array(path_slot, dtype=np.int64),
        gl_nodes=gl_nodes, gl_weights=gl_weights, max_nodes=max_nodes,
        max_m=int(m.max()) if len(m) else 1, max_width=int(tree_width.max()) if len(tree_width) else 1,
    )
    return model, constant


# ----------------------------------------------------------------------------- compiled kernels


@numba.njit(cache=True, nogil=True)
def _product_game(agree: np.ndarray, ratio: np.ndarray, m: int, t: np.ndarray, w: np.ndarray, q: int,
                  scale: float, out: np.ndarray, before: np.ndarray) -> None:
    """``out[:m]`` = scale * Shapley values of ``prod_d (a_d if d in S else r_d)`` (quadrature, q nodes)."""
    for j in range(m):
        out[j] = 0.0
    for k in range(q):
        tk = t[k]
        acc = 1.0
        for j in range(m):  # before[j] = prod_{d < j} factor_d
            before[j] = acc
            acc *= ratio[j] * (1.0 - tk) + agree[j] * tk
        acc = w[k]
        for j in range(m - 1, -1, -1):  # times prod_{d > j} factor_d
            out[j] += before[j] * acc
            acc *= ratio[j] * (1.0 - tk) + agree[j] * tk
    for j in range(m):
        out[j] *= scale * (agree[j] - ratio[j])


@numba.njit(cache=True, nogil=True)
def _fill_tables(leaf_m, leaf_value, slot_start, slot_ratio, table_start, table_width, tables, gl_nodes,
                 gl_weights):
    """Every code's contributions for every leaf that has a table."""
    max_m = 1
    for leaf in range(len(leaf_m)):
        max_m = max(max_m, leaf_m[leaf])
    agree = np.empty(max_m)
    before = np.empty(max_m)
    phi = np.empty(max_m)
    for leaf in range(len(leaf_m)):
        start = table_start[leaf]
        if start < 0:
            continue
        m = leaf_m[leaf]
        q = max(1, (m + 1) // 2)
        ratio = slot_ratio[slot_start[leaf]:slot_start[leaf + 1]]
        for code in range(1 << m):
            for j in range(m):
                agree[j] = (code >> j) & 1
            _product_game(agree, ratio, m, gl_nodes[q], gl_weights[q], q, leaf_value[leaf], phi, before)
            width = table_width[leaf]
            for j in range(width):
                tables[start + code * width + j] = phi[j] if j < m else 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _decisions(r, n0, ns, codes, node_col, lut_start, node_lut, go):
    """go[n - n0] = all ones where row r goes left at split n of the tree, else 0."""
    for n in range(n0, ns):
        go[n - n0] = node_lut[lut_start[n] + codes[r, node_col[n]]]


@numba.njit(cache=True, nogil=True)
def _tree_vector(n0, ns, leaf_lo, leaf_hi, go, vec, parent, is_left, slot_bit, new_slot, leaf_id, leaf_value,
                 leaf_m, slot_start, slot_local, slot_ratio, table_start, table_width, pad_local, tables,
                 path_start, path_node, path_left, path_slot, gl_nodes, gl_weights, code, agree, before, phi):
    """Add the contributions of the tree's leaves [leaf_lo, leaf_hi) for the decisions ``go`` into ``vec``
    (the tree's local columns)."""
    # Agreement codes in preorder, branch-free: a first split on a feature sets the slot's bit when the
    # row agrees; a later one clears it when the row disagrees.
    code[0] = 0
    for n in range(n0 + 1, ns):
        p = parent[n]
        agree_mask = ~(go[p - n0] ^ is_left[n])  # all ones when the row went this way
        bit = slot_bit[p]
        fresh = new_slot[p]  # all ones for a first split on the feature
        code[n - n0] = (code[p - n0] & ~(bit & ~agree_mask & ~fresh)) | (bit & agree_mask & fresh)
    for n in range(leaf_lo, leaf_hi):
        p = parent[n]
        agree_mask = ~(go[p - n0] ^ is_left[n])
        bit = slot_bit[p]
        fresh = new_slot[p]
        leaf_code = (code[p - n0] & ~(bit & ~agree_mask & ~fresh)) | (bit & agree_mask & fresh)
        leaf = leaf_id[n]
        start = table_start[leaf]
        if start >= 0:
            width = table_width[leaf]
            base = start + np.int64(leaf_code) * width
            for j in range(width):
                vec[pad_local[leaf, j]] += tables[base + j]
            continue
        # No table (many slots): agreement from the path, then the quadrature.
        m = leaf_m[leaf]
        s0 = slot_start[leaf]
        for j in range(m):
            agree[j] = 1.0
        for k in range(path_start[leaf], path_start[leaf + 1]):
            if (go[path_node[k] - n0] & np.uint64(1)) != path_left[k]:
                agree[path_slot[k]] = 0.0
        q = (m + 1) // 2
        _product_game(agree, slot_ratio[s0:s0 + m], m, gl_nodes[q], gl_weights[q], q, leaf_value[leaf], phi,
                      before)
        for j in range(m):
            vec[slot_local[s0 + j]] += phi[j]


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(ht_key, ht_gen, stamp, key, shift, mask):
    """Open-addressing slot of ``key`` in the table generation ``stamp``: where it is, or the free slot
    where it goes (``ht_gen[slot] != stamp``). Stamps make clearing the table free."""
    h = (key * np.uint64(0x9E3779B97F4A7C15)) >> shift  # Fibonacci hashing
    while True:
        if ht_gen[h] != stamp or ht_key[h] == key:
            return h
        h = (h + np.uint64(1)) & mask


@numba.njit(cache=True, nogil=True)
def _part_vector(key, lo_leaf, hi_leaf, n0, ns, vec, go, parent, is_left, slot_bit, new_slot, leaf_id,
                 leaf_value, leaf_m, slot_start, slot_local, slot_ratio, table_start, table_width, pad_local,
                 tables, path_start, path_node, path_left, path_slot, gl_nodes, gl_weights, code, agree,
                 before, phi, w):
    """vec[:w + 1] = contributions of the leaves [lo_leaf, hi_leaf) for the decision bits ``key``."""
    for i in range(ns - n0):
        go[i] = ~np.uint64(0) if (key >> np.uint64(i)) & np.uint64(1) else np.uint64(0)
    vec[:w + 1] = 0.0
    _tree_vector(n0, ns, lo_leaf, hi_leaf, go, vec, parent, is_left, slot_bit, new_slot, leaf_id, leaf_value,
                 leaf_m, slot_start, slot_local, slot_ratio, table_start, table_width, pad_local, tables,
                 path_start, path_node, path_left, path_slot, gl_nodes, gl_weights, code, agree, before, phi)


@numba.njit(cache=True, nogil=True)
def _chunk(lo, hi, out, codes, group, tree_start, split_end, part_start, part_mask, part_leaf,
           part_end, tree_feat_start, tree_feat, parent, is_left, node_col, lut_start, node_lut, node_bit,
           slot_bit, new_slot, leaf_id, leaf_value, leaf_m, slot_start, slot_local, slot_ratio, table_start,
           table_width, pad_local, tables, path_start, path_node, path_left, path_slot, gl_nodes, gl_weights,
           max_nodes, max_m, max_width):
    """Contributions of rows [lo, hi) of ``codes`` into the same rows of ``out`` (zeroed by the caller).

    Per tree, a row's whole contribution vector is a function of its split decisions (its *pattern*,
    one bit per split, preorder), and rows share few patterns: each distinct pattern's vector is
    computed once per chunk (hash table on the pattern) and added to every row that has it. A new
    pattern's vector is the sum over the tree's *parts* (runs of consecutive leaves, ``part_leaf`` to
    ``part_end``):
    a part's contributions depend only on the bits of the splits above its leaves (``part_mask``),
    and patterns share those far more often, so each part's vector is memoised too and only a new
    part state reads its leaves' tables. Trees are taken ``group`` at a time: the group's patterns
    for all rows (a row's codes read once), then the group's vectors added row by row (a row's
    outputs stay in cache). Trees with more than 64 splits are computed row by row.
    """
    n = hi - lo
    bits = 1
    while (1 << bits) < 2 * n:
        bits += 1
    size = 1 << bits
    mask = np.uint64(size - 1)
    shift = np.uint64(64 - bits)
    one = np.uint64(1)
    ht_key = np.empty(size, dtype=np.uint64)
    ht_id = np.empty(size, dtype=np.int64)
    ht_gen = np.zeros(size, dtype=np.int64)
    stamp = 0
    keys = np.empty((group, n), dtype=np.uint64)
    pid = np.empty((group, n), dtype=np.int64)
    rep = np.empty(n, dtype=np.uint64)
    width = max_width + 1
    part_store = np.empty((n, width))
    store = np.empty(n * width)  # the group's pattern vectors, w values each (flat, grown as needed)
    store_start = np.zeros(group + 1, dtype=np.int64)
    go = np.zeros(max_nodes, dtype=np.uint64)
    code = np.zeros(max_nodes, dtype=np.uint64)
    agree = np.empty(max_m)
    before = np.empty(max_m)
    phi = np.empty(max_m)
    n_trees = len(tree_start) - 1
    for g0 in range(0, n_trees, group):
        g1 = min(n_trees, g0 + group)
        # 1. Pattern keys of the group's trees, row by row.
        for r in range(lo, hi):
            for t in range(g0, g1):
                key = np.uint64(0)
                n0 = tree_start[t]
                for k in range(n0, min(split_end[t], n0 + 64)):
                    key |= np.uint64(node_bit[lut_start[k] + codes[r, node_col[k]]]) << np.uint64(k - n0)
                keys[t - g0, r - lo] = key
        # 2. Per tree: distinct patterns and their vectors.
        for t in range(g0, g1):
            n0 = tree_start[t]
            ns = split_end[t]
            n1 = tree_start[t + 1]
            w = tree_feat_start[t + 1] - tree_feat_start[t]
            base = store_start[t - g0]
            wide = ns - n0 > 64  # no 64-bit pattern: every row on its own
            if wide:
                n_patterns = n
            else:
                stamp += 1
                n_patterns = 0
                for i in range(n):
                    key = keys[t - g0, i]
                    h = _slot(ht_key, ht_gen, stamp, key, shift, mask)
                    if ht_gen[h] != stamp:
                        ht_gen[h] = stamp
                        ht_key[h] = key
                        ht_id[h] = n_patterns
                        rep[n_patterns] = key
                        n_patterns += 1
                    pid[t - g0, i] = ht_id[h]
            need = base + n_patterns * (w + 1)  # + 1: a tree's spare column (table padding)
            if need > store.shape[0]:
                grown = np.empty(max(2 * store.shape[0], need))
                grown[:base] = store[:base]
                store = grown
            store_start[t - g0 + 1] = need
            if wide:
                for i in range(n):
                    pid[t - g0, i] = i
                    vec = store[base + i * (w + 1):base + (i + 1) * (w + 1)]
                    vec[:] = 0.0
                    _decisions(lo + i, n0, ns, codes, node_col, lut_start, node_lut, go)
                    _tree_vector(n0, ns, ns, n1, go, vec, parent, is_left, slot_bit, new_slot, leaf_id,
                                 leaf_value, leaf_m, slot_start, slot_local, slot_ratio, table_start,
                                 table_width, pad_local, tables, path_start, path_node, path_left, path_slot,
                                 gl_nodes, gl_weights, code, agree, before, phi)
                continue
            for p in range(n_patterns):
                store[base + p * (w + 1):base + p * (w + 1) + w] = 0.0
            for q in range(part_start[t], part_start[t + 1]):
                stamp += 1
                pm = part_mask[q]
                n_states = 0
                for p in range(n_patterns):
                    kp = rep[p] & pm
                    h = _slot(ht_key, ht_gen, stamp, kp, shift, mask)
                    if ht_gen[h] != stamp:
                        ht_gen[h] = stamp
                        ht_key[h] = kp
                        ht_id[h] = n_states
                        _part_vector(kp, part_leaf[q], part_end[q], n0, ns, part_store[n_states], go, parent,
                                     is_left, slot_bit, new_slot, leaf_id, leaf_value, leaf_m, slot_start,
                                     slot_local, slot_ratio, table_start, table_width, pad_local, tables,
                                     path_start, path_node, path_left, path_slot, gl_nodes, gl_weights, code,
                                     agree, before, phi, w)
                        n_states += 1
                    part = part_store[ht_id[h]]
                    at = base + p * (w + 1)
                    for j in range(w):
                        store[at + j] += part[j]
        # 3. Add the group's vectors into each row.
        for i in range(n):
            r = lo + i
            for t in range(g0, g1):
                f0 = tree_feat_start[t]
                w = tree_feat_start[t + 1] - f0
                at = store_start[t - g0] + pid[t - g0, i] * (w + 1)
                for j in range(w):
                    out[r, tree_feat[f0 + j]] += store[at + j]


@numba.njit(cache=True, nogil=True, parallel=True)
def _contributions(codes, out, n_chunks, group, tree_start, split_end, part_start, part_mask,
                   part_leaf, part_end, tree_feat_start, tree_feat, parent, is_left, node_col, lut_start,
                   node_lut, node_bit, slot_bit, new_slot, leaf_id, leaf_value, leaf_m, slot_start,
                   slot_local, slot_ratio, table_start, table_width, pad_local, tables, path_start, path_node,
                   path_left, path_slot, gl_nodes, gl_weights, max_nodes, max_m, max_width):
    """Row i of ``codes`` into row i of ``out``, in ``n_chunks`` parallel chunks."""
    n = codes.shape[0]
    step = (n + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        lo = c * step
        hi = min(n, lo + step)
        if lo < hi:
            _chunk(lo, hi, out, codes, group, tree_start, split_end, part_start, part_mask, part_leaf,
                   part_end, tree_feat_start, tree_feat, parent, is_left, node_col, lut_start, node_lut,
                   node_bit, slot_bit, new_slot, leaf_id, leaf_value, leaf_m, slot_start, slot_local,
                   slot_ratio, table_start, table_width, pad_local, tables, path_start, path_node, path_left,
                   path_slot, gl_nodes, gl_weights, max_nodes, max_m, max_width)


@numba.njit(cache=True, nogil=True, parallel=True)
def _encode(X, feature, cut_start, cuts, categorical, codes):
    """codes[r, i] = the code of X[r, feature[i]] under coder i (``FeatureCoder``, row-parallel):
    the first cut at or above the value (``searchsorted(..., side="left")``), NaN ``len(cuts) + 1``;
    categoricals the index of the truncated value among the cuts, or ``len(cuts)`` when absent,
    negative or NaN."""
    for r in numba.prange(X.shape[0]):
        for i in range(len(feature)):
            x = np.float64(X[r, feature[i]])
            lo = cut_start[i]
            m = cut_start[i + 1] - lo
            if categorical[i]:
                if np.isnan(x):
                    codes[r, i] = m
                    continue
                x = np.trunc(x)
            elif np.isnan(x):
                codes[r, i] = m + 1
                continue
            a = lo  # lower bound: the first cut >= x
            size = m
            while size > 0:
                half = size >> 1
                if cuts[a + half] < x:
                    a += half + 1
                    size -= half + 1
                else:
                    size = half
            pos = a - lo
            if categorical[i] and not (pos < m and cuts[a] == x and x >= 0):
                pos = m
            codes[r, i] = pos


@numba.njit(cache=True, nogil=True, parallel=True)
def _put_rows(part, order, start, out):
    """out[start + order[i]] = part[i]: a batch's rows, worked in sorted order, back to input order
    (row-parallel; numpy's fancy assignment runs on one thread)."""
    for i in numba.prange(part.shape[0]):
        out[start + order[i], :] = part[i, :]


@numba.njit(cache=True, nogil=True, parallel=True)
def _raw_score(codes, out, tree_start, left, right, node_col, lut_start, node_lut, leaf_id, leaf_value):
    """out[r] += value of the leaf row r reaches, summed over trees."""
    for r in numba.prange(codes.shape[0]):
        total = 0.0
        for t in range(len(tree_start) - 1):
            n = tree_start[t]
            while leaf_id[n] < 0:
                n = left[n] if node_lut[lut_start[n] + codes[r, node_col[n]]] else right[n]
            total += leaf_value[leaf_id[n]]
        out[r] += total


# ----------------------------------------------------------------------------- public API


class TreeShap:
    """Exact ``pred_contrib``-equivalent SHAP values of a LightGBM model.

    Build once per booster (parses the model and fills the leaf tables; compiles the kernels on
    first use); ``contributions(X)`` returns (n_rows, n_features + 1) with the base value last,
    ``raw_score(X)`` the raw margin. ``X`` is the model matrix ``booster.predict`` takes
    (categoricals as integer codes, NaN for missing), float32 or float64. Threads: numba's
    (``NUMBA_NUM_THREADS``, or ``n_threads`` here).
    """

    def __init__(self, booster: lgb.Booster, batch_rows: int = BATCH_ROWS, n_threads: int | None = None,
                 table_slots: int = TABLE_SLOTS, part_leaves: int = PART_LEAVES) -> None:
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1:
            raise ValueError("only single-output models (binary, regression) are supported")
        self.n_features = int(dump["max_feature_idx"]) + 1
        self.batch_rows = batch_rows
        self.n_threads = n_threads
        self.coders = build_coders(dump["tree_info"])
        self.model, self._constant = parse_model(dump["tree_info"], self.n_features, self.coders,
                                                  table_slots=table_slots, part_leaves=part_leaves)
        md = self.model
        _fill_tables(md.leaf_m, md.leaf_value, md.slot_start, md.slot_ratio, md.table_start, md.table_width,
                     md.tables, md.gl_nodes, md.gl_weights)
        # Expected value of each tree: cover-weighted mean of its leaf values.
        cover = np.ones(len(md.leaf_m))
        np.multiply.at(cover, np.repeat(np.arange(len(md.leaf_m)), np.diff(md.slot_start)), md.slot_ratio)
        self.base_value = self._constant + float(np.sum(md.leaf_value * cover))
        # The code-matrix columns of the SORT_FEATURES features with the most splits (see _locality_order).
        # The coders as flat arrays for ``_encode`` (column i of the code matrix: feature sorted(coders)[i]).
        used = sorted(self.coders)
        self._enc_feature = np.array(used, dtype=np.int64)
        sizes = [len(self.coders[f].cuts) for f in used]
        self._enc_cut_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        cuts = [self.coders[f].cuts for f in used]
        self._enc_cuts = (np.concatenate(cuts) if cuts else np.zeros(0)).astype(np.float64)
        self._enc_categorical = np.array([self.coders[f].categorical for f in used], dtype=np.bool_)
        col_of = {f: i for i, f in enumerate(used)}
        splits = np.bincount(md.feature[md.leaf_id < 0], minlength=self.n_features) if len(md.feature) else np.zeros(0)
        top = [f for f in np.argsort(-splits, kind="stable")[:SORT_FEATURES] if f in col_of and splits[f] > 0]
        self._sort_columns = np.array([col_of[f] for f in top], dtype=np.int64)

    def _prepare(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        if X.dtype != np.float32:
            X = X.astype(np.float64, copy=False)
        if X.ndim != 2 or X.shape[1] < self.n_features:
            raise ValueError(f"expected a 2-d matrix with {self.n_features} columns, got {X.shape}")
        return np.ascontiguousarray(X)

    def _codes(self, X: np.ndarray) -> np.ndarray:
        """(rows, used features): each used feature's code (see ``FeatureCoder``), uint16 when they fit."""
        small = all(c.n_codes() <= 2**16 for c in self.coders.values())
        codes = np.empty((X.shape[0], max(1, len(self.coders))), dtype=np.uint16 if small else np.int32)
        if self.coders:
            _encode(X, self._enc_feature, self._enc_cut_start, self._enc_cuts, self._enc_categorical, codes)
        return codes

    def _locality_order(self, codes: np.ndarray) -> np.ndarray:
        """Rows sorted by their codes on the most-split features (the first, most split, as the primary
        key): rows that sit next to each other then share most decisions, so the hash tables and the
        pattern vectors they read stay in cache. Only the order of work changes: every row still adds
        its trees in order, so the result is bit-identical."""
        if len(codes) < 2 or not self._sort_columns.size:
            return np.arange(len(codes))
        return np.lexsort(codes[:, self._sort_columns[::-1]].T)

    def _threads(self) -> int:
        return numba.config.NUMBA_NUM_THREADS if self.n_threads is None else self.n_threads

    @contextmanager
    def _numba_threads(self) -> Iterator[None]:
        """Run the kernels on ``n_threads`` and give the caller's thread count back afterwards."""
        previous = numba.get_num_threads()
        numba.set_num_threads(self._threads())
        try:
            yield
        finally:
            numba.set_num_threads(previous)

    def contributions(self, X: Any) -> np.ndarray:
        """SHAP values (n_rows, n_features + 1) on the raw score; last column the base value."""
        X = self._prepare(X)
        out = np.empty((X.shape[0], self.n_features + 1))  # every row is written by _put_rows
        md = self.model
        with self._numba_threads():
            chunks = numba.get_num_threads()
            for start in range(0, X.shape[0], self.batch_rows):
                stop = min(start + self.batch_rows, X.shape[0])
                codes = self._codes(X[start:stop])
                order = self._locality_order(codes)
                part = np.zeros((stop - start, out.shape[1]))  # written in sorted order, then put back
                _contributions(codes[order], part, chunks, GROUP_TREES, md.tree_start, md.split_end,
                               md.part_start, md.part_mask, md.part_leaf, md.part_end, md.tree_feat_start,
                               md.tree_feat, md.parent, md.is_left, md.node_col, md.lut_start, md.node_lut,
                               md.node_bit, md.slot_bit, md.new_slot, md.leaf_id, md.leaf_value, md.leaf_m,
                               md.slot_start, md.slot_local, md.slot_ratio, md.table_start, md.table_width,
                               md.pad_local, md.tables, md.path_start, md.path_node, md.path_left,
                               md.path_slot, md.gl_nodes, md.gl_weights, md.max_nodes, md.max_m, md.max_width)
                _put_rows(part, order, start, out)
        out[:, -1] = self.base_value
        return out

    def raw_score(self, X: Any) -> np.ndarray:
        """Raw margin: the value of the leaf each row reaches, summed over trees (+ single leaves)."""
        X = self._prepare(X)
        out = np.full(X.shape[0], self._constant)
        md = self.model
        with self._numba_threads():
            for start in range(0, X.shape[0], self.batch_rows):
                stop = min(start + self.batch_rows, X.shape[0])
                _raw_score(self._codes(X[start:stop]), out[start:stop], md.tree_start, md.left, md.right,
                           md.node_col, md.lut_start, md.node_lut, md.leaf_id, md.leaf_value)
        return out
