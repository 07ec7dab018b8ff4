"""The shape of one notebook MLP: what both model builders take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """Input image shape, classes, hidden widths with the dropout rate after each, the recipe
    (`standard`: [0, 1] pixels and softmax; `notebook`: raw 0-255 pixels and sigmoid) and the
    max-norm of each hidden unit's incoming weights (0: off)."""

    input_shape: tuple[int, ...]
    num_classes: int
    hidden_units: tuple[int, ...]
    dropout_rates: tuple[float, ...]
    recipe: str = "standard"
    max_norm: float = 0.0

    def __post_init__(self):
        if len(self.hidden_units) != len(self.dropout_rates):
            raise ValueError("a ModelSpec needs one dropout rate per hidden layer")

    @property
    def output_activation(self) -> str:
        return "softmax" if self.recipe == "standard" else "sigmoid"

    @property
    def scales_input(self) -> bool:
        """Whether the model divides its 0-255 pixels by 255 (the standard recipe)."""
        return self.recipe == "standard"
