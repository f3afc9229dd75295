"""Serving on Triton: the encoders, their binding, the model repository and its export."""
