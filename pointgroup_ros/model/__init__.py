"""The PointGroup network on spconv 2, its losses, and checkpoint I/O (incl. the authors' spconv 1.x weights).

- network.py: PointGroup (backbone U-Net, semantic / offset heads, ScoreNet), BackboneOutput
- blocks.py: residual block and U-Net level with the authors' module tree
- voxelize.py: point <-> voxel maps for the backbone and ScoreNet
- losses.py: semantic, offset (L1 + direction) and score losses
- checkpoint.py: load_weights / load_checkpoint / save_checkpoint, spconv 1 -> 2 conversion
"""
from __future__ import annotations

from .checkpoint import (Checkpoint, CheckpointError, check_state_dict, convert_spconv1_state_dict,
                         is_spconv1_layout, load_checkpoint, load_weights, save_checkpoint, spconv1_to_spconv2)
from .losses import (instance_centroids, offset_losses, pointgroup_loss, proposal_ious, score_loss,
                     semantic_loss, soft_score_labels)
from .network import BackboneOutput, PointGroup, count_parameters, set_conv_algo
from .voxelize import Voxels, voxelize_clusters, voxelize_points

__all__ = [
    "BackboneOutput", "Checkpoint", "CheckpointError", "PointGroup", "Voxels", "check_state_dict",
    "convert_spconv1_state_dict", "count_parameters", "instance_centroids", "is_spconv1_layout",
    "load_checkpoint", "load_weights", "offset_losses", "pointgroup_loss", "proposal_ious", "save_checkpoint",
    "score_loss", "semantic_loss", "set_conv_algo", "soft_score_labels", "spconv1_to_spconv2",
    "voxelize_clusters", "voxelize_points",
]
