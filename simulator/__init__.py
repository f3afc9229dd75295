"""A seeded traffic simulator with ground truth (pure: no Kafka, no Redis).

``Simulator(SimConfig(seed=7)).messages(n)`` yields what producers would
publish to ``impressions`` and ``clicks``, faults included; ``true_p`` and
``true_ctr`` give the real click probabilities, so oracle metrics and ranking
lifts are exact. ``render_catalogue`` draws the catalogue's images as PNGs.

Modules, one concept each: ``config`` (knobs), ``catalogue`` (items and
variants), ``render`` (images), ``audience`` (segments and hidden
preferences), ``delays`` (click delays), ``faults`` (malformed payloads),
``messages`` (what is handed out), ``shelf`` (popularity and launches),
``traffic`` (the simulator itself),
``labelled`` (the labelled stream without a broker), ``ranking`` (ranking
lift by the true probabilities), ``logging_policy`` (randomised variant
choice with logged propensities, for off-policy evaluation).
"""

from simulator.catalogue import CatalogueEntry
from simulator.config import SimConfig
from simulator.messages import RankingRequest, SimMessage
from simulator.traffic import Simulator

__all__ = ["CatalogueEntry", "RankingRequest", "SimConfig", "SimMessage", "Simulator"]
