"""DiTTransformer3DModel: config fields and class ids are checked, naming the field."""

import pytest
import torch

from hf_compact import DiTTransformer3DModel

TINY = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=1, num_embeds_ada_norm=3)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"num_attention_heads": "2"}, TypeError, r"num_attention_heads: expected an int, got '2' \(str\)"),
        ({"attention_head_dim": 8.0}, TypeError, r"attention_head_dim: expected an int, got 8.0 \(float\)"),
        ({"num_layers": -1}, ValueError, r"num_layers: expected an int >= 0, got -1"),
        ({"num_embeds_ada_norm": 0}, ValueError, r"num_embeds_ada_norm: expected an int >= 1, got 0"),
        ({"out_channels": 0}, ValueError, r"out_channels: expected an int >= 1, got 0"),
        ({"sample_size": (4, 4, 4)}, ValueError, r"sample_size: expected an int or 2 ints, got \(4, 4, 4\)"),
        ({"patch_size": (1, 2)}, ValueError, r"patch_size: expected an int or 3 ints, got \(1, 2\)"),
        ({"patch_size": 2.0}, TypeError, r"patch_size: expected an int, got 2.0 \(float\)"),
        ({"mlp_ratio": 0}, ValueError, r"mlp_ratio: expected a finite number > 0, got 0"),
        ({"class_dropout_prob": 1.5}, ValueError, r"class_dropout_prob: expected a probability in \[0, 1\], got 1.5"),
        ({"attention_bias": 1}, TypeError, r"attention_bias: expected True or False, got 1"),
    ],
)
def test_config_fields_are_checked_where_the_config_is_built(overrides, error, match):
    with pytest.raises(error, match=match):
        DiTTransformer3DModel(**{**TINY, **overrides})


@pytest.mark.parametrize("class_id", [-1, 4, 1000])
def test_class_ids_outside_the_classes_and_the_null_class_are_refused(class_id):
    transformer = DiTTransformer3DModel(**TINY).eval()
    latents, timestep = torch.randn(2, 4, 2, 2, 2), torch.tensor([1, 1])
    with pytest.raises(
        ValueError, match=rf"class_labels: expected ids in \[0, 3\] \(3 is the null class\), got {class_id}"
    ):
        transformer(latents, timestep, torch.tensor([0, class_id]))
    with torch.no_grad():
        assert transformer(latents, timestep, torch.tensor([0, 3])).sample.shape == (2, 8, 2, 2, 2)
