"""The router evaluation as people read it: headline figures and the cost/quality curve."""

from __future__ import annotations

from typing import Any

from lakehouse.router.evaluation import RouterEvaluation


def summary(evaluation: RouterEvaluation) -> dict[str, Any]:
    """The headline figures: saving and quality ratio against always-strongest with their
    intervals, APGR, the champion's version, and the ground truth when known."""
    out: dict[str, Any] = {
        "candidate_version": evaluation.candidate_version,
        "champion_version": evaluation.champion_version,
        "cost_saving": evaluation.cost_saving.value,
        "cost_saving_low": evaluation.cost_saving.low,
        "cost_saving_high": evaluation.cost_saving.high,
        "quality_ratio": evaluation.quality_ratio.value,
        "quality_ratio_low": evaluation.quality_ratio.low,
        "quality_ratio_high": evaluation.quality_ratio.high,
        "apgr": evaluation.apgr,
        "n": evaluation.policies["candidate"].n,
    }
    cand, strong = evaluation.policies["candidate"].truth, evaluation.policies["strongest"].truth
    if cand is not None and strong is not None:
        out["truth_cost_saving"] = 1 - cand["cost"] / strong["cost"]
        out["truth_quality_ratio"] = cand["quality"] / strong["quality"]
    return out


def curve_markdown(evaluation: RouterEvaluation) -> str:
    """The cost/quality curve over the policy's threshold as a markdown table."""
    truth = any(p.truth_cost is not None for p in evaluation.curve)
    head = "| threshold | cost (DR) | quality (DR) |" + (
        " cost (truth) | quality (truth) |" if truth else ""
    )
    lines = [head, "|---" * (5 if truth else 3) + "|"]
    for p in evaluation.curve:
        line = f"| {p.threshold:.2f} | {p.cost:.6f} | {p.quality:.4f} |"
        if truth:
            line += f" {p.truth_cost:.6f} | {p.truth_quality:.4f} |"
        lines.append(line)
    return "\n".join(lines)
