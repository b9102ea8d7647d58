"""``aura router train | evaluate | models``: the learned router from the command line.

``train`` launches the code location's ``router_training`` and ``router_retrain`` runs
(:mod:`aura_assets.launch`), so the new snapshots carry a Dagster run id and code version and
the UI's ``router_model`` shows the champion ``aura router models`` lists.
"""

import json
from datetime import date, datetime

import click

from lakehouse import Lakehouse, Settings
from lakehouse import router as registry
from lakehouse.exceptions import AuraError, ValidationError
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
    """Build the training set, train a candidate and promote it only if it beats the champion.

    Runs as two Dagster runs (router_training over the days, then router_retrain); days are
    checked first, so a refused request writes nothing.
    """
    from aura_assets.instance import open_instance
    from aura_assets.launch import CLI_TAG, launcher, partition_range

    settings = Settings.from_env()
    lh = Lakehouse(settings)
    needed = train_days + heldout_days
    days = registry.training_days(lh, registry.DECISIONS)[-needed:]
    if len(days) < needed:
        raise ValidationError(
            f"routing_decisions has {len(days)} day(s) on {settings.branch}; training on "
            f"{train_days} and holding out {heldout_days} needs {needed}: ingest more days or "
            "ask for fewer (nothing was written)"
        )
    tags = {CLI_TAG: "router train"}
    config = {"train_days": train_days, "heldout_days": heldout_days}
    instance = open_instance(settings)
    try:
        with launcher(instance) as launch:
            span = partition_range(days[0].isoformat(), days[-1].isoformat())
            built = launch.run("router_training", tags={**tags, **span})
            if not built.success:
                raise AuraError(f"router_training run {built.run_id} failed: `aura ui` shows why")
            outcome = launch.run(
                "router_retrain",
                run_config={"ops": {"router_model": {"config": config}}},
                tags=tags,
            )
            if not outcome.success:
                raise AuraError(f"router_retrain run {outcome.run_id} failed: `aura ui` shows why")
    finally:
        instance.dispose()
    model, figures = outcome.metadata["router_model"], outcome.metadata["router_evaluation"]
    verdict = "published as champion" if model["published"] else "REFUSED (kept on its branch)"
    click.echo(
        f"candidate {model['candidate_version']} {verdict} by run {outcome.run_id}; "
        f"audit branch {model['audit_branch']}"
    )
    for reason in str(model["reasons"]).split("; "):
        click.echo(f"  {reason}")
    summary = {**figures, **_truth_figures(lh, model, figures, simulated, regime_change_at)}
    _echo_summary(summary, against="previous champion")
    click.echo(f"champion now: {model['champion_version'] or '-'}")


def _truth_figures(
    lh: Lakehouse,
    model: dict,
    figures: dict,
    simulated: bool,
    regime_change_at: datetime | None,
) -> dict:
    """With ``--simulated``, the simulator's ground truth for the run's candidate (a read only)."""
    truth = _truth(simulated, regime_change_at)
    if truth is None:
        return {}
    branch = None if model["published"] else model["audit_branch"]
    candidate = registry.load_version(lh, model["candidate_version"], branch)
    judged = figures.get("champion_version") or None
    champion = registry.load_version(lh, judged, branch) if judged else None
    heldout = [date.fromisoformat(d) for d in str(model["heldout_days"]).split(", ")]
    evaluation = registry.evaluate(lh, candidate, champion, heldout, truth=truth, n_boot=20)
    found = registry.summary(evaluation)
    return {k: v for k, v in found.items() if k.startswith("truth_")}


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


def _echo_summary(summary: dict, against: str = "champion") -> None:
    click.echo(
        f"cost saving vs always-strongest {summary['cost_saving']:.1%} "
        f"[{summary['cost_saving_low']:.1%}, {summary['cost_saving_high']:.1%}], "
        f"quality ratio {summary['quality_ratio']:.1%} "
        f"[{summary['quality_ratio_low']:.1%}, {summary['quality_ratio_high']:.1%}], "
        f"APGR {summary['apgr']:.3f}, {against} {summary['champion_version'] or '-'}"
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
