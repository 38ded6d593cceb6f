# One image for every service of the platform. The command chooses the service, for example
#   nameko run --config services/identity/config.yml services.identity.service
#   nameko run --config gateway/config.yml gateway.service
#   python -m services.common.migrate identity
# (docker-compose.yml and deploy/k8s/ set it for each service.) Settings come from the environment:
# see docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (a layer that changes only with pyproject.toml or the constraint set).
COPY pyproject.toml ./
COPY requirements/constraints.txt requirements/constraints.txt
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/dependencies.txt \
    && pip install -c requirements/constraints.txt -r /tmp/dependencies.txt \
    && rm /tmp/dependencies.txt

# The code. Services run from /app (nameko run puts the working directory first on sys.path), so
# config.yml files, migrations and deploy/probe.py are read from this tree.
COPY . .
RUN pip install -c requirements/constraints.txt . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q services gateway deploy

# Never root: a fixed numeric id, so that Kubernetes' runAsNonRoot can check it. The code stays
# owned by root (read-only for the service); only var/ (local-default files) is writable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir -p /app/var \
    && chown app:app /app/var
USER 10001:10001

EXPOSE 8000
CMD ["nameko", "run", "--config", "gateway/config.yml", "gateway.service"]
