"""How a projection head is trained: one frozen set of parameters, checked once.

:func:`~encoder_server.training.finetune.train_head` and
:class:`~encoder_server.training.head_trainer.HeadTrainer` read their
parameters from a :class:`HeadTrainingConfig`, and the report echoes them
(:meth:`HeadTrainingConfig.settings`), so a parameter is declared, defaulted
and written out in one place. What the run is given besides parameters (the
examples, the head to start from, the new version number, a progress bar) is
not here: those are its inputs, not its settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from encoder_server.projection import Projection
from encoder_server.training.training_set import TrainingSet

__all__ = ["DEFAULT_DIM", "HeadTrainingConfig"]

#: embedding width when neither the config nor a starting head gives one
DEFAULT_DIM = 8


@dataclass(frozen=True)
class HeadTrainingConfig:
    """The parameters of one head training run.

    Attributes
    ----------
    dim:
        Embedding width; ``None``: the starting head's, else :data:`DEFAULT_DIM`.
    seed:
        Seeds the random initial ``W``, the principal subspace's random
        start and the minibatch order.
    epochs, patience:
        At most ``epochs`` passes; stop after ``patience`` epochs without a
        lower validation loss and keep the best epoch's parameters.
    lr:
        Adam step size (``W``'s is scaled, see :mod:`encoder_server.training.head_trainer`).
    weight_decay:
        Precision of the Gaussian prior pulling the per-group coefficients
        ``a[g]`` and biases ``b[g]`` to zero: ``weight_decay * (|a[g]|^2 +
        b[g]^2)`` is added to the training split's *summed* log loss, so it
        holds a small group to the shared effect and fades for a big one.
    holdout, validation:
        Shares of the examples, the latest by ``ts``, held out for the final
        metrics and for early stopping (see :mod:`encoder_server.training.finetune`).
    batch_size:
        Examples per Adam step.
    subspace:
        Train within the top ``subspace`` principal directions of the
        standardised features, whitened (see :mod:`encoder_server.training.whitening`).
    freeze_projection:
        Keep the starting head (or the random map) fixed and train only the
        per-group coefficients: what the online model can get out of the
        current head, the baseline that shows what fine-tuning adds.
    threads:
        torch threads during training (restored after); ``None`` leaves
        torch's setting alone at the cost of bit-exact reproducibility.
    """

    dim: int | None = None
    seed: int = 0
    epochs: int = 30
    lr: float = 0.02
    weight_decay: float = 1.0
    holdout: float = 0.2
    validation: float = 0.1
    batch_size: int = 512
    patience: int = 5
    subspace: int = 256
    freeze_projection: bool = False
    threads: int | None = 1

    def resolve_dim(self, data: TrainingSet, init: Projection | None) -> int:
        """The embedding width to train for ``data`` from ``init``, once all is checked.

        Raises
        ------
        ValueError
            When ``init`` does not fit ``data`` or the width, a count or step
            size is not positive, or the shares are not shares.
        """
        dim = self.dim
        if init is not None:
            dim = init.d_out if dim is None else dim
            if init.d_out != dim or init.d_in != data.d_in:
                raise ValueError(
                    f"init maps {init.d_in}->{init.d_out}, the training needs {data.d_in}->{dim}"
                )
            if init.features != data.feature_kind:
                raise ValueError(f"init projects {init.features!r}, data are {data.feature_kind!r}")
        dim = DEFAULT_DIM if dim is None else dim
        counts = (dim, self.epochs, self.batch_size, self.patience, self.subspace)
        if min(counts) < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("dim, epochs, batch_size, patience, subspace and lr must be positive")
        holdout, validation = self.holdout, self.validation
        if not (0 < holdout < 1 and 0 < validation < 1 and holdout + validation < 1):
            raise ValueError("holdout and validation must be shares in (0, 1) summing below 1")
        return dim

    def settings(
        self,
        *,
        dim: int,
        init: Projection | None,
        subspace: int,
        subspace_variance: float,
        feature_kind: str,
    ) -> dict[str, Any]:
        """The run's settings as the report writes them (``settings`` in its JSON).

        ``dim`` is the width trained (:meth:`resolve_dim`); ``subspace`` and
        ``subspace_variance`` are what the trainer found (the subspace can be
        narrower than asked for, when the features are).
        """
        return {
            "dim": dim,
            "seed": self.seed,
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "holdout": self.holdout,
            "validation": self.validation,
            "batch_size": self.batch_size,
            "patience": self.patience,
            "subspace": subspace,
            "subspace_variance": round(subspace_variance, 6),
            "init": None if init is None else f"{init.kind} v{init.version}",
            "freeze_projection": self.freeze_projection,
            "threads": self.threads,
            "feature_kind": feature_kind,
        }
