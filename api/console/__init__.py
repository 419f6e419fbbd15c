"""The web console: sign in with an API key, knowledge bases, uploads with live status,
and a playground, served by the API at `/` and `/console/...` (see `routes`)."""

from api.console.routes import router

__all__ = ["router"]
