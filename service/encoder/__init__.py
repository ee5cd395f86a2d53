"""The encoder service: image bytes → a cached SAM embedding (Triton on a miss, Redis always)."""
