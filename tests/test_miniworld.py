import numpy as np
import pandas as pd

from negprompt.benchmarks import miniworld as mw
from negprompt_standin.worlds import read_world, write_world


def test_world_splits_are_graded_and_disjoint():
    w = mw.build_world(0)
    ids = {c.id for c in w.id_classes}
    near, far, empty = ({c.id for c in w.ood[s]} for s in mw.OOD_SETS)
    assert len(ids) == 72 and not ids & (near | far | empty)
    seen_colours = {c.colour for c in w.id_classes}
    seen_shapes = {c.form for c in w.id_classes}
    # near: unseen combinations of seen attributes; far: unseen shapes; texture: no shape at all
    assert all(c.colour in seen_colours and c.form in seen_shapes for c in w.ood["near"])
    assert all(c.form not in seen_shapes and c.colour not in seen_colours for c in w.ood["far"])
    assert [c.name for c in w.ood["empty"]] == ["empty background"]
    assert all(c.is_texture for c in w.pretrain_only) and set(w.pretrain_only) <= set(w.all_concepts)
    assert all(len(c.name.split()) == 2 for c in w.all_concepts)


def test_world_order_depends_on_seed_only():
    assert mw.build_world(3) == mw.build_world(3)
    assert mw.build_world(3).id_classes != mw.build_world(4).id_classes


def test_render_is_deterministic_and_varies():
    c = mw.Concept("crimson", "star")
    a = mw.render(c, np.random.default_rng(1))
    b = mw.render(c, np.random.default_rng(1))
    d = mw.render(c, np.random.default_rng(2))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, d)


def test_write_miniworld_layout(tmp_path):
    write_world(tmp_path, "miniworld", seed=0, train_per_class=2, test_per_class=1, ood_per_set=1, size=16)
    classes = pd.read_csv(tmp_path / "classes.tsv", sep="\t")
    assert list(classes.columns) == ["class_id", "name"] and len(classes) == 72
    assert classes.name.iloc[0] == mw.build_world(0).id_classes[0].name
    assert len(list((tmp_path / "train" / classes.class_id.iloc[0]).glob("*.png"))) == 2
    bench = read_world(tmp_path, "miniworld")
    assert len(bench.pool) == 144 and (bench.test.set == "id").sum() == 72
    assert bench.ood_sets == ["near", "far", "empty"]
    assert (bench.test.label[bench.test.set != "id"] == -1).all()
    # same seed, same bytes
    other = tmp_path.parent / "again"
    write_world(other, "miniworld", seed=0, train_per_class=2, test_per_class=1, ood_per_set=1, size=16)
    f = bench.pool.path.iloc[5]
    assert (tmp_path / f).read_bytes() == (other / f).read_bytes()
