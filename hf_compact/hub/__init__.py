"""Model cards and Hub uploads for every model and pipeline of the package.

- :func:`push_to_hub`: save a model / pipeline / training output folder with its code and model card, and upload it
  through one swappable `huggingface_hub.HfApi` client; :func:`save_for_hub` writes the same folder locally;
- :func:`save_pretrained_with_code`: `save_pretrained` plus the modelling code, so that the folder loads with
  `trust_remote_code=True` where hf-compact is not installed;
- :func:`render_model_card`: the card alone (YAML metadata + sections from the family's template in `model_cards/`);
- :func:`count_macs`: multiply-accumulates of one forward pass, as reported in the cards.
"""

from .architecture import Architecture, ComputeCost, count_parameters, describe_architecture
from .families import FAMILIES, CardFamily, card_family
from .macs import MacCount, count_macs
from .model_card import TEMPLATES_DIR, render_model_card, training_recipe
from .push import (
    PushToHubError,
    check_repo_id,
    load_for_push,
    push_to_hub,
    remote_code_registration,
    save_for_hub,
    save_pretrained_with_code,
    upload_folder_to_hub,
)

__all__ = [
    "FAMILIES",
    "TEMPLATES_DIR",
    "Architecture",
    "CardFamily",
    "ComputeCost",
    "MacCount",
    "PushToHubError",
    "card_family",
    "check_repo_id",
    "count_macs",
    "count_parameters",
    "describe_architecture",
    "load_for_push",
    "push_to_hub",
    "remote_code_registration",
    "render_model_card",
    "save_for_hub",
    "save_pretrained_with_code",
    "training_recipe",
    "upload_folder_to_hub",
]
