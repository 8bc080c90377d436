"""GaitLab training: CASIA-B data, samplers, losses, the trainer, evaluation, export and the CLI.

Modules that need torch import it themselves; the data layer (``training.data``) is numpy only.
"""
