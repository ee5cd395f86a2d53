# syntax=docker/dockerfile:1
# The encoder and decoder services: one slim CPU image, the role chosen by the command.
#   docker build -t samsvc:0.1.0 .
#   docker run -p 50051:50051 -p 9101:9101 samsvc:0.1.0 encoder --triton-url triton:8001 --redis-url redis://redis:6379/0
#   docker run -p 50052:50052 -p 9102:9102 samsvc:0.1.0 decoder --redis-url redis://redis:6379/0 --checkpoint /models/sam/sam_vit_h_4b8939.pth
# The GPU work runs in Triton (Dockerfile.triton); the decoder's prompt encoder and mask decoder run on the
# CPU, so this image takes torch's CPU wheels (~200 MB instead of ~2.5 GB of CUDA libraries).

# Both stages start from this one image; pin it by digest for a release (the tag moves with every Debian update):
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/samsvc
ENV PATH=/opt/samsvc/bin:$PATH
# torch first, from the CPU index, pinned as in pyproject.toml: `pip install .` then finds it satisfied
# and never pulls the CUDA build from PyPI.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu \
        torch==2.14.1 torchvision==0.29.1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY service ./service
RUN pip install --no-cache-dir . \
    && samsvc --help > /dev/null

FROM ${PYTHON_IMAGE}
# In a container the services listen on every interface (a bare `samsvc encoder` binds loopback only).
ENV PATH=/opt/samsvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAMSVC_HOST=0.0.0.0 \
    SAMSVC_METRICS_HOST=0.0.0.0
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin samsvc
COPY --from=build /opt/samsvc /opt/samsvc
USER 10001:10001
WORKDIR /tmp
# gRPC: encoder 50051, decoder 50052. Prometheus /metrics: encoder 9101, decoder 9102.
EXPOSE 50051 50052 9101 9102
# grpc.health.v1 on 127.0.0.1:$SAMSVC_PORT, or on both default ports when unset (`samsvc health --help`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["samsvc", "health"]
ENTRYPOINT ["samsvc"]
CMD ["encoder"]
