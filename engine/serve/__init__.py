"""Using the trained models: retrieval, reranking and answers for a query."""
