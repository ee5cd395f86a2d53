"""SAM inference service: an encoder and a decoder behind gRPC, sharing one model runtime."""
