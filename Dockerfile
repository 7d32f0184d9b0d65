# syntax=docker/dockerfile:1
# One image for every function. Each Knative Service picks its function with FUNCTION_TARGET and
# FUNCTION_SOURCE (knative/manifests/services/*.yaml); the migration Job runs `growbin migrate`.
ARG PYTHON_VERSION=3.11

# ---- build: install the project and its dependencies (all wheels) into a venv --------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Exactly the locked files (versions and sha256), never what is newest today.
COPY requirements.lock requirements-build.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock \
    -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY functions functions
COPY shared shared
COPY eventing eventing
COPY knative knative
# Non-editable: the code lives in site-packages, byte-compiled now so a cold start does not.
# The wheel holds what runs on the cluster (pyproject.toml): functions, shared, the dead-letter
# sink and the CLI; not the renderers, the local server, broker and cron.
# --no-deps: everything is installed from the lock already; --no-build-isolation: built with the
# locked setuptools, which then leaves the venv together with pip.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --compile . \
 && /opt/venv/bin/pip uninstall --yes setuptools pip

# ---- run: the venv on a clean slim base, no compilers, no sources, not root ------------------
FROM python:${PYTHON_VERSION}-slim
ARG PYTHON_VERSION
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    GROWBIN_MODE=cluster
# The base image's own pip and setuptools are not needed at run time: they go too.
RUN rm -rf /usr/local/lib/python${PYTHON_VERSION}/site-packages/pip* \
    /usr/local/lib/python${PYTHON_VERSION}/site-packages/setuptools* \
    /usr/local/lib/python${PYTHON_VERSION}/site-packages/wheel* \
    /usr/local/lib/python${PYTHON_VERSION}/site-packages/_distutils_hack \
    /usr/local/bin/pip* \
 && groupadd --system --gid 10001 growbin \
 && useradd --system --uid 10001 --gid growbin --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin growbin
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# functions-framework loads FUNCTION_SOURCE as a file path (functions/auth.py): point these
# directories at the installed packages instead of copying the sources a second time.
RUN for package in functions eventing; do \
      ln -s "$(python -c "import $package, os; print(os.path.dirname($package.__file__))")" "$package"; \
    done
USER 10001:10001
EXPOSE 8080
CMD ["functions-framework"]
