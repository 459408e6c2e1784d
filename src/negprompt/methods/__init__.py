"""The OOD methods: the zero-shot scores (MCM & co.), NegPrompt's losses and its two training loops with their
per-epoch curves, checkpoint selection and the official protocol, NegLabel. Each works on cached features and the
text tower."""
