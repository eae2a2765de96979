"""The reranker stage: hard negatives, cross-encoder training, and its evaluation on the retriever's top-k."""
