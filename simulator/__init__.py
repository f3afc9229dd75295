"""A seeded traffic simulator with ground truth (pure: no Kafka, no Redis).

``Simulator(SimConfig(seed=7)).messages(n)`` yields what producers would
publish; ``true_p`` and ``true_ctr`` give the real click probabilities, so
oracle metrics and ranking lifts are exact.
"""

from simulator.catalogue import CatalogueEntry
from simulator.config import SimConfig
from simulator.traffic import RankingRequest, SimMessage, Simulator

__all__ = ["CatalogueEntry", "RankingRequest", "SimConfig", "SimMessage", "Simulator"]
