"""The `ragops` command line: one group reading the same Settings as the server.

Each command group lives in its own module and shares `api.cli.helpers`; this module only
builds the group and mounts them (in the order `ragops --help` lists them).
"""

from __future__ import annotations

import typer

from api.cli import documents, evals, gates, query, report, server, versions
from api.cli.ab import ab_app
from api.cli.bench import bench_app
from api.cli.erase import erase_cmd
from api.cli.finetune import finetune_cmd
from api.cli.keys import audit_cmd, keys_app
from api.cli.models import models_app
from api.cli.testsets import testset_app

app = typer.Typer(
    help="ragops: versioned RAG indexes with measured answer quality.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("serve")(server.serve)
app.command("ingest")(documents.ingest)
app.command("query")(query.query)
app.add_typer(versions.versions_app, name="versions")
app.command("build")(versions.build)
app.command("promote")(versions.promote_cmd)
app.command("rollback")(versions.rollback_cmd)
app.command("scheduler")(server.scheduler)
app.command("check")(server.check)
app.command("ask")(query.ask)
app.command("eval")(evals.eval_cmd)
app.command("worker")(server.worker)
app.command("report")(report.report)
app.command("decisions")(gates.decisions)
app.command("audit")(audit_cmd)
app.command("erase")(erase_cmd)
app.command("finetune")(finetune_cmd)

app.add_typer(bench_app, name="bench")
app.add_typer(testset_app, name="testset")
app.add_typer(gates.gate_app, name="gate")
app.add_typer(gates.schedule_app, name="schedule")
app.add_typer(ab_app, name="ab")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")

__all__ = ["app"]
