FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY projections projections
COPY adapters adapters
COPY api api
RUN pip install --no-cache-dir .
RUN useradd --create-home sdh && mkdir /data && chown sdh /data
USER sdh
ENV SDH_DATA_DIR=/data
EXPOSE 8000
CMD ["sdh", "serve", "--host", "0.0.0.0"]
