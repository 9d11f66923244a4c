"""Training: the full-batch Adam fast path, optimisers on quadratics, the block-diagonal test
problems.
"""

from .adam import SCHEDULES, Checkpoint, TrainResult, checkpoint_steps, lr_schedule, train_adam
from .mlp_grad import MLPGrad, autograd_grad, mlp_names
from .optim import (
    OptRun,
    adam_flat,
    adam_quadratic,
    best_lr,
    blockwise_gd,
    compare_optimizers,
    gd,
    measured_rate,
    optimizer_state_numel,
    predicted_rate,
)
from .quadratics import (
    BlockQuadratic,
    block_quadratic,
    paper_quadratic,
    rescale_spectra,
    spectrum_quantiles,
)
from .speed import compare_adam_speed, textbook_adam_speed

__all__ = [
    "SCHEDULES",
    "Checkpoint",
    "checkpoint_steps",
    "lr_schedule",
    "train_adam",
    "TrainResult",
    "autograd_grad",
    "mlp_names",
    "MLPGrad",
    "adam_flat",
    "adam_quadratic",
    "best_lr",
    "blockwise_gd",
    "compare_optimizers",
    "gd",
    "measured_rate",
    "optimizer_state_numel",
    "OptRun",
    "predicted_rate",
    "block_quadratic",
    "BlockQuadratic",
    "paper_quadratic",
    "rescale_spectra",
    "spectrum_quantiles",
    "compare_adam_speed",
    "textbook_adam_speed",
]
