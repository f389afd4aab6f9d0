"""Checkpoints: released .pt and project .safetensors round-trips, and refusal of bad files."""
from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from helpers import test_seed

from bdh_graph import BDHConfig, CheckpointError
from bdh_graph.model.checkpoints import BUNDLED_MODEL, CHECKPOINT_KEYS, DAMPING_KEY, load_model, save_model
from bdh_graph.model.recipe import BUNDLED_DAMPED_CONFIG

CONFIG = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)


@pytest.fixture
def model(make_model):
    return make_model(CONFIG, test_seed(4), dtype=torch.float32)


def test_released_state_dict_round_trips_strictly(model, tmp_path):
    path = tmp_path / "released.pt"
    torch.save(model.state_dict(), path)  # what the released code's users have
    loaded = load_model(path, n_layer=CONFIG.n_layer, dropout=0.0)
    assert loaded.config == CONFIG
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    idx = torch.randint(0, 256, (1, 9))
    assert torch.equal(loaded(idx)[0], model(idx)[0])


def test_released_n_layer_defaults_to_six_and_compiled_prefix_is_accepted(model, tmp_path):
    path = tmp_path / "compiled.pt"
    torch.save({"_orig_mod." + k: v for k, v in model.state_dict().items()}, path)
    loaded = load_model(path)
    assert loaded.config.n_layer == 6
    assert loaded.config.replace(n_layer=CONFIG.n_layer, dropout=0.0) == CONFIG


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_format_round_trips_bit_exactly(make_model, tmp_path, dtype):
    config = CONFIG.replace(layer_norm=False, dropout=0.25, n_layer=3)
    model = make_model(config, 9, dtype=dtype)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.config == config
    assert loaded.decoder.dtype == dtype
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def _broken(model, tmp_path, edit) -> str:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    edit(state)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.pop("encoder_v"), r"missing keys \['encoder_v'\]"),
    (lambda s: s.update(extra=torch.zeros(1)), r"unexpected keys \['extra'\]"),
    (lambda s: s.update(decoder=torch.zeros(3, 16)), r"decoder has shape \(3, 16\), config expects \(64, 16\)"),
    (lambda s: s["lm_head"].__setitem__((0, 0), float("nan")), "lm_head holds 1 non-finite"),
    (lambda s: s.update(encoder=s["encoder"].long()), "encoder has dtype torch.int64"),
    (lambda s: s.update({"attn.freqs": s["attn.freqs"] * 2}), "attn.freqs differ"),
])
def test_bad_state_dicts_are_refused(model, tmp_path, edit, match):
    with pytest.raises(CheckpointError, match=match):
        load_model(_broken(model, tmp_path, edit), n_layer=2)


def test_config_that_contradicts_the_weights_is_refused(model, tmp_path):
    path = save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"encoder has shape \(2, 16, 32\), config expects \(2, 16, 8\)"):
        load_model(path, mlp_internal_dim_multiplier=1)
    torch.save(model.state_dict(), tmp_path / "r.pt")
    with pytest.raises(ValueError, match="vocab_size=300"):
        load_model(tmp_path / "r.pt", vocab_size=300)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    lie = json.dumps(CONFIG.replace(n_embd=32).to_dict())
    save_file(tensors, str(tmp_path / "lying.safetensors"), metadata={"bdh_config": lie})
    with pytest.raises(ValueError, match="lying.safetensors.*config expects"):
        load_model(tmp_path / "lying.safetensors")


def test_truncated_and_foreign_files_are_refused(model, tmp_path):
    good = save_model(model, tmp_path / "m.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_model(tmp_path / "cut.safetensors")
    torch.save(model.state_dict(), tmp_path / "r.pt")
    data = (tmp_path / "r.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt.*unreadable"):
        load_model(tmp_path / "cut.pt")
    (tmp_path / "notes.txt").write_text("hello, this is not a model\n")
    with pytest.raises(CheckpointError, match="checkpoint '.*notes.txt': not a checkpoint"):
        load_model(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_a_folder_given_as_checkpoint_names_the_file_inside(model, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(CheckpointError, match=rf"checkpoint '{run}' is a folder; give the model file inside it, "
                                              rf"e.g. {run}/model.safetensors"):
        load_model(run)
    torch.save(model.state_dict(), run / "released.pt")
    with pytest.raises(CheckpointError, match=rf"e.g. {run}/released.pt"):
        load_model(run)


def test_pickled_code_is_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"encoder": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="unreadable"):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_failed_save_leaves_the_old_file_intact(model, make_model, tmp_path, monkeypatch):
    path = save_model(model, tmp_path / "m.safetensors")
    before = path.read_bytes()
    bad = make_model(CONFIG, 1, dtype=torch.float32)
    with torch.no_grad():
        bad.decoder[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        save_model(bad, path)
    import bdh_graph.model.checkpoints as ck

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(make_model(CONFIG, 2, dtype=torch.float32), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_the_bundled_model_is_shipped_and_loads():
    # the package data (pyproject's package-data) must hold it: the default of every command loads it
    assert BUNDLED_MODEL.is_file(), f"the bundled model {BUNDLED_MODEL} is missing from the package"
    model = load_model()
    assert model.config == BUNDLED_DAMPED_CONFIG  # the damped model of the recipe's stage 3
    assert set(model.state_dict()) == {*CHECKPOINT_KEYS, DAMPING_KEY}
    assert torch.isfinite(model.time_constants()).all()
    assert BUNDLED_MODEL.stat().st_size <= 10 * 2**20


def test_saved_files_get_the_usual_permissions(model, tmp_path):
    mask = os.umask(0o022)
    try:
        path = save_model(model, tmp_path / "m.safetensors")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
