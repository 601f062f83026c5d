"""Pictures: predictions in the scene's 3-D axes and on the sensors, and a browser of a dataset.

Every picture is drawn on its own ``matplotlib.figure.Figure`` (the ``plot`` extra) and returned,
or written by ``save_figure`` / ``animate_predictions``.
"""

from __future__ import annotations

from ..sim import scene_config
from .browser import plot_contact_sheet, plot_sample
from .drawing import save_animation, save_figure
from .predictions import Predictions, animate_predictions, plot_predictions, predict_samples
from .sensors import camera_pixels, lidar_cells, plot_sensor_predictions

__all__ = ["Predictions", "animate_predictions", "camera_pixels", "lidar_cells", "plot_contact_sheet",
           "plot_predictions", "plot_sample", "plot_sensor_predictions", "predict_samples", "save_animation",
           "save_figure", "scene_config"]
