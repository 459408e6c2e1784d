"""Benchmarks as tables of image files: ImageNet-1K layouts and their OOD folders, and the two generated
worlds (OpenMoji, the default stand-in benchmark, and the colour x shape mini-world used by the tests) as the
concepts NegLabel's corpus reads; OpenMoji's renderer and the worlds on disk are `negprompt_standin`'s."""
