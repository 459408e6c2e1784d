import numpy as np
import pandas as pd
import pytest
from PIL import Image

from negprompt import NegPromptError
from negprompt.benchmarks.tables import check_class_names, class_folders, open_vocab_classes, sample_fewshot
from negprompt_standin.worlds import read_world


def _pool(k=5, n=20):
    return pd.DataFrame(
        {"path": [f"c{c}/{i}.png" for c in range(k) for i in range(n)], "label": np.repeat(np.arange(k), n)}
    )


def _classes(k=5):
    return pd.DataFrame({"class_id": [f"c{c}" for c in range(k)], "name": [f"class {c}" for c in range(k)]})


def test_fewshot_exact_counts_disjoint_calibration_and_seeds_differ():
    a = sample_fewshot(_pool(), _classes(), shots=16, calib_per_class=3, seed=1)
    b = sample_fewshot(_pool(), _classes(), shots=16, calib_per_class=3, seed=2)
    assert (a[a.split == "train"].groupby("label").size() == 16).all()
    assert (a[a.split == "calib"].groupby("label").size() == 3).all()
    assert not set(a.path[a.split == "train"]) & set(a.path[a.split == "calib"])
    assert set(a.path[a.split == "train"]) != set(b.path[b.split == "train"])
    assert a.equals(sample_fewshot(_pool(), _classes(), shots=16, calib_per_class=3, seed=1))


def test_class_with_too_few_images_is_named():
    pool = _pool()
    pool = pool[~((pool.label == 3) & (pool.index % 20 > 5))]
    with pytest.raises(NegPromptError, match="'c3'.*6 train images, fewer than subset.shots = 16"):
        sample_fewshot(pool, _classes(), shots=16, calib_per_class=0, seed=0)


def test_open_vocab_is_first_ten_percent():
    assert open_vocab_classes(1000, 0.1) == list(range(100))
    assert open_vocab_classes(72, 0.1) == list(range(7))
    assert open_vocab_classes(5, 0.1) == [0]


def test_empty_class_folder_and_missing_root(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "a" / "x.png")
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(NegPromptError, match="train class 'b' folder has no images"):
        class_folders(tmp_path / "train", ["a", "b"], tmp_path, "train")
    with pytest.raises(NegPromptError, match="does not exist"):
        read_world(tmp_path / "nope", "miniworld")


def test_one_name_for_two_classes_is_refused_but_clips_imagenet_list_is_kept():
    """CLIP's cleaned ImageNet names repeat 'missile' and 'sunglasses', as the paper uses them; any other repeat (or
    those two in another list) would give two classes one prompt."""
    import open_clip

    check_class_names(list(open_clip.IMAGENET_CLASSNAMES), "imagenet")
    check_class_names(["red star", "blue ring"], "classes.tsv")
    with pytest.raises(NegPromptError, match=r"classes.tsv: duplicate class names \['missile'\]"):
        check_class_names(["missile", "missile", "star"], "classes.tsv")
