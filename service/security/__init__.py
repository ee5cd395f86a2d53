"""Who may call, and what keys a caller can compute: bearer tokens from a file (with tenants) and the server secret
of image keys. Plain Python: the gRPC edge (service.rpc.auth) reads the metadata and asks these."""
