"""`ragops keys` and `ragops audit`: API keys and the audit log from the command line.

The CLI works on the catalog directly, as the operator of the deployment: it acts as the
bootstrap admin, and its key changes are audited with `key_id` "cli"."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer

from api.cli.helpers import audit_cli, console, fail, print_table, runtime
from api.key_schemas import kbs_value
from api.runtime import Runtime
from core import access, audit
from core.catalog.models import ApiKey
from core.errors import InvalidInput
from core.kbs import kb_names

keys_app = typer.Typer(
    help="API keys: a role (reader, reviewer, owner, admin) over some knowledge bases or all.",
    no_args_is_help=True,
)


def _find(rt: Runtime, ref: str) -> ApiKey:
    with rt.db.session() as s:
        key = access.get_key(session=s, key_id=ref, viewer=access.BOOTSTRAP, by_name=True)
        s.expunge(key)
        return key


def _audit(rt: Runtime, action: str, key: ApiKey) -> None:
    audit_cli(rt, action, target=key.id, name=key.name, role=key.role)


@keys_app.command("create")
def create_cmd(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. support-bot")],
    role: Annotated[str, typer.Option(help="reader, reviewer, owner or admin")],
    kb: Annotated[
        list[str] | None, typer.Option("--kb", help="A KB the key may use (repeat the option)")
    ] = None,
    all_kbs: Annotated[bool, typer.Option("--all-kbs", help="Every KB, present and future")] = (
        False
    ),
) -> None:
    """Create a key and print its secret (shown this once).

    Example: ragops keys create support-bot --role reader --kb handbook
    """
    if bool(kb) == all_kbs:
        fail(InvalidInput("give --kb (one or more) or --all-kbs, not both and not neither"))
    with runtime(models=False) as rt:
        parsed = access.parse_role(role)
        with rt.db.session() as s:
            kb_ids = None if all_kbs else access.resolve_kb_ids(session=s, kbs=kb or [])
            key, secret = access.create_key(session=s, name=name, role=parsed, kb_ids=kb_ids)
            s.expunge(key)
        _audit(rt, "key.create", key)
    console.print(f"created key [bold]{key.name}[/bold] ({key.id}), role {key.role}")
    console.print("secret (shown once, store it now):")
    # The bare secret on stdout's last line, for scripts: `... | tail -1`.
    print(secret)


@keys_app.command("list")
def list_cmd() -> None:
    """Every key: id, name, role, KBs, secret prefix, last use (never the secrets)."""
    with runtime(models=False) as rt, rt.db.session() as s:
        names = kb_names(session=s)
        rows = [
            (
                k.id,
                k.name,
                k.role,
                ", ".join(v) if isinstance(v := kbs_value(k.kbs, names), list) else v,
                k.prefix + "…",
                k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "-",
            )
            for k in access.visible_keys(session=s, viewer=access.BOOTSTRAP)
        ]
    print_table(("id", "name", "role", "kbs", "prefix", "last used"), rows, title="API keys")


@keys_app.command("rotate")
def rotate_cmd(ref: Annotated[str, typer.Argument(help="The key's id or name")]) -> None:
    """A new secret for the key; the old one stops working."""
    with runtime(models=False) as rt:
        found = _find(rt, ref)
        with rt.db.session() as s:
            key = s.get(ApiKey, found.id)
            assert key is not None
            secret = access.rotate_key(session=s, key=key)
        _audit(rt, "key.rotate", found)
    console.print(f"rotated key [bold]{found.name}[/bold] ({found.id}); new secret:")
    print(secret)


@keys_app.command("delete")
def delete_cmd(ref: Annotated[str, typer.Argument(help="The key's id or name")]) -> None:
    """Revoke a key."""
    with runtime(models=False) as rt:
        found = _find(rt, ref)
        with rt.db.session() as s:
            key = s.get(ApiKey, found.id)
            if key is not None:
                s.delete(key)
        _audit(rt, "key.delete", found)
    console.print(f"deleted key {found.name} ({found.id})")


def audit_cmd(
    kb: Annotated[str | None, typer.Option(help="Only this KB's events (name or id)")] = None,
    key_id: Annotated[str | None, typer.Option(help="Only this key's events")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. document.upload, key.create")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, denied or error")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="From this UTC time on, e.g. 2026-12-01T00:00")
    ] = None,
    after: Annotated[int | None, typer.Option(help="After this event id (paging)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON lines, for export")] = False,
) -> None:
    """The audit log, oldest first.

    Example: ragops audit --kb handbook --outcome denied --jsonl > denied.jsonl
    """
    if outcome is not None and outcome not in audit.OUTCOMES:
        fail(InvalidInput(f"--outcome must be one of {', '.join(audit.OUTCOMES)}"))
    with runtime(models=False) as rt, rt.db.session() as s:
        kb_id = None
        if kb:
            kb_id = access.resolve_kb_ids(session=s, kbs=[kb])[0]
        filters = audit.AuditFilter(
            kb_id=kb_id, key_id=key_id, action=action, outcome=outcome, since=since
        )
        events = audit.list_events(session=s, filters=filters, after_id=after, limit=limit)
        names = kb_names(session=s)
        if jsonl:
            sys.stdout.writelines(audit.json_lines(events, names))
            return
        rows = [
            (
                str(e.id),
                e.at.isoformat(timespec="seconds"),
                e.key_id or "-",
                e.action,
                names.get(e.kb_id or "", e.kb_id or "-"),
                e.outcome,
                str(e.status or "-"),
                e.target or "-",
            )
            for e in events
        ]
    print_table(
        ("id", "at (UTC)", "key", "action", "kb", "outcome", "status", "target"),
        rows,
        title="audit log",
    )
