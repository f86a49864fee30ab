"""Long-term memory (docs/ARCHITECTURE.md, decision 7): documents in Postgres, vectors in Qdrant.

Kept free of imports on purpose: workflows import `aios.memory.messages` through the sandbox,
which must not pull numpy, psycopg or Qdrant in with it. See docs/MEMORY.md.
"""
