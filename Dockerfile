# syntax=docker/dockerfile:1
# One image for the Bookstore operator and both services; the command chooses what runs:
#   bookstore-catalog (default) | bookstore-orders | bookstore-operator
# Pods run it as uid/gid 10001 with a read-only root filesystem.

# --- builder: wheels of the project and of every dependency --------------------------------
FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY operator ./operator
RUN pip wheel --wheel-dir /wheels .

# --- final: only the installed packages, no compiler, no pip cache, no wheels ---------------
FROM python:3.11-slim-bookworm AS final
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/bookstore \
    PATH=/opt/bookstore/bin:$PATH
# The wheels are bind-mounted from the builder, so none of them lands in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --no-index --find-links=/wheels /wheels/bookstore_operator-*.whl \
    && "$VIRTUAL_ENV/bin/pip" uninstall --yes pip \
    && groupadd --system --gid 10001 bookstore \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin bookstore
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
CMD ["bookstore-catalog"]
