"""The stand-in CLIP and its generated benchmarks, a package beside `negprompt` (as open_clip keeps open_clip_train):
the contrastive loop (also how the backbone stage pretrains the mini-world's tiny CLIP), the OpenMoji stand-in's
recipe and captions (`make pretrain` only: the pipeline loads the shipped weights), the regime diagnostics measured
on held-out renders, OpenMoji's renderer and the worlds written to disk (the data stage). It imports `negprompt`,
never the reverse: a user of real CLIP needs none of it."""
