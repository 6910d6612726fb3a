"""Config files, merging, ``--set`` overrides and the TOML round trip."""

import pytest

from gcl_jax import config


def test_merge_and_overrides_round_trip(tmp_path):
    base = {"epochs": 10, "model": {"hidden": 128, "layers": [512, 256]}, "name": "grace"}
    path = tmp_path / "c.toml"
    path.write_text('epochs = 20\n[model]\nhidden = 256\n')
    merged = config.merge(base, config.read(path))
    assert merged == {"epochs": 20, "model": {"hidden": 256, "layers": [512, 256]}, "name": "grace"}
    assert base["epochs"] == 10  # inputs are not mutated
    final = config.apply_overrides(merged, ["epochs=5", "model.layers=[64, 32]", "name=bgrl", "model.hidden=1e-3"])
    assert final["epochs"] == 5 and final["model"]["layers"] == [64, 32] and final["name"] == "bgrl"
    assert final["model"]["hidden"] == pytest.approx(1e-3)
    again = tmp_path / "again.toml"
    again.write_text(config.to_toml(final))
    assert config.read(again) == final


@pytest.mark.parametrize(
    "assignment, message",
    [("epochz=3", "unknown key 'epochz'"), ("epochs", "expected key=value"), ("nope.x=1", "no table 'nope'")],
)
def test_bad_overrides_are_named(assignment, message):
    with pytest.raises(ValueError, match=message):
        config.apply_overrides({"epochs": 1}, [assignment])


def test_bad_file_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("epochs = 3\nlr = = 2\n")
    with pytest.raises(ValueError, match=r"broken.toml: .*line 2"):
        config.read(path)
    with pytest.raises(ValueError, match="config file not found"):
        config.read(tmp_path / "missing.toml")
