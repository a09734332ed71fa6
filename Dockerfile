# voxmeter's container image: the wheel, installed in a venv, run by a
# non-root user. The builder stage builds the wheel; the final stage gets
# only that wheel (its dependencies come as binary wheels: no compiler).
#
#   docker build -t voxmeter .
#   docker run --rm -e VOXMETER_DATABASE_URL=postgresql://… voxmeter db upgrade
#   docker run -d -p 8000:8000 -e VOXMETER_DATABASE_URL=postgresql://… voxmeter
#   docker run --rm -p 8000:8000 voxmeter demo --host 0.0.0.0   # SQLite demo
#
# `db upgrade` is its own one-shot run, once per release before the new
# servers start (see compose.yaml): servers refuse a schema that is behind
# rather than migrating it themselves. The base may be any Debian-like
# image with python3 (3.11+) and its venv module; both stages use it.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# The same pin as pyproject.toml's test extra.
RUN python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir build==1.6.1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/build/bin/python -m build --wheel --outdir /dist

FROM ${BASE_IMAGE}
COPY --from=builder /dist/ /tmp/dist/
RUN python3 -m venv /opt/voxmeter \
    && /opt/voxmeter/bin/pip install --no-cache-dir --only-binary=:all: /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/voxmeter --create-home \
        --shell /usr/sbin/nologin voxmeter
ENV PATH=/opt/voxmeter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VOXMETER_DATABASE_URL=sqlite:////var/lib/voxmeter/voxmeter.db
USER voxmeter
WORKDIR /var/lib/voxmeter
EXPOSE 8000
# Ready = the database answers and its schema is current; python, not curl
# (none in the image). urlopen raises on a 503, so the check fails then.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# SIGTERM (the default) lets in-flight calls finish, up to 70 s: give the
# engine's stop timeout more than that (compose.yaml's stop_grace_period).
ENTRYPOINT ["voxmeter"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
