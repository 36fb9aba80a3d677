"""Claimed numbers of the sources (paper/claims.yaml) beside the reproduced ones."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from robustlab.errors import RobustlabError, require

CLAIMS = Path(__file__).resolve().parents[2] / "paper" / "claims.yaml"


def load_claims(path: Path = CLAIMS) -> dict:
    require(path.is_file(), f"claims file missing: {path}")
    return yaml.safe_load(path.read_text())


def experiment_claims(experiment: str, claims: dict | None = None) -> dict:
    claims = load_claims() if claims is None else claims
    require(experiment in claims, f"no claims listed for experiment '{experiment}' in {CLAIMS}")
    return claims[experiment]


def claim_blocks(claims: dict | None = None) -> dict:
    """Every block of claims.yaml, checked for what the claims-vs-results tables need."""
    claims = load_claims() if claims is None else claims
    require(isinstance(claims, dict) and claims, f"claims file {CLAIMS} lists no experiment blocks")
    for experiment, block in claims.items():
        require(isinstance(block, dict) and block.get("run_group"), f"claims block '{experiment}' names no run_group (the config name whose runs answer it)")
        require(isinstance(block.get("claims"), list), f"claims block '{experiment}' has no claims list (write `claims: []` if the source states none)")
        require(isinstance(block.get("protocol_check") or {}, dict), f"claims block '{experiment}': protocol_check must map metric keys to the source's values")
        for claim in block["claims"]:
            missing = [k for k in ("what", "key", "value", "where") if k not in claim]
            require(not missing, f"claims block '{experiment}': claim {claim} lacks {', '.join(missing)}")
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
        if value is None or not math.isclose(float(value), float(wanted), abs_tol=1e-9):
            return False
    return True


def comparison(metrics: dict, claims: dict | None = None, missing_ok: bool = False) -> list[dict]:
    """One row per claim that applies to the run; ``missing_ok`` leaves unmeasured ones as None."""
    rows = []
    for c in experiment_claims(metrics["experiment"], claims)["claims"]:
        if not applies(c, metrics):
            continue
        value = measured(metrics, c["key"]) if missing_ok else lookup(metrics, c["key"])
        rows.append({"claim": c["what"], "key": c["key"], "claimed": c["value"], "reproduced": value, "where": c["where"]})
    return rows


def claims_table(metrics: dict, header: str, source: str = "paper") -> list[str]:
    """The run's header line, the source's protocol, then claimed vs this run, one line per claim."""
    rows = comparison(metrics, missing_ok=True)
    width = max([len(r["claim"]) for r in rows] + [5])
    shown = lambda v: "not run" if v is None else f"{v:.4f}"  # noqa: E731
    return [
        f"== {header}",
        f"   {source} protocol: {experiment_claims(metrics['experiment'])['protocol']}",
        f"   {'claim':<{width}}  {source:>8}  {'this run':>8}  where",
    ] + [f"   {r['claim']:<{width}}  {r['claimed']:>8.4f}  {shown(r['reproduced']):>8}  {r['where']}" for r in rows]
