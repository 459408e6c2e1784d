"""What makes and diagnoses the stand-in CLIP of the OpenMoji benchmark: its pretraining recipe and the
regime diagnostics measured on held-out renders. The pipeline loads the shipped weights; no stage trains them."""
