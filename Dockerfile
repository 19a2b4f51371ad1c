# The image holds exactly what `pip install` ships: the first stage builds the project's
# wheel, the second installs that wheel and nothing else from the source tree, so a package
# or data file left out of pyproject.toml is missing here too, and
# tests/integration/test_wheel.py (the same wheel, in a fresh virtualenv) says so first.

FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The whole build context (.dockerignore keeps out tests, data folders and caches); which
# of it ships is pyproject.toml's decision, not a COPY list's.
COPY . .
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /dist /tmp/dist
RUN pip install /tmp/dist/*.whl && rm -rf /tmp/dist

# Unprivileged at run time. Its home is the working directory: beat writes its schedule
# file there, and `ledger` commands look for their data folder (.ledger) there.
RUN useradd --system --create-home --home-dir /var/lib/ledger ledger
USER ledger
WORKDIR /var/lib/ledger

EXPOSE 8000
# Health checks are per process (API, worker, beat) in docker-compose.yml; the API's is
#   python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=5)"
CMD ["uvicorn", "api.app:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8000"]
