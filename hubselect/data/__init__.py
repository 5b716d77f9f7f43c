"""Reading datasets from the Hugging Face Hub."""
