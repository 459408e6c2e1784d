"""The OpenMoji world: its concept table, rendering, the shipped stand-in's recipe and bad input."""

import functools
import json

import numpy as np
import pytest
import torch

from negprompt import NegPromptError
from negprompt.benchmarks import openmoji as om
from negprompt.clip import backbone
from negprompt_standin import captions as cap
from negprompt_standin import contrastive, pretraining, regime
from negprompt_standin import openmoji_render as omr
from negprompt_standin.worlds import read_world, write_world
from tests.helpers import REPO, one_line_error, stage, write_params


def test_table_roles_follow_the_imagenet_benchmark():
    w = om.build_world(0)
    kinds = {c.kind for c in w.id_classes}
    assert len(w.id_classes) >= 200 and kinds == {"animal", "food", "vehicle", "object"}
    assert {c.kind for c in w.ood["near"]} <= kinds and len(w.ood["near"]) >= 30
    assert {c.kind for c in w.ood["plant"]} == {"plant"} and {c.kind for c in w.ood["place"]} == {"place"}
    names = [c.name for c in w.all_concepts]
    assert len(names) == len(set(names))
    assert not {c.name for c in w.id_classes} & {c.name for s in om.OOD_SETS for c in w.ood[s]}
    # open vocabulary trains on the first 10%: at least 20 classes, of several kinds
    assert len({c.kind for c in w.id_classes[:20]}) >= 3
    assert om.build_world(0) == om.build_world(0) and om.build_world(0).id_classes != om.build_world(1).id_classes


def test_name_collision_and_bad_role_are_errors(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("codepoint\tname\tkind\trole\n1F408\tcat\tanimal\tid\n1F431\tCat \tanimal\tnear\n")
    with pytest.raises(NegPromptError, match=r"U\+1F431 is named 'cat' after cleaning, like U\+1F408"):
        om.read_concepts(table)
    table.write_text("codepoint\tname\tkind\trole\n1F408\tcat\tanimal\tmaybe\n")
    with pytest.raises(NegPromptError, match="role 'maybe'"):
        om.read_concepts(table)


def test_font_errors_name_the_file(tmp_path):
    with pytest.raises(NegPromptError, match="nope.ttf"):
        omr.load_font(str(tmp_path / "nope.ttf"))
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"not a font")
    with pytest.raises(NegPromptError, match="bad.ttf: not a readable OpenMoji font"):
        omr.load_font(str(bad))


def test_render_is_a_pure_function_of_the_seed_for_every_style():
    w = om.build_world(0)
    for style in om.STYLE_NAMES:
        a = omr.render(w.id_classes[0], np.random.default_rng(1), 32, style, others=w.all_concepts)
        b = omr.render(w.id_classes[0], np.random.default_rng(1), 32, style, others=w.all_concepts)
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and (a == b).all() and a.std() > 3
    grey = omr.render(w.id_classes[0], np.random.default_rng(2), 32, "greyscale")
    assert np.abs(grey[..., 0].astype(int) - grey[..., 1]).max() <= 30  # noise only
    tex = omr.render(w.ood["texture"][0], np.random.default_rng(3), 32)
    assert tex.shape == (32, 32, 3)


@pytest.mark.parametrize("pattern", list(om.PATTERNS))
def test_texture_patterns_are_outlined_like_the_emoji(pattern):
    """Two colours separated by OpenMoji's near-black line, so textures share the emoji's drawing style."""
    colours = np.unique(np.asarray(omr._texture(pattern, np.random.default_rng(0), om.CANVAS)).reshape(-1, 3), axis=0)
    assert len(colours) == 3 and (colours == 20).all(axis=1).any()


def test_write_world_layout(tmp_path):
    write_world(tmp_path, "openmoji", seed=0, train_per_class=1, test_per_class=1, ood_per_set=4, size=16)
    bench = read_world(tmp_path, "openmoji")
    assert len(bench.classes) >= 200 and bench.ood_sets == list(om.OOD_SETS)
    assert (bench.test.set == "near").sum() == len(om.build_world(0).ood["near"])  # at least one per concept
    assert json.loads((tmp_path / "world.json").read_text())["benchmark"] == "openmoji"


def test_pretraining_recipe_on_a_tiny_configuration(tmp_path):
    """The recipe behind the shipped weights runs end to end: a few steps, a ramped scale, float16
    safetensors and a manifest whose sha256 is the file's."""
    w = om.build_world(0)
    concepts = w.all_concepts[:40]
    small = om.World(concepts[:20], {s: w.ood[s][:3] for s in om.OOD_SETS}, concepts[20:])
    pool, styles = pretraining.render_pool(small, 2, 0, 32)
    model, log = contrastive.pretrain_on_pool(
        backbone.STANDIN_MODEL,
        pool,
        cap.style_captions(small.all_concepts),
        styles,
        steps=3,
        batch_size=16,
        lr=1e-3,
        seed=0,
        device="cpu",
        log_every=1,
    )
    assert (
        [r["step"] for r in log] == [0, 1, 2]
        and log[0]["logit_scale"] == pytest.approx(1 / 0.07)
        and log[-1]["logit_scale"] == pytest.approx(100)
    )
    ids, labels, ood = omr.validation_renders(small, 0, 32, id_per_class=2, ood_per_set=6)
    import open_clip

    diag = regime.diagnose_model(
        model, open_clip.get_tokenizer(backbone.STANDIN_MODEL), [c.name for c in small.id_classes], ids, labels, ood
    )
    assert set(diag["ood"]) == set(om.OOD_SETS) and 0 <= diag["zero_shot_top1"] <= 1
    assert set(diag["sets"]["id"]) == {"n", "max_cos", "mean_cos", "corr_max_mean", "max_z"}

    # phase 2 (web): fresh renders each step at the final scale, textures captioned too
    captioned = small.captioned
    assert any(c.is_texture for c in captioned) and set(small.all_concepts) < set(captioned)

    def sample_batch(rng):
        images, captions = cap.web_batch(captioned, rng, 8, small.all_concepts, 0.5, scenes=small.scenes, scene=0.5)
        assert images.shape == (8, 32, 32, 3) and len(captions) == 8
        return images, captions

    before = model.visual.conv1.weight.detach().clone()
    model, log = contrastive.continue_pretraining(
        model,
        open_clip.get_tokenizer(backbone.STANDIN_MODEL),
        sample_batch,
        steps=2,
        lr=1e-3,
        seed=0,
        device=torch.device("cpu"),
        log_every=1,
    )
    assert [r["step"] for r in log] == [0, 1] and log[0]["logit_scale"] == pytest.approx(100, rel=1e-4)
    assert not torch.equal(before, model.visual.conv1.weight)


def test_worker_processes_render_the_same_pool_and_batches_as_one_process():
    """--workers: phase 1's pool and phase 2's batches come from generators seeded per concept and per step, so the
    rendering processes change where they are drawn, not what is drawn; every step's batch is a fresh one."""
    w = om.build_world(0, vocabulary=om.VOCABULARY_TABLE)
    small = om.World(
        w.id_classes[:6],
        {s: w.ood[s][:2] for s in om.OOD_SETS},
        tuple(c for c in w.pretrain_only if isinstance(c.codepoint, tuple))[:4],
    )  # sequences among them
    assert any(isinstance(c.codepoint, tuple) for c in small.all_concepts)
    one, two = (pretraining.render_pool(small, 3, 7, 32, workers=n) for n in (0, 2))
    assert (
        one[0].shape == (len(small.all_concepts), 3, 32, 32, 3)
        and np.array_equal(one[0], two[0])
        and np.array_equal(one[1], two[1])
    )
    assert not np.array_equal(one[0], pretraining.render_pool(small, 3, 8, 32)[0])  # the seed matters

    sample = functools.partial(
        cap.web_batch,
        small.captioned,
        batch_size=8,
        clutter_from=small.all_concepts,
        noise=0.2,
        scenes=small.scenes,
        scene=0.5,
    )
    streams = [pretraining.step_batches(sample, 3, 0, workers=n) for n in (0, 2)]
    batches = [[s(None) for _ in range(3)] for s in streams]
    for (x0, c0), (x2, c2) in zip(*batches):
        assert x0.shape == (8, 32, 32, 3) and np.array_equal(x0, x2) and c0 == c2
    assert not np.array_equal(batches[0][0][0], batches[0][1][0])
    batches[1][0][0][:, :, ::-1] = 0  # the trainer flips batches in place: they arrive writable
    with pytest.raises(StopIteration):
        streams[0](None)  # `steps` batches, then the stream ends


def test_web_captions_name_the_concept_a_secondary_object_or_nothing():
    w = om.build_world(0)
    rng = np.random.default_rng(0)
    cat = w.id_classes[0]
    caps = [cap.web_sample(cat, rng, w.all_concepts, 0.4)[1] for _ in range(300)]
    named = sum(cat.name in c for c in caps) / len(caps)
    generic = sum(c in cap.GENERIC_CAPTIONS for c in caps) / len(caps)
    assert 0.3 < named < 0.55 and 0.12 < generic < 0.3  # expected 0.4 and 0.2 (+ rare self-clutter)
    assert all(c.endswith(".") or c.endswith("!") for c in caps)
    stripes = w.ood["texture"][0]
    assert cap.web_sample(stripes, rng, w.all_concepts, 0.0)[1].endswith("striped pattern.")
    assert cap.web_sample(cat, rng, w.all_concepts, 0.0)[0].shape == (32, 32, 3)


def test_scene_captions_name_the_object_the_scene_or_both():
    w = om.build_world(0)
    rng = np.random.default_rng(0)
    cat, scenes = w.id_classes[0], w.scenes
    assert {c.kind for c in scenes} == {"place", "texture"}
    samples = [cap.web_sample(cat, rng, w.all_concepts, 0.2, scenes=scenes, scene=1.0) for _ in range(400)]
    caps = [c for _, c in samples]
    names_scene = [any(s.caption_name in c for s in scenes) for c in caps]
    both = sum(f"{cat.name} in front of a " in c for c in caps) / len(caps)
    scene_only = sum(n and cat.name not in c for n, c in zip(names_scene, caps)) / len(caps)
    object_only = sum(not n and cat.name in c for n, c in zip(names_scene, caps)) / len(caps)
    assert 0.42 < both < 0.58 and 0.17 < scene_only < 0.33 and 0.17 < object_only < 0.33  # expected 1/2, 1/4, 1/4
    assert all(im.shape == (32, 32, 3) for im, _ in samples)
    # no scene share: the stream of samples is the one without scenes
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    assert (
        cap.web_sample(cat, a, w.all_concepts, 0.2)[1]
        == cap.web_sample(cat, b, w.all_concepts, 0.2, scenes=scenes, scene=0.0)[1]
    )


def test_plants_can_be_scenes_objects_cannot():
    w = om.build_world(0)
    assert {c.kind for c in w.scenes_from(("place", "texture", "plant"))} == {"place", "texture", "plant"}
    with pytest.raises(NegPromptError, match="near cannot be a scene"):
        w.scenes_from(("plant", "near"))


def test_shipped_weights_match_their_manifest():
    ckpt = REPO / "weights" / f"{backbone.STANDIN_MODEL}.safetensors"
    manifest = json.loads(ckpt.with_suffix(".json").read_text())
    assert manifest["sha256"] == backbone.sha256(ckpt) and ckpt.stat().st_size < 25e6
    assert manifest["validation"]["logit_scale"] == pytest.approx(100, rel=1e-3)


def test_backbone_stage_refuses_a_checkpoint_whose_sha256_differs(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    src = REPO / "weights" / f"{backbone.STANDIN_MODEL}.safetensors"
    data = bytearray(src.read_bytes())
    data[-1] ^= 1
    (weights / src.name).write_bytes(bytes(data))
    (weights / src.with_suffix(".json").name).write_bytes(src.with_suffix(".json").read_bytes())
    write_params(tmp_path)
    res = stage(tmp_path, "backbone")
    one_line_error(res, f"weights/{src.name}: sha256", "does not match")
    assert not (tmp_path / "models/backbone").exists() and not (tmp_path / "reports/backbone.json").exists()


def test_data_stage_refuses_a_missing_font(tmp_path):
    write_params(tmp_path, data={"font": str(tmp_path / "missing.ttf")})
    res = stage(tmp_path, "data")
    one_line_error(res, "missing.ttf", "not a readable OpenMoji font")
    assert not (tmp_path / "data/benchmark").exists()


def test_emoji_sequences_render_as_one_ligature_glyph():
    """U+1F469 U+200D U+1F4BB is the woman technologist (one glyph through Raqm), not a woman beside a laptop."""
    font = str(omr.default_font())
    technologist = omr.glyph((0x1F469, 0x200D, 0x1F4BB), font)
    woman, laptop = omr.glyph(0x1F469, font), omr.glyph(0x1F4BB, font)
    assert technologist.size[0] < 1.3 * technologist.size[1]  # square-ish: one glyph, not two side by side
    assert np.asarray(technologist).shape != np.asarray(woman).shape or not np.array_equal(
        np.asarray(technologist), np.asarray(woman)
    )
    assert not np.array_equal(np.asarray(technologist.resize(laptop.size)), np.asarray(laptop))
    flag = omr.glyph((0x1F1EB, 0x1F1F7), font)  # regional indicators F R: the flag of France, wider than tall
    assert flag.size[0] > flag.size[1]


def test_pretraining_world_adds_the_vocabulary_and_keeps_the_benchmarks_roles():
    bench, full = om.build_world(0), om.build_world(0, vocabulary=om.VOCABULARY_TABLE)
    assert full.id_classes == bench.id_classes and full.ood == bench.ood  # same ID, near, plant, place, texture
    extra = full.pretrain_only[len(bench.pretrain_only) :]
    assert full.pretrain_only[: len(bench.pretrain_only)] == bench.pretrain_only
    rows = om.read_vocabulary()
    assert len(extra) == sum(r == "vocabulary" for _, _, r in rows) > 1000
    assert all(c.role == "pretrain" for c in extra) and any(isinstance(c.codepoint, tuple) for c in extra)
    names = [c.name for c in full.captioned]
    assert len(names) == len(set(names))


def test_vocabulary_share_keeps_the_benchmarks_names_exposure():
    """--vocabulary-share: the pretraining-only vocabulary gets that share of each web batch, the rest goes to the
    concepts the benchmark's world already captions (uniform draws would give the vocabulary its head count)."""
    captioned = om.build_world(0, vocabulary=om.VOCABULARY_TABLE).captioned
    vocab = {c.name for c in captioned if c.kind == "vocabulary"}
    assert len(vocab) > len(captioned) / 2  # uniform draws would give the vocabulary more than half of each batch
    sample_batch = pretraining.vocabulary_share_batches(captioned, 0.25, 16, clutter_from=captioned, noise=0.0)
    images, captions = sample_batch(np.random.default_rng(0))
    longest_first = sorted({c.name for c in captioned}, key=len, reverse=True)  # "cat face" before "cat"
    named = [next(n for n in longest_first if n in cap) for cap in captions]
    assert images.shape == (16, 32, 32, 3) and len(set(named)) == 16 and sum(n in vocab for n in named) == 4
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(NegPromptError, match=f"--vocabulary-share {bad}"):
            pretraining.vocabulary_share_batches(captioned, bad, 16)
    with pytest.raises(NegPromptError, match="both vocabulary and benchmark"):
        pretraining.vocabulary_share_batches(om.build_world(0).captioned, 0.25, 16)


def test_pretrain_rejects_a_bad_vocabulary_share_or_workers_before_any_work(tmp_path):
    out = tmp_path / "w.safetensors"
    one_line_error(
        stage(REPO, "pretrain", "--vocabulary-share", "0.3", "--out", str(out)), "--vocabulary-share needs --vocabulary"
    )
    one_line_error(
        stage(REPO, "pretrain", "--vocabulary", "--vocabulary-share", "1.5", "--out", str(out)),
        "--vocabulary-share 1.5",
        "between 0 and 1",
    )
    one_line_error(stage(REPO, "pretrain", "--workers", "-1", "--out", str(out)), "--workers -1", "0 or more")
    assert not out.exists()


def test_vocabulary_name_collision_is_one_error_naming_both(tmp_path):
    table = tmp_path / "vocabulary.tsv"
    table.write_text("codepoints\tname\trole\n1F600\tgrin\tvocabulary\n1F601-200D-1F4BB\tgrin\tvocabulary\n")
    with pytest.raises(NegPromptError, match=r"1F601-200D-1F4BB and 1F600 are both named 'grin'"):
        om.read_vocabulary(table)


def test_clip_like_checks_each_condition_of_the_shipping_rule():
    d = {
        "average": {
            "neglabel": {"auroc": 82.0, "fpr95": 60.0},
            "mcm": {"auroc": 81.0, "fpr95": 62.0},
            "maxlogit": {"auroc": 70.0, "fpr95": 90.0},
        },
        "zero_shot_top1": 0.61,
        "cos_own": [0.31, 0.05],
    }
    assert all(regime.clip_like(d).values())
    d["average"]["neglabel"]["fpr95"] = 63.0  # ahead in AUROC only: not ahead
    d["zero_shot_top1"] = 0.59
    assert regime.clip_like(d) == {
        "neglabel > mcm": False,
        "mcm > maxlogit": True,
        "top-1 >= 60%": False,
        "own cosine <= .5": True,
    }


def test_trained_on_vocabulary_reads_the_nested_recipe(tmp_path):
    manifest = tmp_path / "w.json"
    manifest.write_text(
        json.dumps(
            {"recipe": {"web": {"steps": 3}, "pool": {"recipe": {"web": {"vocabulary": True}, "pool": {"init": "x"}}}}}
        )
    )
    assert om.trained_on_vocabulary(manifest)
    manifest.write_text(json.dumps({"recipe": {"web": {"vocabulary": False}, "pool": {"init": "x"}}}))
    assert not om.trained_on_vocabulary(manifest) and not om.trained_on_vocabulary(tmp_path / "none.json")
    assert not om.trained_on_vocabulary(REPO / "weights/openmoji-tiny-phase1.json")
