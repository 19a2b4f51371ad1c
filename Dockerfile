FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# ledger/migrate.py finds the Alembic scripts next to the source tree (../migrations), and
# migrations/ is not part of the installed package; importing ledger from /app keeps the
# `ledger migrate` console script pointed at /app/migrations.
ENV PYTHONPATH=/app

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ledger
COPY api api
COPY workers workers
COPY migrations migrations
RUN pip install .

# Unprivileged at run time; beat writes its schedule file into the working directory.
RUN useradd --system --no-create-home ledger && chown ledger /app
USER ledger

EXPOSE 8000
CMD ["uvicorn", "api.app:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8000"]
