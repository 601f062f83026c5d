"""The built-in scene generator: renders camera and LiDAR views of random scenes in the course's layout."""

from __future__ import annotations

from .scenes import SceneConfig, generate_scenes, scene_config

__all__ = ["SceneConfig", "generate_scenes", "scene_config"]
