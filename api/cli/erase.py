"""`ragops erase`: erase a document, or a data subject's values, from every store, and
print the receipt (the same as the API's; see README "Erasure with a receipt")."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from sqlalchemy import select

from api.cli.helpers import CLI_ACTOR, audit_cli, console, fail, kb_row, runtime
from api.erasure_schemas import VALUE_PATTERN
from core.catalog.models import Document, KnowledgeBase
from core.erasure import MAX_VALUE_LENGTH, MAX_VALUES, MIN_VALUE_LENGTH
from core.errors import InvalidInput, NotFound
from eval.erasure import Scope, erase_documents, erase_subject

VALUE_RE = re.compile(VALUE_PATTERN)


def erase_cmd(
    kb: Annotated[str | None, typer.Option(help="The document's KB (name or id)")] = None,
    document: Annotated[str | None, typer.Option(help="The document id to erase")] = None,
    value: Annotated[
        list[str] | None,
        typer.Option(
            help="A value that identifies the data subject (e-mail, phone, name); repeat "
            "for several. Erases in every knowledge base."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON")] = False,
) -> None:
    """Erase a document (--kb and --document) or a data subject (--value ...) from every
    store: raw bytes, rows, vectors of every index version, answers, feedback, test cases,
    eval results. Prints the receipt."""
    values = list(value or [])
    try:
        _check(kb, document, values)
    except InvalidInput as exc:
        fail(exc)
    with runtime(models=False) as rt:
        if document is not None:
            kb_id = kb_row(rt, kb or "").id
            with rt.db.session() as s:
                doc = s.get(Document, document)
                if doc is None or doc.kb_id != kb_id:
                    fail(NotFound(f"document {document!r} not found in knowledge base {kb!r}"))
            receipt = erase_documents(
                rt, document_ids=[document], scope=Scope([kb_id], True), key_id=CLI_ACTOR
            )
            action = "document.erase"
        else:
            with rt.db.session() as s:
                kb_ids = sorted(s.execute(select(KnowledgeBase.id)).scalars())
            receipt = erase_subject(rt, values=values, scope=Scope(kb_ids, True), key_id=CLI_ACTOR)
            action = "erasure.subject"
        counts = {name: line.get("count", 0) for name, line in receipt["stores"].items()}
        audit_cli(
            rt,
            action,
            kb_id=receipt["kb_ids"][0] if len(receipt["kb_ids"]) == 1 else None,
            target=receipt["id"],
            erasure_id=receipt["id"],
            counts=counts,
            **({"values": len(values)} if values else {}),
        )
    if as_json:
        print(json.dumps(receipt, default=str, indent=1))
        return
    console.print(f"erasure [bold]{receipt['id']}[/bold]: {receipt['status']}")
    for name, count in counts.items():
        console.print(f"  {name}: {count}")


def _check(kb: str | None, document: str | None, values: list[str]) -> None:
    if (document is None) == (not values):
        raise InvalidInput("give either --kb and --document, or one or more --value")
    if document is not None and kb is None:
        raise InvalidInput("--document needs --kb (the document's knowledge base)")
    if len(values) > MAX_VALUES:
        raise InvalidInput(f"at most {MAX_VALUES} values per erase")
    for v in values:
        if not (MIN_VALUE_LENGTH <= len(v) <= MAX_VALUE_LENGTH and VALUE_RE.search(v)):
            raise InvalidInput(
                f"each --value needs {MIN_VALUE_LENGTH}-{MAX_VALUE_LENGTH} characters, three "
                "of them not white space: a shorter one would match far more than one "
                "person's data"
            )
