"""``kb``: the command line. Thin commands over :mod:`services`, :mod:`ingest` and
:mod:`eval`, one module per command group (``cli/<group>.py``); settings come from
:func:`cli.common.load_settings`.

User errors print one line (``Error: ...``) and exit 1, never a traceback.
"""

from __future__ import annotations

import click

from kb.retrieval.offline import stay_offline

stay_offline()


@click.group()
@click.version_option("0.1.0", prog_name="kb")
def main() -> None:
    """Knowledge-base assistant: ingest documents, ask questions, serve the API, evaluate."""


def _register() -> None:
    from kb.cli.ask import ask
    from kb.cli.audit import audit
    from kb.cli.auth import tokens, users
    from kb.cli.db import db_group
    from kb.cli.eval import eval_command, train_command
    from kb.cli.ingest import ingest, runs
    from kb.cli.logs import purge_logs
    from kb.cli.serve import serve
    from kb.cli.synonyms import synonyms

    for command in (ingest, runs, ask, serve, purge_logs, audit):
        main.add_command(command)
    main.add_command(eval_command)
    main.add_command(train_command)
    main.add_command(users)
    main.add_command(tokens)
    main.add_command(synonyms)
    main.add_command(db_group)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
