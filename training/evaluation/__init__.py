"""Evaluation: the standard CASIA-B rank-1 protocol and its reports.

``protocol`` holds the distances and the protocol itself (numpy only); ``report`` turns a result
into a text table, JSON and heat maps (matplotlib, imported only when plotting) and saves the
embeddings it was computed from. Nothing here imports torch.
"""
