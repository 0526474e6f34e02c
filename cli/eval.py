"""``kb eval`` and ``kb train``: the click commands. Register them on the ``kb`` group with
``main.add_command``; the work is in :func:`eval.run.run_eval` and :func:`eval.train.train`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kb.cli.common import load_settings


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
@click.option(
    "--history",
    is_flag=True,
    help="Replay each dataset's history.jsonl (or --history-share of its questions) through "
    "the feedback paths first; report the test questions with and without it.",
)
@click.option(
    "--history-share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Share of the questions replayed as history when a dataset has no history.jsonl.",
)
@click.option(
    "--feedback-noise",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of the simulated verdicts that are wrong.",
)
@click.option(
    "--named-source",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help='Share of the simulated askers who name the source of a right answer ("This '
    'answered it"); the others give a plain thumbs-up.',
)
@click.option(
    "--learning-curve",
    is_flag=True,
    help="Stream the test questions in order with feedback after each; plot the rates.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the replay.")
@click.option(
    "--splits",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="History splits measured (seeds SEED, SEED+1, ...); the report pools them and lists "
    "each one's figures.",
)
def eval_command(
    datasets: tuple[Path, ...],
    out: Path,
    variants: tuple[str, ...],
    compare: bool,
    target: float,
    cache: Path | None,
    reindex: bool,
    no_plots: bool,
    history: bool,
    history_share: float,
    feedback_noise: float,
    named_source: float,
    learning_curve: bool,
    seed: int,
    splits: int,
) -> None:
    """Evaluate retrieval and answering on DATASETS (folders with corpus.jsonl and
    queries.jsonl, or cases files such as eval/cases/sample.jsonl); see docs/eval-datasets.md."""
    from kb.eval.datasets import DatasetError
    from kb.eval.loop import LoopOptions
    from kb.eval.run import EvalError, parse_variants, run_eval
    from kb.retrieval.errors import KBError

    settings = load_settings()
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
            loop=LoopOptions(
                share=history_share,
                noise=feedback_noise,
                named=named_source,
                seed=seed,
                splits=splits,
                learning_curve=learning_curve,
            )
            if history or learning_curve
            else None,
        )
    except (DatasetError, EvalError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(run.summary)
    click.echo(f"Report: {run.run_dir / 'report.html'}", err=True)


@click.command("train")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("retrieval/trained"),
    show_default=True,
    help="Where ranker.txt, answerability.json and report.json are written.",
)
@click.option(
    "--target",
    type=click.FloatRange(0.0, 1.0),
    default=0.10,
    show_default=True,
    help="Highest wrong-answer rate the threshold allows on every set (out of fold).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Evaluation indexes (default eval-runs/cache, shared with kb eval).",
)
def train_command(datasets: tuple[Path, ...], out: Path, target: float, cache: Path | None) -> None:
    """Train the second-stage ranker and the answerability model on DATASETS (the same
    folders and cases files as kb eval) and measure them on questions they never saw; see
    docs/ranker.md."""
    from kb.eval.datasets import DatasetError, load_dataset
    from kb.eval.train import train, write
    from kb.retrieval.errors import KBError

    settings = load_settings()
    try:
        loaded = [load_dataset(p) for p in datasets]
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        trained = train(
            loaded,
            settings,
            cache=cache or Path("eval-runs") / "cache",
            target=target,
            log=lambda line: click.echo(line, err=True),
        )
    except KBError as exc:
        raise click.ClickException(exc.detail) from exc
    write(trained, out)
    click.echo(json.dumps(trained.report, indent=2, ensure_ascii=False))
    click.echo(f"Wrote {out}/ranker.txt, answerability.json, report.json", err=True)
