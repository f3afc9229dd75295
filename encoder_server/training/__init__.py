"""The fine-tuning trainer: a click-trained projection head and the rule that publishes it."""
