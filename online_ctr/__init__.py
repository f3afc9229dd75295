"""Pure learning code: features, River models, progressive metrics. No I/O imports."""
