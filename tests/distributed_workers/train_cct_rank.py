"""One rank of tests/test_multinode.py: runs ``training/train_cct.py`` and saves the weights this rank ends with.

Usage: ``torchrun ... train_cct_rank.py OUTPUT_FOLDER <train_cct flags>``; writes ``OUTPUT_FOLDER/rank{R}.safetensors``
and ``OUTPUT_FOLDER/rank{R}.json`` (world size, node rank, the script's results). The prepared model is captured
from ``Accelerator.prepare``, so nothing inside the script is patched.
"""

import json
import os
import sys

from accelerate import Accelerator
from launch import load_training_script  # this folder is the script's own, so on its path
from safetensors.torch import save_file
from torch import nn

prepared = []
original_prepare = Accelerator.prepare


def recording_prepare(self, *objects, **kwargs):
    results = original_prepare(self, *objects, **kwargs)
    returned = results if isinstance(results, tuple) else (results,)
    prepared.extend((self, obj) for obj in returned if isinstance(obj, nn.Module))
    return results


Accelerator.prepare = recording_prepare
results = load_training_script("train_cct").main(sys.argv[2:])
accelerator, model = prepared[0]
rank = int(os.environ["RANK"])
state = {name: value.detach().contiguous() for name, value in accelerator.unwrap_model(model).state_dict().items()}
save_file(state, f"{sys.argv[1]}/rank{rank}.safetensors")
with open(f"{sys.argv[1]}/rank{rank}.json", "w") as handle:
    record = {"world": int(os.environ["WORLD_SIZE"]), "node_rank": int(os.environ["GROUP_RANK"])}
    json.dump(
        {**record, "results": {k: v for k, v in results.items() if isinstance(v, (int, float, str, list))}},
        handle,
    )
