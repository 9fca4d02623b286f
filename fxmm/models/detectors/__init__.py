"""Localisation: the shared-encoder, per-dataset-decoder DINO."""
from .dino_decoder_branch import DINODecoderBranch
from .shared_dino import SharedDINO

__all__ = ['DINODecoderBranch', 'SharedDINO']
