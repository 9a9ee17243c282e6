"""Best-first search of the candidate needle paths to one target.

Input: a :class:`~planner.path_check.PathChecker` over the candidate entries, the candidates'
score terms that do not depend on the checks (:class:`Candidates`: craniocaudal angle, depth,
angle to the skin normal) and :class:`~planner.rules.TrajectoryRules`.
Output: :class:`SearchOutcome`: the chosen paths (indices into the candidates, best first:
the best and up to ``rules.alternatives`` others, each at least
``MIN_ALTERNATIVE_SEPARATION_MM`` from the entries chosen before it), with their clearances and
scores; or, when no path passes, how many paths failed each check.

The outcome is the one of checking every candidate and ranking the safe ones by score, found
with less work: candidates are taken in order of their best possible score (the score with the
most clearance that counts, ``CLEARANCE_SCORE_CAP_MM``), in batches; a batch is screened on a
subset of the samples and only the paths that pass get the full check; the search stops once
the chosen paths are complete and no candidate left could score better than the last of them.
Every path returned passed the full check. A first pass covers up to ``MAX_CANDIDATES``
entries spread over the reachable skin; when none passes, a second pass searches densely
around the paths that kept the most clearance (a safe window can be narrower than the first
pass's spacing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from planner.path_check import LEAVES_BODY, PathChecker, PathChecks
from planner.rules import TrajectoryRules

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

MAX_CANDIDATES = 6000
MIN_ALTERNATIVE_SEPARATION_MM = 15.0
# Clearance beyond this does not improve a path's score.
CLEARANCE_SCORE_CAP_MM = 20.0
BATCH = 512
# Second pass when the first finds nothing: dense search around the closest misses.
NEAR_MISS_COUNT = 40
NEAR_MISS_RADIUS_MM = 10.0


@dataclass(frozen=True)
class Candidates:
    """Per candidate entry: its position (LPS mm) and the score terms known before checking."""

    entries_lps_mm: FloatArray
    craniocaudal_deg: FloatArray
    depth_mm: FloatArray
    skin_angle_deg: FloatArray


@dataclass(frozen=True)
class SearchOutcome:
    chosen: IndexArray  # indices into the candidates, best first
    scores: FloatArray  # per chosen path
    min_clearance_mm: npt.NDArray[np.float32]  # per chosen path, capped for the score
    clearance_mm: dict[str, npt.NDArray[np.float32]]  # per structure, per chosen path
    evaluated: int  # candidate paths covered: checked, or unable to beat the chosen ones
    checked: int  # candidate paths whose checks ran
    failures: dict[str, int]  # when nothing passed: paths failing each check


def path_scores(
    rules: TrajectoryRules, c: Candidates, idx: IndexArray, min_clearance_mm: npt.ArrayLike
) -> FloatArray:
    """Score (lower is better) of the paths ``idx`` with the given capped clearance."""
    return np.asarray(
        rules.weight_craniocaudal_per_deg * c.craniocaudal_deg[idx]
        + rules.weight_depth_per_mm * c.depth_mm[idx]
        - rules.weight_clearance_per_mm * np.asarray(min_clearance_mm, dtype=np.float32)
        + rules.weight_skin_angle_per_deg * c.skin_angle_deg[idx]
    )


def _min_clearance(clearance: dict[str, npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    return np.asarray(
        np.minimum.reduce([np.minimum(v, CLEARANCE_SCORE_CAP_MM) for v in clearance.values()])
    )


def _select(entries: FloatArray, order: IndexArray, count: int) -> list[int]:
    """Greedily, in ``order``: up to ``count`` entries, each far enough from those before."""
    chosen: list[int] = []
    for o in order:
        e = entries[o]
        if all(np.linalg.norm(e - entries[c]) >= MIN_ALTERNATIVE_SEPARATION_MM for c in chosen):
            chosen.append(int(o))
        if len(chosen) == count:
            break
    return chosen


@dataclass
class _Pass:
    """Full checks gathered while searching the paths ``idx``: (positions in ``idx``, checks)."""

    idx: IndexArray
    records: list[tuple[IndexArray, PathChecks]]
    checked: int = 0


def _best_first(
    checker: PathChecker, c: Candidates, idx: IndexArray, rules: TrajectoryRules
) -> tuple[_Pass, IndexArray, FloatArray, dict[str, npt.NDArray[np.float32]]]:
    """Search the paths ``idx`` best-first. Returns the pass and, for the chosen paths (best
    first; none when no path passes), their positions in ``idx``, scores and clearances."""
    best_clear = CLEARANCE_SCORE_CAP_MM if rules.weight_clearance_per_mm >= 0 else 0.0
    bound = path_scores(rules, c, idx, np.full(idx.size, best_clear, dtype=np.float32))
    order = np.argsort(bound, kind="stable")
    state = _Pass(idx, [])
    want = rules.alternatives + 1
    ok_pos: list[IndexArray] = []
    ok_clear: list[dict[str, npt.NDArray[np.float32]]] = []
    chosen = np.empty(0, dtype=np.intp)
    scores = np.empty(0)
    clear: dict[str, npt.NDArray[np.float32]] = {}
    for start in range(0, order.size, BATCH):
        batch = order[start : start + BATCH]
        state.checked += batch.size
        screened = batch[checker.screen(idx[batch])]
        if screened.size == 0:
            continue
        full = checker.check(idx[screened])
        state.records.append((screened, full))
        if not full.ok.any():
            continue
        ok_pos.append(screened[full.ok])
        ok_clear.append({k: v[full.ok] for k, v in full.clearance_mm.items()})
        pos = np.concatenate(ok_pos)
        clear = {k: np.concatenate([b[k] for b in ok_clear]) for k in full.clearance_mm}
        scores = path_scores(rules, c, idx[pos], _min_clearance(clear))
        ranked = np.lexsort((pos, scores))  # ties: the candidates' own order
        picked = np.asarray(_select(c.entries_lps_mm[idx[pos]], ranked, want), dtype=np.intp)
        chosen, scores = pos[picked], scores[picked]
        clear = {k: v[picked] for k, v in clear.items()}
        rest = start + BATCH
        if picked.size == want and (rest >= order.size or bound[order[rest]] > scores[-1]):
            break
    return state, chosen, scores, clear


def _all_checks(checker: PathChecker, state: _Pass) -> PathChecks:
    """Full checks of every path of a pass, in ``state.idx`` order (the paths the screen
    rejected are checked now)."""
    n = state.idx.size
    covered = np.zeros(n, dtype=bool)
    for pos, _ in state.records:
        covered[pos] = True
    missing = np.flatnonzero(~covered)
    records = list(state.records)
    for start in range(0, missing.size, BATCH):
        pos = missing[start : start + BATCH]
        records.append((pos, checker.check(state.idx[pos])))
    ok = np.zeros(n, dtype=bool)
    clearance: dict[str, npt.NDArray[np.float32]] = {}
    rejected: dict[str, npt.NDArray[np.bool_]] = {}
    for pos, full in records:
        ok[pos] = full.ok
        for k, v in full.clearance_mm.items():
            clearance.setdefault(k, np.empty(n, dtype=np.float32))[pos] = v
        for k, r in full.rejected.items():
            rejected.setdefault(k, np.zeros(n, dtype=bool))[pos] = r
    return PathChecks(ok, clearance, rejected)


def _near_misses(
    entries: FloatArray, tried: IndexArray, checks: PathChecks, reachable: int
) -> IndexArray:
    """Untried candidates within NEAR_MISS_RADIUS_MM of the tried paths that kept the most
    clearance (candidates are indices 0..reachable-1)."""
    closest = np.minimum.reduce(list(checks.clearance_mm.values()))
    closest = np.where(checks.rejected[LEAVES_BODY], -np.inf, closest)
    best = tried[np.argsort(-closest)[:NEAR_MISS_COUNT]]
    tree = cKDTree(entries)
    near = {
        i for group in tree.query_ball_point(entries[best], r=NEAR_MISS_RADIUS_MM) for i in group
    }
    extra = np.setdiff1d(np.arange(reachable)[sorted(near)], tried)
    if extra.size > MAX_CANDIDATES:
        extra = extra[np.linspace(0, extra.size - 1, MAX_CANDIDATES).astype(int)]
    return extra


def search_paths(checker: PathChecker, c: Candidates, rules: TrajectoryRules) -> SearchOutcome:
    """The chosen safe paths among the candidates (see the module docstring)."""
    n = c.depth_mm.size
    idx = np.arange(n, dtype=np.intp)
    if n > MAX_CANDIDATES:
        idx = idx[np.linspace(0, n - 1, MAX_CANDIDATES).astype(int)]
    passes = []
    first, chosen, scores, clear = _best_first(checker, c, idx, rules)
    passes.append(first)
    if chosen.size == 0 and n > idx.size:
        checks = _all_checks(checker, first)
        passes[0] = _Pass(idx, [(np.arange(idx.size), checks)], first.checked)
        extra = _near_misses(c.entries_lps_mm, idx, checks, n)
        if extra.size:
            second, chosen, scores, clear = _best_first(checker, c, extra, rules)
            passes.append(second)
    evaluated = sum(p.idx.size for p in passes)
    checked = sum(p.checked for p in passes)
    if chosen.size:
        picked = passes[-1].idx[chosen]
        min_clear = _min_clearance(clear)
        return SearchOutcome(picked, scores, min_clear, clear, evaluated, checked, {})
    failures: dict[str, int] = {}
    for p in passes:
        for k, r in _all_checks(checker, p).rejected.items():
            failures[k] = failures.get(k, 0) + int(r.sum())
    empty = np.empty(0, dtype=np.float32)
    return SearchOutcome(
        np.empty(0, dtype=np.intp), np.empty(0), empty, {}, evaluated, checked, failures
    )
