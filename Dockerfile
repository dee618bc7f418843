# The Voice4EVs backend: one image, run as `v4e csms`, `v4e sim` or `v4e up`.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY libv4e ./libv4e
COPY apps ./apps
RUN pip install '.[apps]' && useradd --create-home v4e && mkdir /data && chown v4e /data
USER v4e
EXPOSE 9000 8000
VOLUME ["/data"]
CMD ["v4e", "csms", "--host", "0.0.0.0", "--db", "/data/v4e.db"]
