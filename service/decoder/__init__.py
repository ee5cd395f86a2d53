"""The decoder service: prompts against cached embeddings over a bidirectional gRPC stream."""
