"""`ragops bench index --scale` refuses bad options before it measures anything."""

import pytest
from typer.testing import CliRunner

from api import cli

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ef-search", "abc"], "give whole numbers separated by commas"),
        (["--ef-search", "64,0"], "each ef_search is 1 to 4096"),
        (["--engines", "faiss flat,annoy"], "unknown ['annoy']"),
    ],
)
def test_bad_scale_options_are_a_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli.app, ["bench", "index", "--scale", "2000", *args])
    assert result.exit_code == 2, result.output
    assert message in _text(result.output), result.output


def test_a_scale_that_is_not_a_size_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.app, ["bench", "index", "--scale", "lots"])
    assert result.exit_code == 2
    assert "is not 100k, 1m or a count" in _text(result.output)


def _text(output: str) -> str:
    """The error box's words on one line (rich wraps them inside │ borders)."""
    return " ".join(output.replace("│", " ").split())
