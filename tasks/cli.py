"""``flask jobs ...``: run workers and inspect or act on jobs from a shell."""
from __future__ import annotations

import json
import logging

import click
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db
from tasks import api, commands, queries, registry
from tasks.queries import JobFilter

jobs_cli = AppGroup("jobs", help="Background jobs: workers, enqueue, inspect, retry, delete.")


def parse_json(value: str | None, expected: type, option: str):
    """Decode a ``--args``/``--kwargs`` value, with a clear error naming the option."""
    if value is None:
        return expected()
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(decoded, expected):
        raise click.BadParameter(f"must be a JSON {expected.__name__}", param_hint=option)
    return decoded


@jobs_cli.command("worker")
@click.option("--queues", default=None,
              help="Comma-separated queues, fetched in this order (default: JOBS_QUEUES).")
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--processes", is_flag=True, help="Run workers as processes instead of threads.")
def worker_command(queues: str | None, concurrency: int, processes: bool) -> None:
    """Run a worker until SIGTERM/SIGINT (graceful: running jobs finish or are handed back)."""
    from tasks.server import JobServer

    engine = current_app.extensions["jobs"]
    names = [q.strip() for q in (queues or ",".join(engine.settings.default_queues)).split(",") if q.strip()]
    banner = (f"worker: queues {','.join(names)}, {concurrency} {'processes' if processes else 'threads'}, "
              f"transport {type(engine.transport).__name__}")
    if current_app.config.get("LOG_FORMAT") == "json":
        logging.getLogger("tasks.cli").info(banner)  # every line on stdout stays JSON
    else:
        click.echo(banner)
    JobServer(engine, names, concurrency, processes).run()


@jobs_cli.command("enqueue")
@click.argument("task")
@click.option("--args", "args_json", help='Positional arguments as a JSON list, e.g. \'[2]\'.')
@click.option("--kwargs", "kwargs_json", help='Keyword arguments as a JSON object.')
@click.option("--queue", default=None, help="Queue (default: the job's own).")
@click.option("--priority", default=None, type=int)
@click.option("--delay", default=None, type=click.FloatRange(0), help="Seconds until due.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Enqueue this many identical jobs (bulk, for load checks).")
def enqueue_command(task, args_json, kwargs_json, queue, priority, delay, count) -> None:
    """Enqueue TASK and print the job ids, one a line."""
    args = parse_json(args_json, list, "--args")
    kwargs = parse_json(kwargs_json, dict, "--kwargs")
    try:
        definition = registry.definition(task)
    except registry.UnknownTask as exc:
        raise click.ClickException(str(exc)) from None
    try:
        for start in range(0, count, 5000):
            batch = [(args, kwargs)] * min(5000, count - start)
            for job_id in api.enqueue_many(definition.name, batch, queue=queue, priority=priority,
                                           delay=delay):
                click.echo(job_id)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def print_jobs(rows: list[dict], as_json: bool) -> None:
    """Print job summaries as JSON or as an aligned table."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']}  {row['state']:<10} {row['task']:<24} attempt {row['attempt']}/"
                   f"{row['max_attempts']}  {row['state_changed_at']}  {row['reason'] or ''}")


@jobs_cli.command("list")
@click.option("--state", type=click.Choice(queries.lifecycle.STATES, case_sensitive=False))
@click.option("--task", default=None)
@click.option("--queue", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(state, task, queue, limit, as_json) -> None:
    """List jobs, most recently changed first."""
    state = next((s for s in queries.lifecycle.STATES if state and s.lower() == state.lower()), None)
    page = queries.list_jobs(JobFilter(state=state, task=task, queue=queue), limit)
    print_jobs([queries.job_summary(j) for j in page.jobs], as_json)


@jobs_cli.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def show_command(job_id: str, as_json: bool) -> None:
    """Show one job with its state history."""
    job = queries.get_job(job_id)
    if job is None:
        raise click.ClickException(f"no job {job_id}")
    detail = queries.job_detail(job)
    if as_json:
        click.echo(json.dumps(detail, indent=2))
        return
    for key in ("id", "task", "display_name", "queue", "state", "reason", "attempt", "max_attempts", "args",
                "kwargs", "created_at", "started_at", "finished_at", "worker", "exception_type",
                "exception_message"):
        click.echo(f"{key:>16}: {detail[key]}")
    click.echo("         history:")
    for entry in detail["history"]:
        click.echo(f"  {entry['at']}  {entry['state']:<10} {entry['reason']}")


def act(action, job_id: str, verb: str) -> None:
    """Run a command on one job and report whether it applied."""
    if queries.get_job(job_id) is None:
        raise click.ClickException(f"no job {job_id}")
    if not action([job_id], by="cli"):
        raise click.ClickException(f"job {job_id} can't be {verb} in its current state")
    click.echo(f"{verb} {job_id}")


@jobs_cli.command("retry")
@click.argument("job_id")
def retry_command(job_id: str) -> None:
    """Enqueue a Failed, Succeeded, Deleted or Scheduled job again now."""
    act(commands.requeue, job_id, "requeued")


@jobs_cli.command("delete")
@click.argument("job_id")
def delete_command(job_id: str) -> None:
    """Delete a job that hasn't finished (or a Failed one)."""
    act(commands.delete, job_id, "deleted")


@jobs_cli.command("stats")
@click.option("--json", "as_json", is_flag=True)
def stats_command(as_json: bool) -> None:
    """Jobs per state."""
    counts = queries.state_counts()
    if as_json:
        click.echo(json.dumps(counts))
        return
    for state, count in counts.items():
        click.echo(f"{state:<11} {count}")


@jobs_cli.group("queues")
def queues_cli() -> None:
    """Queues jobs may be sent to."""


@queues_cli.command("declare")
@click.argument("name")
def queues_declare(name: str) -> None:
    """Declare queue NAME so that jobs may be enqueued to it (workers fetch it with --queues)."""
    from tasks import queues

    try:
        added = queues.declare(name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"queue {name} {'declared' if added else 'was already declared'}")


@queues_cli.command("list")
def queues_list() -> None:
    """Every known queue: JOBS_QUEUES, job definitions' own and declared ones."""
    for name in sorted(current_app.extensions["jobs"].known_queues()):
        click.echo(name)


@jobs_cli.group("recurring")
def recurring_cli() -> None:
    """Recurring jobs declared in code."""


@recurring_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def recurring_list(as_json: bool) -> None:
    """List recurring jobs with their schedule and next run."""
    from tasks.recurring import RecurringJob

    rows = db.session.scalars(db.select(RecurringJob).order_by(RecurringJob.id)).all()
    data = [{"id": r.id, "task": r.task, "cron": r.cron, "description": r.description, "timezone": r.timezone,
             "enabled": r.enabled, "next_run_at": r.next_run_at and r.next_run_at.isoformat() + "Z",
             "last_run_at": r.last_run_at and r.last_run_at.isoformat() + "Z", "last_job_id": r.last_job_id,
             "error": r.error} for r in rows]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for r in data:
        state = "enabled " if r["enabled"] else "disabled"
        click.echo(f"{r['id']:<30} {state} {r['cron']:<16} {r['timezone']:<16} next {r['next_run_at']}")


@recurring_cli.command("sync")
def recurring_sync() -> None:
    """Make the table match the code's declarations (the worker leader also does this)."""
    from tasks import recurring

    result = recurring.sync()
    click.echo("recurring jobs synced: {added} added, {changed} changed, {removed} removed".format(**result))
    if result["errors"]:
        for recurring_id, error in result["errors"].items():
            click.echo(f"  {recurring_id}: {error}", err=True)
        raise click.ClickException(f"{len(result['errors'])} recurring definition(s) could not be synced")


@recurring_cli.command("trigger")
@click.argument("recurring_id")
def recurring_trigger(recurring_id: str) -> None:
    """Run a recurring job now; prints the job id."""
    from tasks import recurring

    job_id = recurring.trigger(recurring_id, by="cli")
    if job_id is None:
        raise click.ClickException(f"no recurring job {recurring_id}")
    click.echo(job_id)


@recurring_cli.command("enable")
@click.argument("recurring_id")
@click.option("--off", is_flag=True, help="Disable instead.")
def recurring_enable(recurring_id: str, off: bool) -> None:
    """Enable (or with --off disable) a recurring job; persisted across deploys."""
    from tasks import recurring

    if not recurring.set_enabled(recurring_id, not off):
        raise click.ClickException(f"no recurring job {recurring_id}")
    click.echo(f"{recurring_id} {'disabled' if off else 'enabled'}")
