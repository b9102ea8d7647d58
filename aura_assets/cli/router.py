"""``aura router train | evaluate | models``: the learned router from the command line."""

import json
from datetime import datetime

import click

from lakehouse import Lakehouse
from lakehouse.exceptions import ValidationError
from lakehouse.router import registry
from lakehouse.simulate.routing import expected_truth

_DAYS = click.IntRange(min=1, max=366)


@click.group("router")
def router() -> None:
    """Train, evaluate and list the learned model router's versions."""


def _truth(simulated: bool, regime_change_at: datetime | None):
    if not simulated:
        return None
    change = regime_change_at.date() if regime_change_at else None
    return lambda rows: expected_truth(rows, change)


_SIMULATED = click.option(
    "--simulated",
    is_flag=True,
    help="The decisions come from `aura simulate`: also report the simulator's ground truth.",
)
_REGIME = click.option(
    "--regime-change-at",
    type=click.DateTime(["%Y-%m-%d"]),
    help="With --simulated: the day the simulated regime changed.",
)


@router.command("train")
@click.option("--train-days", default=3, type=_DAYS, show_default=True)
@click.option("--heldout-days", default=1, type=_DAYS, show_default=True)
@_SIMULATED
@_REGIME
def train(
    train_days: int, heldout_days: int, simulated: bool, regime_change_at: datetime | None
) -> None:
    """Build the training set, train a candidate and promote it only if it beats the champion."""
    from quality.audit import gx_audit

    lh = Lakehouse()
    days = registry.training_days(lh, registry.DECISIONS)[-(train_days + heldout_days) :]
    if not days:
        raise ValidationError("routing_decisions is empty: run `aura simulate` and ingest first")
    registry.build_training_set(lh, days, audit=gx_audit)
    train_on, heldout = registry.split_days(lh, train_days, heldout_days)
    result = registry.retrain(lh, train_on, heldout, truth=_truth(simulated, regime_change_at))
    verdict = "published as champion" if result.published else "REFUSED (kept on its branch)"
    click.echo(
        f"candidate {result.candidate.version} {verdict}; audit branch {result.audit_branch}"
    )
    for reason in result.decision.reasons:
        click.echo(f"  {reason}")
    _echo_summary(registry.summary(result.evaluation))


@router.command("evaluate")
@click.option("--heldout-days", default=1, type=_DAYS, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@_SIMULATED
@_REGIME
def evaluate(
    heldout_days: int, fmt: str, simulated: bool, regime_change_at: datetime | None
) -> None:
    """Evaluate the champion off-policy on the latest held-out days against always-strongest."""
    lh = Lakehouse()
    champion = registry.champion(lh)
    if champion is None:
        raise ValidationError("no champion router yet: run `aura router train` first")
    days = registry.training_days(lh)[-heldout_days:]
    evaluation = registry.evaluate(
        lh, champion, champion, days, truth=_truth(simulated, regime_change_at)
    )
    summary = {
        **registry.summary(evaluation),
        "heldout_days": [d.isoformat() for d in days],
    }
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    _echo_summary(summary)


def _echo_summary(summary: dict) -> None:
    click.echo(
        f"cost saving vs always-strongest {summary['cost_saving']:.1%} "
        f"[{summary['cost_saving_low']:.1%}, {summary['cost_saving_high']:.1%}], "
        f"quality ratio {summary['quality_ratio']:.1%} "
        f"[{summary['quality_ratio_low']:.1%}, {summary['quality_ratio_high']:.1%}], "
        f"APGR {summary['apgr']:.3f}, champion {summary['champion_version'] or '-'}"
    )
    if "truth_cost_saving" in summary:
        click.echo(
            f"ground truth: cost saving {summary['truth_cost_saving']:.1%}, "
            f"quality ratio {summary['truth_quality_ratio']:.1%}"
        )


@router.command("models")
def models() -> None:
    """List the router's versions (status candidate | champion | retired) on main."""
    rows = registry.models(Lakehouse()).to_pylist()
    if not rows:
        click.echo("no router models yet: run `aura router train`")
        return
    for row in rows:
        click.echo(
            f"{row['version']}  {row['status']:9}  {row['trained_at']:%Y-%m-%d %H:%M}  "
            f"rows {row['training_rows']}  threshold {row['threshold']:.2f}  "
            f"snapshots {row['training_snapshot_ids']}"
        )
