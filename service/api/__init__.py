"""The HTTP layer: routes, dependencies, schemas and the one place errors become HTTP answers."""
