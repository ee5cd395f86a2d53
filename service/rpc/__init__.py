"""The gRPC edge: every module that touches grpc or the generated messages on the server side, plus the channel
options and health check both servers and clients use. Nothing outside this package (and service.client,
the Triton client and the CLIs) imports grpc."""
