"""docker-compose.yml, Procfile and app.json describe the same processes: each long-running
one restarts and has a health check, and the Procfile platforms' checks are compose's.
tests/integration/test_wheel.py runs compose's commands and checks for real."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
APP = json.loads((REPO / "app.json").read_text())
PROCFILE = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines()
                if line.strip())
# Procfile process type -> the compose service that runs the same program
SAME = {"web": ("api", "uvicorn api.app:app_from_env --factory"),
        "worker": ("worker", "celery -A workers.app worker"),
        "beat": ("beat", "celery -A workers.app beat")}


def test_every_long_running_service_restarts_and_has_a_health_check():
    long_running = {name: s for name, s in SERVICES.items() if name != "migrate"}
    assert {n for n, s in long_running.items() if s.get("restart") != "unless-stopped"} == set()
    assert {n for n, s in long_running.items() if "healthcheck" not in s} == set()
    assert SERVICES["migrate"]["command"] == ["ledger", "migrate"]
    assert PROCFILE["release"] == "ledger migrate"


def test_compose_refuses_to_start_without_a_secret_key():
    for name in ("migrate", "api", "worker", "beat"):
        assert SERVICES[name]["environment"]["LEDGER_SECRET_KEY"].startswith(
            "${LEDGER_SECRET_KEY:?"), name


def test_procfile_processes_match_compose_and_have_app_json_checks():
    processes = set(PROCFILE) - {"release"}
    assert processes == set(SAME)
    assert set(APP["healthchecks"]) == processes == set(APP["formation"])
    # Two beats would run every periodic task twice.
    assert APP["formation"]["beat"]["quantity"] == 1
    for process, (service, program) in SAME.items():
        assert program in PROCFILE[process], process
        assert program in " ".join(SERVICES[service]["command"]), service


def test_app_json_checks_the_workers_as_compose_does():
    kind, text = SERVICES["worker"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    (check,) = APP["healthchecks"]["worker"]
    assert check["command"] == ["sh", "-c", text.replace("$$", "$")]
    web_paths = {c["path"] for c in APP["healthchecks"]["web"]}
    assert web_paths == {"/healthz"}
    assert "/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
