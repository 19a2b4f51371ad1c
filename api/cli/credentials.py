"""The API connection: login (saves it) and token (prints a fresh access token)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

import ledger_sdk
from api.cli.common import (ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret, JsonOut,
                            api_client, emit_json, out, run, running_up_url,
                            save_config)

app = typer.Typer()


@app.command("login")
def login(ctx: typer.Context, client_id: Annotated[str, typer.Option("--client-id", envvar="LEDGER_CLIENT_ID")],
          client_secret: Annotated[str, typer.Option("--client-secret",
                                                     envvar="LEDGER_CLIENT_SECRET")],
          api_url: Annotated[Optional[str], typer.Option(
              "--api-url", envvar="LEDGER_API_URL",
              help="The API; default: the `ledger up` running on this machine.")] = None,
          auth_url: AuthUrl = None, auth_scope: AuthScope = None,
          verify: Annotated[bool, typer.Option("--verify/--no-verify",
                                               help="Fetch a token to check them first.")] = True):
    """Save the API URL and credentials (mode 0600) for the other commands."""

    def body():
        nonlocal api_url
        api_url = api_url or running_up_url(ctx.obj)
        if verify:
            with ledger_sdk.SyncClient(client_id=client_id, client_secret=client_secret,
                                       api_url=api_url, auth_url=auth_url,
                                       auth_scope=auth_scope, max_retries=2) as client:
                client.token()
        values = {"api_url": api_url, "client_id": client_id, "client_secret": client_secret}
        if auth_url:
            values["auth_url"] = auth_url
        if auth_scope:
            values["auth_scope"] = auth_scope
        path = save_config(ctx.obj, values)
        out.print(f"Logged in to {api_url} as {client_id}; saved to {path}", highlight=False)

    run(body)


@app.command("token")
def token(ctx: typer.Context, api_url: ApiUrl = None, client_id: ClientId = None,
          client_secret: ClientSecret = None, auth_url: AuthUrl = None,
          auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Print a fresh access token (for curl: -H "Authorization: Bearer $(ledger token)")."""

    def body():
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            value = client.token()
        if as_json:
            emit_json({"access_token": value, "token_type": "Bearer"})
        else:
            print(value)

    run(body)
