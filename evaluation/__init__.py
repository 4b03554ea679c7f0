"""Offline evaluation of retrieval, answers and abstention on SQuAD-style or JSONL question sets."""
