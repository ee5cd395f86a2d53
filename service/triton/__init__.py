"""Triton Inference Server: the local launcher, the async client and what model_repo/'s model.py runs."""
