"""The built-in methods as data, one record each (`negprompt.methods.registry` registers them): label, kind,
params section, the published ImageNet-1K ViT-B/16 figure (average over iNaturalist / SUN / Places / Textures; each
record's `source` names the paper and table it was read from) and the scoring cost. A method without `fn` is scored
by the score stage's own code (pipeline/score.py: trained prompts, mined labels, streams). The order here is the
order of the score table, metrics.json and the report.

The cost is seconds to score 10,000 cached test features, text features ready, one thread (docs/methods.md:
measured with `python benchmarks/analyses/family_choices.py timing` on OpenMoji, 2-core Intel Xeon); a fixed record,
so the report stays the same from run to run. Methods not timed say what they cost relative to one that was.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """A published figure the leaderboard shows beside ours (None where the source gives none)."""

    auroc: float | None
    fpr95: float | None
    source: str
    images: str = "ImageNet-1K val; iNaturalist, SUN, Places, Textures"  # ID and OOD image lists
    fpr95_convention: str = ""  # "id95": OOD accepted at 95% ID recall; "ood95": OpenOOD v1.5's; "" = not stated


BUILT_IN: list[dict] = []  # registry.register's keywords, one record per method, in the score table's order
PUBLISHED_ONLY: list[dict] = []  # registry.register_published's keywords

ID95 = "id95"  # OOD images accepted at 95% ID recall (ID positive): NegLabel, MCM, LoCoOp and NegPrompt's papers
OOD95 = "ood95"  # OpenOOD v1.5's metric (OOD positive), the OpenOOD-VLM evaluator's

BUILT_IN.append(
    dict(
        name="mcm",
        label="MCM",
        params="score",
        published=Published(90.77, 42.74, "NegLabel paper, Table 1 (MCM row)", fpr95_convention=ID95),
        cost="0.013",
        prediction="zero_shot_pred",
        headline=True,
    )
)
BUILT_IN.append(
    dict(
        name="msp",
        label="MSP",
        params="score",
        published=Published(None, None, "no zero-shot figure (NegPrompt's MSP row is CLIPN's fine-tuned head)"),
        cost="as MCM",
    )
)
BUILT_IN.append(
    dict(
        name="maxlogit",
        label="MaxLogit",
        params="score",
        published=Published(84.17, 67.72, "Meza De la Jara et al., App. K Table 7 (max cosine, MaxLogit's ranking)"),
        cost="as MCM",
        headline=True,
    )
)
BUILT_IN.append(
    dict(
        name="energy",
        label="Energy",
        params="score",
        published=Published(
            None, None, "none on scaled logits (36.17 on raw cosines, 80.30 in CoVer: conventions differ)"
        ),
        cost="as MCM",
    )
)
BUILT_IN.append(
    dict(
        name="neglabel",
        label="NegLabel",
        params="neglabel",
        published=Published(94.21, 25.40, "NegLabel paper, Table 1", fpr95_convention=ID95),
        cost="0.67",
    )
)
BUILT_IN.append(
    dict(
        name="csp",
        label="CSP",
        params="family.csp",
        published=Published(95.76, 17.51, "CSP paper, abstract / Table 1"),
        cost="0.59",
    )
)
BUILT_IN.append(
    dict(
        name="adaneg",
        label="AdaNeg",
        kind="stream",
        params="family.adaneg",
        published=Published(96.66, 18.92, "AdaNeg paper (OpenOOD-VLM log 96.70 / 17.95)", fpr95_convention=OOD95),
        cost="0.15 per stream image",
    )
)
BUILT_IN.append(
    dict(
        name="tanl",
        label="TANL",
        kind="stream",
        params="family.tanl",
        published=Published(None, 9.8, "TANL abstract (FPR95 only)", fpr95_convention=OOD95),
        cost="0.26 per stream image",
    )
)
BUILT_IN.append(
    dict(
        name="interneg",
        label="InterNeg",
        kind="stream",
        params="family.interneg",
        published=Published(97.43, 14.04, "InterNeg, CVPR 2026", fpr95_convention=OOD95),
        cost="0.12 per stream image + 35 per 10,000 inverted",
    )
)
BUILT_IN.append(
    dict(
        name="tins",
        label="TINS",
        kind="stream",
        params="family.tins",  # opt-in: not in the default family.methods
        published=Published(
            None,
            6.72,
            "TINS, arXiv 2605.10756 (abstract; no AUROC); ID positive: eval_tins_w_init.py L1529",
            fpr95_convention=ID95,
        ),
        cost="0.12 per stream image + 570 per 10,000 inverted",  # 3.8 × InterNeg's whole-template one (docs/methods.md)
    )
)
BUILT_IN.append(
    dict(
        name="glmcm",
        label="GL-MCM",
        params="score",
        published=Published(90.8, 35.5, "GL-MCM as listed in ../shared/spec/negprompt.md (≈)"),
        cost="as MCM × (1 + patches)",
        local=True,
    )
)
BUILT_IN.append(
    dict(
        name="coop",
        label="CoOp",
        kind="trained",
        params="pos",
        published=Published(91.78, 51.68, "NegPrompt paper, Table 2", fpr95_convention=ID95),
        cost="as MCM",
        prediction="coop_pred",
        headline=True,
    )
)
BUILT_IN.append(
    dict(
        name="locoop",
        label="LoCoOp",
        kind="trained",
        params="locoop",
        published=Published(93.52, 28.66, "NegPrompt paper, Table 2", fpr95_convention=ID95),
        cost="as MCM × (1 + patches)",
        prediction="locoop_pred",
        local=True,
    )
)
BUILT_IN.append(
    dict(
        name="negprompt",
        label="NegPrompt",
        kind="trained",
        params="neg",
        published=Published(94.81, 23.01, "NegPrompt paper, Table 2", fpr95_convention=ID95),
        cost="as MCM × (1 + p)",
        prediction="negprompt_pred",
        headline=True,
    )
)

# Published figures of methods we do not score (InterNeg's summary table, ZhikangXu0112/InterNeg figures/results.png,
# unless the source says otherwise), each with what it needs beyond cached CLIP features.
PUBLISHED_ONLY.append(
    dict(
        name="ants",
        label="ANTS",
        published=Published(97.75, 11.20, "ANTS, CVPR 2026 (README)"),
        needs="a multimodal LLM reading the raw test images",
    )
)
PUBLISHED_ONLY.append(
    dict(
        name="supreme",
        label="SUPREME",
        published=Published(95.54, 20.28, "InterNeg's summary table"),
        needs="training; no code found",
    )
)
PUBLISHED_ONLY.append(
    dict(
        name="clipscope",
        label="CLIPScope",
        published=Published(95.30, 20.88, "InterNeg's summary table"),
        needs="no code found",
    )
)
PUBLISHED_ONLY.append(
    dict(
        name="negrefine",
        label="NegRefine",
        published=Published(94.83, 21.17, "NegRefine, ICCV 2025 (README, seed 0)"),
        needs="negative labels refined by an LLM (its committed label files only)",
    )
)
PUBLISHED_ONLY.append(
    dict(
        name="lapt",
        label="LAPT",
        published=Published(94.68, 23.40, "LAPT, ECCV 2024"),
        needs="prompts trained on synthesised and retrieved images (its released checkpoint only)",
    )
)
