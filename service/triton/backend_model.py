"""Triton python-backend adapter for a SAM-family image encoder: initialize / execute / finalize only.

The model code lives in the `service` package (service.triton.encoder_model over service.runtime.image_encoder),
which must be importable by the backend's stub: locally the launcher (service/triton/launcher.py) puts this
repository and the virtualenv on the stub's path; in production the Triton image has the package installed.
Every model directory holds this same file; its config.pbtxt says which checkpoint and family it serves.
"""

import triton_python_backend_utils as pb_utils

from service.triton.encoder_model import encode_requests, load_encoder, model_id_output, settings_from_triton


class TritonPythonModel:
    def initialize(self, args):
        self.encoder = load_encoder(settings_from_triton(args))
        self.model_id = self.encoder.checkpoint.model_id

    def execute(self, requests):
        images = [pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy() for request in requests]
        sizes = [pb_utils.get_input_tensor_by_name(request, "INPUT_SIZE").as_numpy() for request in requests]
        try:
            outputs = encode_requests(self.encoder, images, sizes)
        except Exception as error:  # one bad batch must not kill the model: answer each request with it
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"encode failed: {error}")) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    *(pb_utils.Tensor(name, tensor) for name, tensor in tensors.items()),
                    pb_utils.Tensor("MODEL_ID", model_id_output(self.model_id, len(image))),
                ]
            )
            for tensors, image in zip(outputs, images, strict=True)
        ]

    def finalize(self):
        del self.encoder
