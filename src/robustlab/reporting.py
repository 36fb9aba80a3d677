"""Claimed numbers of the sources (paper/claims.yaml) beside the reproduced ones."""

from __future__ import annotations

from pathlib import Path

import yaml

from robustlab.errors import RobustlabError, require

CLAIMS = Path(__file__).resolve().parents[2] / "paper" / "claims.yaml"


def load_claims(path: Path = CLAIMS) -> dict:
    require(path.is_file(), f"claims file missing: {path}")
    return yaml.safe_load(path.read_text())


def lookup(metrics: dict, key: str):
    """``'M.test.robust_ratio'`` -> metrics['M']['test']['robust_ratio']; one line if absent."""
    node = metrics
    for part in key.split("."):
        require(isinstance(node, dict) and part in node, f"claim key '{key}' has no matching metric (missing '{part}')")
        node = node[part]
    return node


def comparison(metrics: dict, claims: dict | None = None, missing_ok: bool = False) -> list[dict]:
    """One row per claim of the run's experiment; ``missing_ok`` leaves unmeasured ones as None."""
    claims = load_claims() if claims is None else claims
    experiment = metrics["experiment"]
    require(experiment in claims, f"no claims listed for experiment '{experiment}' in {CLAIMS}")
    rows = []
    for c in claims[experiment]["claims"]:
        try:
            value = lookup(metrics, c["key"])
        except RobustlabError:
            if not missing_ok:
                raise
            value = None
        rows.append({"claim": c["what"], "key": c["key"], "claimed": c["value"], "reproduced": value, "where": c["where"]})
    return rows


def summary_lines(metrics: dict) -> list[str]:
    rows = comparison(metrics, missing_ok=True)
    claims = load_claims()[metrics["experiment"]]
    width = max(len(r["claim"]) for r in rows)
    lines = [
        f"== {metrics['experiment']} | profile={metrics['profile']} seed={metrics['seed']} | data: {metrics['data']['name']} "
        f"({metrics['data']['train_images']} train / {metrics['data']['test_images']} test images) | {metrics['perturbation']}, MAX_STEPS={metrics['max_steps']}",
        f"   paper protocol: {claims['protocol']}",
        f"   {'claim':<{width}}  {'paper':>8}  {'this run':>8}  where",
    ]
    shown = lambda v: "not run" if v is None else f"{v:.4f}"  # noqa: E731
    lines += [f"   {r['claim']:<{width}}  {r['claimed']:>8.4f}  {shown(r['reproduced']):>8}  {r['where']}" for r in rows]
    subset = metrics.get("subset")
    if subset:
        lines.append(f"   M_R trained on {subset['subset_size']} robust images ({subset['per_class_taken']} per class; asked {subset['per_class_asked']}: {subset['shortfall']})")
    return lines
