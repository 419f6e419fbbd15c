"""`python -m api.cli ...`: the same as the `ragops` script."""

from api.cli import app

app()
