"""A Triton that accepts inference calls and never answers them: what a hung GPU server looks like to the encoder."""

from __future__ import annotations

import asyncio

import grpc

_SERVICE = "inference.GRPCInferenceService"


class HungTriton:
    """A gRPC server on a free loopback port whose ModelInfer never returns; `infer_calls` counts the calls."""

    def __init__(self) -> None:
        self.infer_calls = 0
        self.server = grpc.aio.server()
        self.port = 0

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _hang(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.infer_calls += 1
        await asyncio.sleep(3600)
        return b""

    async def start(self) -> HungTriton:
        handler = grpc.method_handlers_generic_handler(
            _SERVICE, {"ModelInfer": grpc.unary_unary_rpc_method_handler(self._hang)}
        )
        self.server.add_generic_rpc_handlers([handler])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop(0)
