"""What a CTR model is (the protocols), the classifiers we wrote, and the registry of variants."""
