"""The decoder's fast path: SAM's prompt encoder and mask decoder as one batched ONNX graph run by ONNX Runtime."""
