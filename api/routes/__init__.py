"""The HTTP routes, one module per concern; :mod:`api.app` mounts them."""
