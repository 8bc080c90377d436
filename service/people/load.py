"""The pipeline's models, loaded once (each load reads and prepares a few MB)."""

from __future__ import annotations

from service.people.assets import model_path
from service.people.detector import PoseDetector
from service.people.litert import TfliteModel
from service.people.segmenter import PoseSegmenter


def load_models() -> tuple[PoseDetector, PoseSegmenter]:
    detector = PoseDetector(TfliteModel(model_path("pose_detection.tflite")))
    segmenter = PoseSegmenter(TfliteModel(model_path("pose_landmark_full.tflite")))
    return detector, segmenter
