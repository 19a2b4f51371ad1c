"""Where admin commands look for their database (`api.cli.runtime`), and what the terminal
shows: secrets, ids and account paths whole, no `<bool>` in --help, a network error that
names its URL, Stripe's missing settings said first, `get_balance` keyword-only."""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

import ledger_sdk
from api.cli import runtime
from api.cli.common import lines_table
from api.cli.root import app
from ledger.settings import Secret, Settings
from ledger.stripe.config import missing_for_sync
from ledger.stripe.model import StripeSettings
from ledger_sdk.errors import network_error


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # ./.ledger is looked for here
    return Settings(state_dir=tmp_path / "state")


def fake_pg(data_dir: Path) -> Path:
    (data_dir / "pg").mkdir(parents=True)
    (data_dir / "pg" / "PG_VERSION").write_text("16\n")
    return data_dir


def record_for(settings: Settings, data_dir: Path, url: str, pid: int | None = None) -> None:
    """A runtime record as `ledger up` writes it; this test process plays the running one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    runtime.write_record(settings, {"data_dir": str(data_dir.resolve()), "database_url": url})
    if pid is not None:
        for path in (data_dir / runtime.RECORD_NAME,
                     *sorted((settings.state_dir / "up").glob("*.json"))):
            values = json.loads(path.read_text())
            values["pid"] = pid
            path.write_text(json.dumps(values))


def test_nothing_found_says_where_it_looked_and_creates_nothing(settings, tmp_path):
    with pytest.raises(runtime.NotFound) as info:
        runtime.locate(settings, None)
    message = str(info.value)
    assert "DATABASE_URL" in message and str(tmp_path / ".ledger") in message
    assert str(tmp_path / "state" / "up") in message
    assert not (tmp_path / ".ledger").exists()


def test_an_explicit_folder_without_data_is_refused(settings, tmp_path):
    with pytest.raises(runtime.NotFound, match=str(tmp_path / "elsewhere")):
        runtime.locate(settings, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_database_url_wins(settings):
    located = runtime.locate(Settings(database_url="postgresql://db/x",
                                      state_dir=settings.state_dir), None)
    assert located.database_url == "postgresql://db/x"


def test_an_existing_folder_is_started_by_the_command(settings, tmp_path):
    fake_pg(tmp_path / ".ledger")
    located = runtime.locate(settings, None)
    assert (located.data_dir, located.database_url) == ((tmp_path / ".ledger"), None)
    assert runtime.locate(settings, fake_pg(tmp_path / "d")).data_dir == tmp_path / "d"


def test_the_running_ledger_up_is_found_from_any_folder(settings, tmp_path):
    record_for(settings, tmp_path / "srv" / "data", "postgresql://up/db")
    located = runtime.locate(settings, None)
    assert located.database_url == "postgresql://up/db"
    assert located.data_dir == (tmp_path / "srv" / "data").resolve()
    assert runtime.find_running(settings, None).pid == os.getpid()
    # Named explicitly, it is found through its own folder's record.
    assert runtime.locate(settings, tmp_path / "srv" / "data").database_url == \
        "postgresql://up/db"


def test_several_running_must_be_chosen_between(settings, tmp_path):
    record_for(settings, tmp_path / "a", "postgresql://a/db")
    record_for(settings, tmp_path / "b", "postgresql://b/db")
    with pytest.raises(runtime.NotFound, match="--data-dir"):
        runtime.locate(settings, None)
    assert runtime.locate(settings, tmp_path / "b").database_url == "postgresql://b/db"


def test_a_dead_ledger_up_is_not_running_and_its_record_goes(settings, tmp_path):
    # The pid of a process that has ended: a `ledger up` that was SIGKILLed.
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    record_for(settings, tmp_path / "gone", "postgresql://gone/db", pid=int(ended.stdout))
    with pytest.raises(runtime.NotFound):
        runtime.locate(settings, None)
    assert list((settings.state_dir / "up").glob("*.json")) == []


def test_records_are_private_and_removed(settings, tmp_path):
    record_for(settings, tmp_path / "p", "postgresql://u:pw@h/db")
    paths = [tmp_path / "p" / runtime.RECORD_NAME, *(settings.state_dir / "up").glob("*.json")]
    assert len(paths) == 2
    assert all(p.stat().st_mode & 0o077 == 0 for p in paths)
    runtime.remove_record(settings, (tmp_path / "p").resolve())
    assert not any(p.exists() for p in paths)


@pytest.mark.parametrize("args", [["--help"], ["login", "--help"], ["entries", "--help"],
                                  ["stripe", "configure", "--help"], ["status", "--help"],
                                  ["api-client", "list", "--help"], ["up", "--help"]])
def test_help_shows_no_type_noise(args):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "Usage:" in result.output


def test_account_paths_and_amounts_fold_rather_than_cut():
    class Line:
        key, currency, type = "user", "USD", None
        account_path = "liabilities/users:alice-with-a-rather-long-identifier/available"
        amount = 123456789012345678901234567890

    console = Console(width=40, record=True, color_system=None)
    console.print(lines_table([Line()]))
    text = console.export_text()
    assert "…" not in text
    body = [row.split("│")[1:-1] for row in text.splitlines() if row.startswith("│")]
    column = ["".join(cells[i].strip() for cells in body) for i in range(5)]
    assert column[1] == Line.account_path
    assert column[2] == str(Line.amount)


def test_a_network_error_names_the_url():
    request = httpx.Request("POST", "http://127.0.0.1:9/graphql")
    error = network_error(httpx.ConnectError("Connection refused", request=request))
    assert error.retryable and "http://127.0.0.1:9/graphql" in error.message
    assert "Connection refused" in error.message


def test_get_balance_takes_only_the_path_positionally():
    for cls in (ledger_sdk.Client, ledger_sdk.SyncClient):
        params = inspect.signature(cls.get_balance).parameters
        assert [n for n, p in params.items()
                if p.kind is p.POSITIONAL_OR_KEYWORD] == ["self", "path"]
        assert {"currency", "at", "ledger"} <= {n for n, p in params.items()
                                                if p.kind is p.KEYWORD_ONLY}
    client = ledger_sdk.SyncClient(client_id="i", client_secret="s",
                                   api_url="http://127.0.0.1:9")
    with pytest.raises(TypeError):
        client.get_balance("assets/bank", "USD")


def test_stripe_says_what_it_misses():
    bare = StripeSettings(link_id="stripe", ledger_ik=None, charge_entry_type=None,
                          fee_entry_type=None, parameters={}, api_key=None,
                          webhook_secret=None)
    missing = missing_for_sync(bare)
    assert len(missing) == 3 and "STRIPE_API_KEY" in missing[0]
    ready = StripeSettings(link_id="stripe", ledger_ik="l", charge_entry_type="deposit",
                           fee_entry_type=None, parameters={}, api_key=Secret("rk_x"),
                           webhook_secret=None)
    assert missing_for_sync(ready) == []
