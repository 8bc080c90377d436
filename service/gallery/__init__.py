"""The gallery: SQLite is the source of truth, FAISS serves search."""
