"""The online learner: one holder of a lease learns the labelled stream and duels encoders."""
