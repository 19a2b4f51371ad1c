"""Which server a command talks to, and errors that say so: API commands use the flags, the
saved login, else the `ledger up` running on this machine with the client it created;
admin commands that cannot reach their database name its URL (password hidden), where the
URL came from, and what to do next."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.cli import common, runtime
from api.cli.root import app
from ledger.settings import Settings
from ledger_sdk import errors as sdk_errors


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # ./.ledger is looked for here
    return Settings(state_dir=tmp_path / "state", config_path=tmp_path / "config.json")


def running_up(settings: Settings, data_dir: Path, api_url: str, client: bool = True) -> Path:
    """A `ledger up` on ``data_dir`` as it records itself; this test process plays it."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    runtime.write_record(settings, {"data_dir": str(data_dir), "api_url": api_url,
                                    "database_url": "postgresql://up/db"})
    if client:
        runtime.save_first_client(data_dir, "up-client", "up-secret")
    return data_dir


def failure(call) -> common.Failure:
    with pytest.raises(common.Failure) as info:
        call()
    return info.value


def test_nothing_to_talk_to_says_where_it_looked(settings, tmp_path):
    found = failure(lambda: common.api_target(settings, None, None, None))
    assert found.code == common.EXIT_USAGE
    assert "no API to talk to" in found.message and str(tmp_path / "config.json") in found.message
    assert str(tmp_path / "state" / "up") in found.message and "ledger up" in found.message


def test_the_running_ledger_up_and_its_first_client(settings, tmp_path):
    data_dir = running_up(settings, tmp_path / "srv" / "data", "http://127.0.0.1:8123")
    assert stat.S_IMODE((data_dir / runtime.CLIENT_NAME).stat().st_mode) == 0o600
    target = common.api_target(settings, None, None, None)
    assert (target.url, target.client_id, target.client_secret) == (
        "http://127.0.0.1:8123", "up-client", "up-secret")
    assert str(data_dir) in target.url_from
    assert target.credentials_from == str(data_dir / runtime.CLIENT_NAME)
    # Credentials given explicitly win over the kept ones; the URL is still the server's.
    mine = common.api_target(settings, None, "mine", "pw")
    assert (mine.url, mine.client_id, mine.client_secret) == (
        "http://127.0.0.1:8123", "mine", "pw")


def test_a_running_ledger_up_without_kept_credentials_says_how_to_get_some(settings, tmp_path):
    data_dir = running_up(settings, tmp_path / "old", "http://127.0.0.1:8124", client=False)
    found = failure(lambda: common.api_target(settings, None, None, None))
    assert found.code == common.EXIT_USAGE and "http://127.0.0.1:8124" in found.message
    assert str(data_dir / runtime.CLIENT_NAME) in found.message
    assert "ledger api-client create" in found.message


def test_a_saved_login_and_flags_win_over_the_running_ledger_up(settings, tmp_path):
    running_up(settings, tmp_path / "srv", "http://127.0.0.1:8125")
    common.save_config(settings, {"api_url": "https://ledger.example", "client_id": "saved",
                                  "client_secret": "s"})
    saved = common.api_target(settings, None, None, None)
    assert (saved.url, saved.client_id) == ("https://ledger.example", "saved")
    assert str(tmp_path / "config.json") in saved.url_from
    flagged = common.api_target(settings, "http://other:1", "flag", "f")
    assert (flagged.url, flagged.client_id, flagged.url_from) == (
        "http://other:1", "flag", "--api-url / LEDGER_API_URL")


def test_an_api_error_names_the_server(settings, tmp_path, capsys):
    data_dir = running_up(settings, tmp_path / "srv", "http://127.0.0.1:8126")

    def body():
        common.api_client(settings, None, None, None, None, None)
        raise sdk_errors.AuthenticationError("invalid_client", "unknown client")

    with pytest.raises(typer.Exit) as info:
        common.run(body)
    assert info.value.exit_code == common.EXIT_AUTH
    stderr = " ".join(capsys.readouterr().err.split())
    assert "invalid_client: unknown client" in stderr
    assert (f"talking to the API http://127.0.0.1:8126 (from the `ledger up` running on "
            f"{data_dir}; credentials from {data_dir / runtime.CLIENT_NAME})") in stderr


@pytest.mark.parametrize("args", [["audit", "--ledger", "l"], ["migrate"],
                                  ["api-client", "list"], ["stripe", "problems"]])
def test_an_unreachable_database_is_named_with_what_to_do(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = "postgresql://ledger:hunter2@127.0.0.1:1/ledger"
    result = CliRunner().invoke(app, args, env={"DATABASE_URL": url, "COLUMNS": "300",
                                                "LEDGER_STATE_DIR": str(tmp_path / "s")})
    assert result.exit_code == common.EXIT_TRANSIENT, result.output
    text = " ".join(result.output.split())
    assert "hunter2" not in text
    assert ("cannot reach the database at postgresql://ledger:***@127.0.0.1:1/ledger "
            "(from DATABASE_URL)") in text
    assert "Connection refused" in text and "next: check that PostgreSQL runs" in text
    assert "Redis" not in text


def test_the_kept_client_is_ignored_when_unreadable(tmp_path):
    (tmp_path / runtime.CLIENT_NAME).write_text(json.dumps({"client_id": "x"}))
    assert runtime.first_client(tmp_path) is None
    assert runtime.first_client(tmp_path / "absent") is None


def test_login_without_an_api_url_saves_the_running_ledger_up(settings, tmp_path, monkeypatch):
    running_up(settings, tmp_path / "srv", "http://127.0.0.1:8127")
    env = {"LEDGER_STATE_DIR": str(tmp_path / "state"),
           "LEDGER_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["login", "--client-id", "me", "--client-secret", "pw",
                                      "--no-verify"], env=env)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["api_url"] == "http://127.0.0.1:8127" and saved["client_id"] == "me"


def test_login_with_no_server_anywhere_says_where_it_looked(settings, tmp_path):
    env = {"LEDGER_STATE_DIR": str(tmp_path / "state"),
           "LEDGER_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["login", "--client-id", "me", "--client-secret", "pw",
                                      "--no-verify"], env=env)
    assert result.exit_code == common.EXIT_USAGE, result.output
    assert "no API to talk to" in " ".join(result.output.split())
    assert not (tmp_path / "config.json").exists()


def test_the_command_line_starts_without_the_server_code():
    # ledger.service (SQLAlchemy, the Stripe client...) took half a second to import, and
    # the commands that talk to the API over HTTP never use it: it loads on first use.
    import subprocess
    import sys

    check = ("import sys, api.cli.root; "
             "print(sorted(m for m in ('ledger.service', 'sqlalchemy', 'stripe') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
