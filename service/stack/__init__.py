"""`samsvc up`: the whole stack on one machine (Triton, Redis, encoder, decoder)."""
