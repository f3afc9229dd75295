"""The client side: embeddings from Triton, through a Redis cache, for the stream and the API."""
