"""GaitLab's built-in nets, one file each: the net named ``X`` lives in ``models/nets/X.py``.

Nothing is imported here; ``models.registry`` imports a net's module when the net is asked for.
"""
