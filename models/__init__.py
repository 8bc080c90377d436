"""GaitLab models: the contract every part shares, and the network definitions.

Importing this package is cheap and never imports torch: the contract (``models.contract``) and
silhouette normalisation (``models.silhouette``) are numpy/OpenCV only, so the service can use them.
Network modules that need torch are imported explicitly by the code that trains or exports them.
"""
