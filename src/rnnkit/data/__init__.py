"""Data: reading text safely, tokenizers with their vocabularies, and batches for each task."""
