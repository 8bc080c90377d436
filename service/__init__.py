"""GaitLab service: HTTP identification over an ONNX model and a FAISS + SQLite gallery.

It runs what training exports and never imports torch or the training package.
"""
