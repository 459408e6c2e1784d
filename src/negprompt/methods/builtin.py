"""The built-in methods, one registration each: label, kind, params section, the published ImageNet-1K ViT-B/16
figure (average over iNaturalist / SUN / Places / Textures; each record's `source` names the paper and table it was
read from) and the scoring cost. A method registered without `fn` is scored by the score stage's own code
(pipeline/score.py: trained prompts, mined labels, streams); one with `fn(img, ctx)` by `registry.score_all`, as a
plugin is. The order here is the order of the score table, metrics.json and the report.

The cost is seconds to score 10,000 cached test features, text features ready, one thread (docs/methods.md:
measured with `python benchmarks/analyses/family_choices.py timing` on OpenMoji, 2-core Intel Xeon); a fixed record,
so the report stays the same from run to run. Methods not timed say what they cost relative to one that was.
"""

from negprompt.methods.registry import Published, register, register_published, seal_builtins

ID95 = "id95"  # OOD images accepted at 95% ID recall (ID positive): NegLabel, MCM, LoCoOp and NegPrompt's papers
OOD95 = "ood95"  # OpenOOD v1.5's metric (OOD positive), the OpenOOD-VLM evaluator's

register(
    "mcm",
    None,
    "MCM",
    params="score",
    published=Published(90.77, 42.74, "NegLabel paper, Table 1 (MCM row)", fpr95_convention=ID95),
    cost="0.013",
    prediction="zero_shot_pred",
    headline=True,
)
register(
    "msp",
    None,
    "MSP",
    params="score",
    published=Published(None, None, "no zero-shot figure (NegPrompt's MSP row is CLIPN's fine-tuned head)"),
    cost="as MCM",
)
register(
    "maxlogit",
    None,
    "MaxLogit",
    params="score",
    published=Published(84.17, 67.72, "Meza De la Jara et al., App. K Table 7 (max cosine, MaxLogit's ranking)"),
    cost="as MCM",
    headline=True,
)
register(
    "energy",
    None,
    "Energy",
    params="score",
    published=Published(None, None, "none on scaled logits (36.17 on raw cosines, 80.30 in CoVer: conventions differ)"),
    cost="as MCM",
)
register(
    "neglabel",
    None,
    "NegLabel",
    params="neglabel",
    published=Published(94.21, 25.40, "NegLabel paper, Table 1", fpr95_convention=ID95),
    cost="0.67",
)
register(
    "csp",
    None,
    "CSP",
    params="family.csp",
    published=Published(95.76, 17.51, "CSP paper, abstract / Table 1"),
    cost="0.59",
)
register(
    "adaneg",
    None,
    "AdaNeg",
    kind="stream",
    params="family.adaneg",
    published=Published(96.66, 18.92, "AdaNeg paper (OpenOOD-VLM log 96.70 / 17.95)", fpr95_convention=OOD95),
    cost="0.15 per stream image",
)
register(
    "tanl",
    None,
    "TANL",
    kind="stream",
    params="family.tanl",
    published=Published(None, 9.8, "TANL abstract (FPR95 only)", fpr95_convention=OOD95),
    cost="0.26 per stream image",
)
register(
    "interneg",
    None,
    "InterNeg",
    kind="stream",
    params="family.interneg",
    published=Published(97.43, 14.04, "InterNeg, CVPR 2026", fpr95_convention=OOD95),
    cost="0.12 per stream image + 150 per 10,000 inverted",
)
register(
    "glmcm",
    None,
    "GL-MCM",
    params="score",
    published=Published(90.8, 35.5, "GL-MCM as listed in ../shared/spec/negprompt.md (≈)"),
    cost="as MCM × (1 + patches)",
    local=True,
)
register(
    "coop",
    None,
    "CoOp",
    kind="trained",
    params="pos",
    published=Published(91.78, 51.68, "NegPrompt paper, Table 2", fpr95_convention=ID95),
    cost="as MCM",
    prediction="coop_pred",
    headline=True,
)
register(
    "locoop",
    None,
    "LoCoOp",
    kind="trained",
    params="locoop",
    published=Published(93.52, 28.66, "NegPrompt paper, Table 2", fpr95_convention=ID95),
    cost="as MCM × (1 + patches)",
    prediction="locoop_pred",
    local=True,
)
register(
    "negprompt",
    None,
    "NegPrompt",
    kind="trained",
    params="neg",
    published=Published(94.81, 23.01, "NegPrompt paper, Table 2", fpr95_convention=ID95),
    cost="as MCM × (1 + p)",
    prediction="negprompt_pred",
    headline=True,
)

# Published figures of methods we do not score (InterNeg's summary table, ZhikangXu0112/InterNeg figures/results.png,
# unless the source says otherwise), each with what it needs beyond cached CLIP features.
register_published(
    "ants",
    "ANTS",
    Published(97.75, 11.20, "ANTS, CVPR 2026 (README)"),
    "a multimodal LLM reading the raw test images",
)
register_published(
    "supreme",
    "SUPREME",
    Published(95.54, 20.28, "InterNeg's summary table"),
    "training; no code found",
)
register_published(
    "clipscope",
    "CLIPScope",
    Published(95.30, 20.88, "InterNeg's summary table"),
    "no code found",
)
register_published(
    "negrefine",
    "NegRefine",
    Published(94.83, 21.17, "NegRefine, ICCV 2025 (README, seed 0)"),
    "negative labels refined by an LLM (its committed label files only)",
)
register_published(
    "lapt",
    "LAPT",
    Published(94.68, 23.40, "LAPT, ECCV 2024"),
    "prompts trained on synthesised and retrieved images (its released checkpoint only)",
)
register_published(
    "tins",
    "TINS",
    Published(None, 6.72, "TINS, arXiv 2605.10756 (abstract; no AUROC)"),
    "test-time inversion, 30 steps per batch (not yet implemented here)",
)
seal_builtins()
