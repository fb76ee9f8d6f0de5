"""API docs pages (Swagger UI at /docs, ReDoc at /redoc) whose assets come from the image.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so they are blank on an
air-gapped cluster. This follows FastAPI's "self-hosting JavaScript and CSS for docs": the
pages are built with `get_swagger_ui_html` / `get_redoc_html` and point at a static mount
of the files the `fastapi-offline` package ships (Swagger UI 5, ReDoc 2, a favicon).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs-assets"
ASSETS_DIRECTORY = Path(str(files("fastapi_offline") / "static"))
# Swagger UI would otherwise ask validator.swagger.io about the spec (an outside host).
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def install_offline_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from local assets (the app must be built with docs_url=None,
    redoc_url=None); every URL honours the request's root_path (a path-prefix proxy)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIRECTORY), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}" if oauth2_redirect_url else None,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=(app.swagger_ui_parameters or {}) | SWAGGER_UI_PARAMETERS,
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_oauth2_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
