"""The PyTorch twin of each WGSL kernel, one module per op family: plain functions, float32 in,
float32 out. Every public name is re-exported here (`from sagitta_ref.ops import X`).

Pixel convention (SPEC step 6): in input-image pixels the centre of the top-left pixel is (0, 0);
pixel (i, j) covers [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]. Boxes are (x0, y0, x1, y1) in that frame.
Normalized coordinates u in [-1, 1] span a map edge to edge (dsntnn).
"""

from ..anatomy.cervical import NUM_DISCS, disc_corner_indices
from .boxes import boxes_about_mean, boxes_from_coarse, boxes_from_points
from .channel_affine import channel_affine_expand
from .conv2d import (WINOGRAD_AT, WINOGRAD_BT, WINOGRAD_G, conv2d_fused, conv3x3_winograd,
                     winograd_filter)
from .ensemble_mean import ensemble_mean, ensemble_mean_shape
from .texture_grey import texture_grey
from .dsnt import dsnt, dsnt_variance, normalized_linspace, softmax2d, softmax_dsnt
from .global_avg_pool import global_avg_pool
from .grid_sample_crops import grid_sample_crops
from .linear import linear
from .map_back import (GLOBAL_POINT, box_to_input, cervical_landmarks_to_input, cervical_sources,
                       input_to_original, landmarks_to_input, map_back, norm_to_input,
                       refined_to_input, sources_from_groups)
from .minmax import minmax_normalize
from .pool import maxpool2
from .pool2d import pool2d
from .resize import resize_bicubic
from .resize_area import resize_area
from .roi_align import roi_align_ours
from .standardize import standardize, standardize_planes
from .upsample import upsample_add
from .upsample_bilinear import upsample_bilinear, upsample_bilinear_add

__all__ = [
    "NUM_DISCS", "disc_corner_indices",
    "boxes_about_mean", "boxes_from_coarse", "boxes_from_points",
    "WINOGRAD_AT", "WINOGRAD_BT", "WINOGRAD_G", "conv2d_fused", "conv3x3_winograd",
    "winograd_filter",
    "dsnt", "dsnt_variance", "normalized_linspace", "softmax2d", "softmax_dsnt",
    "GLOBAL_POINT", "box_to_input", "cervical_landmarks_to_input", "cervical_sources",
    "input_to_original", "landmarks_to_input", "map_back", "norm_to_input", "refined_to_input",
    "sources_from_groups",
    "maxpool2", "resize_bicubic", "roi_align_ours", "standardize", "standardize_planes",
    "upsample_add",
    "channel_affine_expand", "global_avg_pool", "linear", "minmax_normalize", "resize_area",
    "grid_sample_crops", "pool2d",
    "ensemble_mean", "ensemble_mean_shape", "upsample_bilinear", "upsample_bilinear_add",
    "texture_grey",
]
