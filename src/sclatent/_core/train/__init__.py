"""Training: the one loop every model shares (:mod:`.loop`), and its optional faster steps.

- :mod:`.loop`: minibatch Adam with KL warm-up, validation, early stopping; prediction;
- :mod:`.compilation`: ``torch.compile`` of the step's loss (``sl.settings.compile``);
- :mod:`.cuda_graphs`: steps replayed from CUDA graphs (``sl.settings.cuda_graphs``).
"""

from .loop import TrainingConfig, TrainingDivergedError, evaluate, predict, progress_bar, train

__all__ = ["TrainingConfig", "TrainingDivergedError", "evaluate", "predict", "progress_bar", "train"]
