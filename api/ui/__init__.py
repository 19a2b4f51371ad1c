"""The web dashboard under /ui: server-rendered pages (Jinja2 templates and one stylesheet,
shipped in this package: no CDN, no build step) that read through `ledger.service` like the
API, signed in with an API client's id and secret."""
from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from api.ui.actions import router as actions_router
from api.ui.pages import router as pages_router
from api.ui.render import HERE


def install(app: FastAPI) -> None:
    app.include_router(actions_router)
    app.include_router(pages_router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
