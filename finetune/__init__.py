"""Fine-tuning the generator from the documents: RAFT data, knowledge probing, LoRA / prompt tuning."""
