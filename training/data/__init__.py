"""CASIA-B data: safe pkl reading, the tree layout, subject partitions, pretreatment, caching.

Everything here is numpy/OpenCV only, so the data commands work on the base install.
"""
