"""The baseline of the /retrieve HTTP benchmark: a bare FastAPI hello-world route, served
by uvicorn with the same settings `ragops serve` uses (uvloop and httptools picked up
automatically, no access log).

    python -m tests.bench.hello_app 8001
"""

from __future__ import annotations

import sys

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        log_config=None,
        access_log=False,
    )
