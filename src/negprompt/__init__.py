"""negprompt: learning transferable negative prompts for OOD detection (Li et al., CVPR 2024)."""

__version__ = "0.1.0"


class NegPromptError(Exception):
    """A user-facing error: bad input, bad parameter, missing file. The message names what and where."""
