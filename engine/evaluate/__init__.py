"""The evaluation stage: IR metrics per Matryoshka dimension, base vs fine-tuned, on held-out and labelled queries."""
