"""The catalog: every knowledge base, document, chunk, index version and job is a row."""
