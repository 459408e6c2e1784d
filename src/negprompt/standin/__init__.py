"""What makes and diagnoses the stand-in CLIPs: the contrastive loop (also how the backbone stage pretrains the
mini-world's tiny CLIP), the OpenMoji stand-in's recipe and captions (`make pretrain` only: the pipeline loads the
shipped weights) and the regime diagnostics measured on held-out renders."""
