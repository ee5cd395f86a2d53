"""The SAM model runtime: checkpoints, the two model roles, pre- and postprocessing, mask formats."""
