"""The CLIP side: loading a backbone (open_clip tags, local checkpoints), encoding image files into
features, and the prompt learner over the frozen text tower. Everything that touches the network lives here."""
