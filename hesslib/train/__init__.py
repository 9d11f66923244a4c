"""Training: the full-batch Adam fast path, optimisers on quadratics, the block-diagonal test
problems.
"""

from . import adam, adam_theory, mlp_grad, optim, quadratics, sgd_vs_adam, speed
from .adam import SCHEDULES, Checkpoint, TrainResult, checkpoint_steps, lr_schedule, train_adam
from .adam_theory import (
    AdamConstants,
    QuadraticReport,
    RTrials,
    Theorem2Check,
    adam_constants,
    preconditioned_kappas,
    quadratic_report,
    r_trials,
    theorem2_check,
)
from .mlp_grad import METHODS, MLPGrad, autograd_grad, flat_gradient, gradient_path, mlp_names
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
    measured_quadratic,
    paper_quadratic,
    rescale_spectra,
    sample_spectrum,
    spectrum_quantiles,
)
from .sgd_vs_adam import (
    OPTIMIZERS,
    GridSearch,
    Run,
    SeedSpread,
    lr_grid_search,
    sample_batch,
    seed_spread,
    steps_to_reach,
    train_run,
    verdict,
)
from .speed import compare_adam_speed, textbook_adam_speed

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [
    *adam.__all__,
    *mlp_grad.__all__,
    *optim.__all__,
    *quadratics.__all__,
    *speed.__all__,
    *adam_theory.__all__,
    *sgd_vs_adam.__all__,
]
