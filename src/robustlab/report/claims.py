"""The claims engine: each claim of paper/claims.yaml beside the runs that answer it.

One module for both uses: ``claims_table`` (the lines the CLI prints after one run: claimed vs this
run) and ``claims_frame`` (the report's table over the runs of one profile) read claims.yaml through
``claim_blocks`` / ``pipeline_claims`` and select a claim's runs by its ``when`` with the same
number comparison (``_same``).

For the report, the runs of a claim are those in ``reproduce/<profile>/<run_group>/`` of the store
(``run_group`` is the block's run group, the runs' config ``name``), narrowed by the claim's
``when``; one run per seed. A row holds the claimed value, the mean over seeds with its 95% Student's t interval
(n - 1 df), the protocol the runs used, the CI status (claimed value inside the interval or not) and the verdict,
which is the CI status only when the runs followed the source's protocol (``protocol_check``).
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import pandas as pd
import yaml

from robustlab.errors import RobustlabError, require
from robustlab.runs.layout import REPRODUCE
from robustlab.stats import Interval, empty_interval, t_mean

COLUMNS = [
    "block",  # the claims block of claims.yaml the row comes from
    "claim",
    "key",
    "where",
    "claimed",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "seeds",
    "protocol",
    "ci_status",
    "verdict",
    "run_group",
]
NOT_RUN = "not run"

# paper/claims.yaml, through the symlink robustlab/report/claims.yaml: in a checkout it resolves to paper/, and the
# wheel carries the file itself (package data), so an installed robustlab prints a run's claims too.
CLAIMS = (Path(__file__).parent / "claims.yaml").resolve()


def load_claims(path: Path = CLAIMS) -> dict:
    require(path.is_file(), f"claims file missing: {path}")
    return yaml.safe_load(path.read_text())


def pipeline_claims(pipeline: str, claims: dict | None = None) -> dict:
    """The claims block named after a pipeline: what one run of it is compared with (``claims_table``)."""
    claims = load_claims() if claims is None else claims
    require(pipeline in claims, f"no claims listed for pipeline '{pipeline}' in {CLAIMS}")
    return claims[pipeline]


def claim_blocks(claims: dict | None = None) -> dict:
    """Every block of claims.yaml, checked for what the claims-vs-results tables need."""
    claims = load_claims() if claims is None else claims
    require(isinstance(claims, dict) and claims, f"claims file {CLAIMS} lists no claims blocks")
    for name, block in claims.items():
        require(
            isinstance(block, dict) and block.get("run_group"),
            f"claims block '{name}' names no run_group (the config name whose runs answer it)",
        )
        require(
            isinstance(block.get("claims"), list),
            f"claims block '{name}' has no claims list (write `claims: []` if the source states none)",
        )
        require(
            isinstance(block.get("protocol_check") or {}, dict),
            f"claims block '{name}': protocol_check must map metric keys to the source's values",
        )
        for claim in block["claims"]:
            missing = [k for k in ("what", "key", "value", "where") if k not in claim]
            require(not missing, f"claims block '{name}': claim {claim} lacks {', '.join(missing)}")
    return claims


def lookup(metrics: dict, key: str):
    """``'M.test.robust_ratio'`` -> metrics['M']['test']['robust_ratio']; one line if absent."""
    node = metrics
    for part in key.split("."):
        require(isinstance(node, dict) and part in node, f"claim key '{key}' has no matching metric (missing '{part}')")
        node = node[part]
    return node


def measured(metrics: dict, key: str):
    """The metric, or None when the run did not produce it (e.g. a run without retraining)."""
    try:
        return lookup(metrics, key)
    except RobustlabError:
        return None


def applies(claim: dict, metrics: dict) -> bool:
    """A claim's ``when: {metric key: value}`` holds for this run (numbers compared to 1e-9).

    One run of a sweep (one model of the blog's four, say) answers only the claims about it.
    """
    for key, wanted in (claim.get("when") or {}).items():
        value = measured(metrics, key)
        if value is None or not _same(value, wanted):
            return False
    return True


def comparison(metrics: dict, claims: dict | None = None, missing_ok: bool = False) -> list[dict]:
    """One row per claim that applies to the run; ``missing_ok`` leaves unmeasured ones as None."""
    rows = []
    for c in pipeline_claims(metrics["pipeline"], claims)["claims"]:
        if not applies(c, metrics):
            continue
        value = measured(metrics, c["key"]) if missing_ok else lookup(metrics, c["key"])
        rows.append(
            {"claim": c["what"], "key": c["key"], "claimed": c["value"], "reproduced": value, "where": c["where"]}
        )
    return rows


def claims_table(metrics: dict, header: str, source: str = "paper") -> list[str]:
    """The run's header line, the source's protocol, then claimed vs this run, one line per claim."""
    rows = comparison(metrics, missing_ok=True)
    width = max([len(r["claim"]) for r in rows] + [5])
    shown = lambda v: NOT_RUN if v is None else f"{v:.4f}"  # noqa: E731
    return [
        f"== {header}",
        f"   {source} protocol: {pipeline_claims(metrics['pipeline'])['protocol']}",
        f"   {'claim':<{width}}  {source:>8}  {'this run':>8}  where",
    ] + [f"   {r['claim']:<{width}}  {r['claimed']:>8.4f}  {shown(r['reproduced']):>8}  {r['where']}" for r in rows]


def profile_runs(store: pd.DataFrame, profile: str, run_group: str) -> dict[str, dict]:
    """run_dir -> {"seed", "metrics": {metric: value}} for the runs in reproduce/<profile>/<run_group>.

    By folder, not by config name alone: variants of a preset (e.g. dcgan_semi, a dcgan_mnist with
    overrides) share its name but answer other questions.
    """
    rows = store[(store["group"] == group_path(profile, run_group)) & (store["name"] == run_group)]
    return {
        run_dir: {"seed": part["seed"].iloc[0], "metrics": dict(zip(part["metric"], part["value"], strict=True))}
        for run_dir, part in rows.groupby("run_dir", sort=True)
    }


def group_path(profile: str, run_group: str) -> str:
    return f"{REPRODUCE}/{profile}/{run_group}"


def _same(a: float, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def answering(claim: dict, runs: dict[str, dict], where: str) -> dict[str, dict]:
    """The runs a claim is about (its ``when`` holds); a ``when`` key no run has is a typo, not a filter."""
    chosen = dict(runs)
    for key, wanted in (claim.get("when") or {}).items():
        require(
            not runs or any(key in r["metrics"] for r in runs.values()),
            f"claim '{claim['what']}': `when` key '{key}' has no matching metric in run group {where}",
        )
        chosen = {d: r for d, r in chosen.items() if key in r["metrics"] and _same(r["metrics"][key], wanted)}
    return chosen


def claimed_values(claim: dict, runs: dict[str, dict], where: str) -> list[float]:
    for run_dir, run in runs.items():
        require(
            claim["key"] in run["metrics"],
            f"claim '{claim['what']}': key '{claim['key']}' has no matching metric in run group {where} (run "
            f"{run_dir})",
        )
    seeds = [r["seed"] for r in runs.values()]
    require(all(_is_number(s) for s in seeds), f"claim '{claim['what']}': a run of group {where} records no seed")
    require(
        len(set(seeds)) == len(seeds),
        f"claim '{claim['what']}': run group {where} has several runs of one seed ({seeds}); one run per seed expected",
    )
    return [float(r["metrics"][claim["key"]]) for r in runs.values()]


def claim_protocol(block: dict, claim: dict) -> dict:
    """The part of the block's protocol_check a claim depends on (``protocol_keys``; default: all of it).

    M's test accuracy does not depend on how many robust images M_R was trained on, so a run that
    could not take 1,500 per class is still comparable on M's numbers.
    """
    check = block.get("protocol_check") or {}
    keys = claim.get("protocol_keys", list(check))
    unknown = [k for k in keys if k not in check]
    require(not unknown, f"claim '{claim['what']}': protocol_keys {unknown} are not in its block's protocol_check")
    return {k: check[k] for k in keys}


def protocol_differences(check: dict, runs: dict[str, dict], where: str) -> tuple[str, list[str]]:
    """The runs' protocol as text (only what differs from the source) and the keys that differ."""
    differing, parts = [], []
    for key, source in (check or {}).items():
        values = []
        for run_dir, run in runs.items():
            require(
                key in run["metrics"],
                f"protocol_check key '{key}' has no matching metric in run group {where} (run {run_dir})",
            )
            values.append(run["metrics"][key])
        if not all(_same(v, source) for v in values):
            differing.append(key)
            parts.append(f"{key} {_values_text(values)} (source {_number(source)})")
    return ("; ".join(parts) if parts else "as source"), differing


def _values_text(values: list) -> str:
    """The distinct values of the runs, ascending, then "nan" once if some run has none (a null metric). A set of
    NaNs has no order and keeps every NaN (each is unequal to itself), so sorting them would differ between runs."""
    finite = sorted({float(v) for v in values if not math.isnan(float(v))})
    missing = ["nan"] if any(math.isnan(float(v)) for v in values) else []
    return "/".join([_number(v) for v in finite] + missing)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def ci_status(claimed: float, interval: Interval, nulls: int = 0) -> str:
    if nulls:
        return f"undefined (metric null in {nulls} run{'s' if nulls > 1 else ''})"
    status = "within CI" if interval.contains(claimed) else "outside CI"
    return f"{status} (n=1, degenerate)" if interval.degenerate else status


def verdict(status: str, differing: list[str], dataset_differs: str | None = None) -> str:
    """The CI status, unless the runs did not follow the source's protocol. A block run on another dataset
    (``dataset_differs`` in claims.yaml) says so in every verdict, and whether the sizes match."""
    if status == NOT_RUN:
        return NOT_RUN
    if differing:
        text = f"not comparable ({', '.join(differing)} differ{'s' if len(differing) == 1 else ''} from the source)"
        return f"{text}; dataset differs: {dataset_differs}" if dataset_differs else text
    return f"{status}; dataset differs: {dataset_differs}, sizes match" if dataset_differs else status


def claim_row(name: str, block: dict, claim: dict, runs: dict[str, dict], profile: str) -> dict:
    where = group_path(profile, block["run_group"])
    chosen = answering(claim, runs, where)
    row = {
        "block": name,
        "claim": claim["what"],
        "key": claim["key"],
        "where": claim["where"],
        "claimed": float(claim["value"]),
        "run_group": where,
    }
    if not chosen:
        return (
            row
            | _interval_columns(empty_interval())
            | {"seeds": "", "protocol": "", "ci_status": NOT_RUN, "verdict": NOT_RUN}
        )
    values = claimed_values(claim, chosen, where)
    finite = [v for v in values if not math.isnan(v)]
    interval = t_mean(finite) if finite else empty_interval()
    status = ci_status(row["claimed"], interval, len(values) - len(finite))
    protocol, differing = protocol_differences(claim_protocol(block, claim), chosen, where)
    seeds = ", ".join(_number(s) for s in sorted(float(r["seed"]) for r in chosen.values()))
    return (
        row
        | _interval_columns(interval)
        | {
            "seeds": seeds,
            "protocol": protocol,
            "ci_status": status,
            "verdict": verdict(status, differing, block.get("dataset_differs")),
        }
    )


def _interval_columns(interval: Interval) -> dict:
    return {"mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high, "n": interval.n}


def claims_frame(store: pd.DataFrame, profile: str, claims: dict | None = None) -> pd.DataFrame:
    """One row per claim of every block in claims.yaml, for the runs of ``profile`` in the store."""
    rows = []
    for name, block in claim_blocks(claims).items():
        runs = profile_runs(store, profile, block["run_group"])
        rows += [claim_row(name, block, claim, runs, profile) for claim in block["claims"]]
    return pd.DataFrame(rows, columns=COLUMNS)
