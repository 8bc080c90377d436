"""The input contract between data, training, export and the service (numpy only).

A silhouette clip reaches a model as ``uint8 [frames, 64, 44]``: frames in temporal order, values
0–255 (0 background, 255 foreground; intermediate grey values come from resizing), each frame
height-normalised (head on row 0, feet on row 63) and horizontally centred on the median column
of silhouette mass. Datasets store the wider 64×64 *aligned* frame; the 10 outer columns on each
side are cut when frames are handed to a model.
"""

from __future__ import annotations

FRAME_HEIGHT = 64
"""Rows of every aligned and model frame."""

ALIGNED_WIDTH = 64
"""Columns of an aligned frame, as stored in OpenGait pkl trees."""

SIDE_CUT = 10
"""Columns cut from each side of an aligned frame to make a model frame."""

MODEL_WIDTH = ALIGNED_WIDTH - 2 * SIDE_CUT
"""Columns of a model frame (44)."""

ALIGNED_SHAPE = (FRAME_HEIGHT, ALIGNED_WIDTH)
MODEL_SHAPE = (FRAME_HEIGHT, MODEL_WIDTH)

FOREGROUND = 255
"""Value of a fully-on silhouette pixel."""
