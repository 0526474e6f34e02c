"""``kb eval``: the click command. Register it on the ``kb`` group with
``main.add_command(eval_command)``; all the work is in :func:`eval.run.run_eval`."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("eval")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("eval-runs"),
    show_default=True,
    help="Reports, run folders and history.jsonl go here.",
)
@click.option(
    "--variants",
    multiple=True,
    help="Extra configurations: all, bm25, dense, dense-<model>, hybrid, NAME:key=value,...",
)
@click.option("--compare", is_flag=True, help="Print the change since the previous run.")
@click.option(
    "--target",
    type=click.FloatRange(0, 1),
    default=0.10,
    show_default=True,
    help="Highest wrong-answer rate allowed when choosing a threshold.",
)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index cache folder [default: OUT/cache].")  # fmt: skip
@click.option("--reindex", is_flag=True, help="Rebuild cached indexes.")
@click.option("--no-plots", is_flag=True, help="Leave the plots out of report.html.")
def eval_command(
    datasets: tuple[Path, ...],
    out: Path,
    variants: tuple[str, ...],
    compare: bool,
    target: float,
    cache: Path | None,
    reindex: bool,
    no_plots: bool,
) -> None:
    """Evaluate retrieval and answering on DATASETS (folders with corpus.jsonl and
    queries.jsonl, or cases files such as eval/cases/sample.jsonl); see docs/eval-datasets.md."""
    from eval.datasets import DatasetError
    from eval.run import EvalError, parse_variants, run_eval
    from retrieval.errors import KBError
    from retrieval.settings import Settings

    try:
        settings = Settings()
    except Exception as exc:  # pydantic's ValidationError names the bad setting
        raise click.ClickException(f"invalid settings: {exc}") from exc
    try:
        run = run_eval(
            list(datasets),
            settings,
            out=out,
            variants=parse_variants(variants, settings),
            compare_previous=compare,
            cache=cache,
            target=target,
            reindex=reindex,
            progress=sys.stderr.isatty(),
            plots=not no_plots,
        )
    except (DatasetError, EvalError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(run.summary)
    click.echo(f"Report: {run.run_dir / 'report.html'}", err=True)
