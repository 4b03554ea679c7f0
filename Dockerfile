# Two images from one file, built with the same Makefile targets a developer uses:
#   docker build --target api -t docqa-api .      docker build --target worker -t docqa-worker .
FROM python:3.11-slim-bookworm AS base
# build-essential: llama-cpp-python (generator.backend llama-cpp) compiles llama.cpp when it installs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 make build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/docqa
COPY pyproject.toml README.md Makefile ./
COPY app app
COPY ingest ingest
COPY configs configs
COPY adapters/reader adapters/reader
# The CPU build of torch; drop TORCH_INDEX to get the CUDA build for a GPU host.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV RAG_STORAGE__DATA_DIR=/data \
    RAG_SERVER__HOST=0.0.0.0 \
    RAG_STORAGE__MODEL_CACHE_DIR=/data/cache/models
VOLUME /data

FROM base AS api
RUN make .venv-api/.installed TORCH_INDEX=$TORCH_INDEX API_EXTRAS=api,dev,llama,onnx,qdrant
EXPOSE 8000
CMD [".venv-api/bin/python", "-m", "app", "serve"]

FROM base AS worker
# Tesseract reads images and scanned PDF pages; LibreOffice converts DOC, ODT, RTF, PPT and ODP.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr libreoffice-writer-nogui libreoffice-impress-nogui \
 && rm -rf /var/lib/apt/lists/*
RUN make .venv-worker/.installed TORCH_INDEX=$TORCH_INDEX
CMD [".venv-worker/bin/python", "-m", "ingest"]
