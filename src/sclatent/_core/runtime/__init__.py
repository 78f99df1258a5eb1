"""Where and how tensors run: device choice and seeding, torch.distributed, mixed precision."""

from .device import resolve_device, seed_everything, seeded_rng
from .distributed import DistributedSetupError, PeerLostError, init_from_env, rank_and_size

__all__ = [
    "DistributedSetupError",
    "PeerLostError",
    "init_from_env",
    "rank_and_size",
    "resolve_device",
    "seed_everything",
    "seeded_rng",
]
