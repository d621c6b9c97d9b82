"""`make demo`: the package's main job on built-in data (scikit-learn's digits), on CPU, no downloads.

1. CCT vs ViT-Lite vs an SVC on the digits (``demo_cct``): held-out accuracy, the CCT saved and reloaded
   with ``pipeline("image-classification")``.
2. A small ViTok autoencoder on the same digits (``demo_vitok``): held-out PSNR and a reconstruction grid.
3. A class-conditional DiT on the ViTok latents (``demo_dit``): 10 samples per class, classified by the
   demo's CCT; and a moving-digits video through the video DiT pipeline.

Every stage has a fixed step budget and seed, so the figures do not depend on how fast or busy the machine is
(a slower machine just takes longer); ``results.json`` records the steps and seconds of every stage. Torch runs
one intra-op thread by default (``--num_threads``): the models are so small that a second thread gains at most
1.5x on a quiet machine and loses several times over next to other busy processes, and one thread gives the same
floating-point reductions on every machine, so ``taskset -c 0 make demo`` reproduces the figures.

Every number lands in ``outputs/demo/results.json``; images in ``outputs/demo/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo_cct  # noqa: E402
import demo_dit  # noqa: E402
import demo_vitok  # noqa: E402
import torch  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--num_threads", type=int, default=1, help="torch intra-op threads.")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(args.num_threads)
    started = time.perf_counter()
    results: dict = {"torch_threads": torch.get_num_threads()}
    stages = {
        "cct": lambda: demo_cct.run(args.output_dir),
        "vitok": lambda: demo_vitok.run(args.output_dir),
        "dit": lambda: demo_dit.run(
            args.output_dir, vitok_path=args.output_dir / "vitok", classifier_path=args.output_dir / "cct"
        ),
    }
    for name, stage in stages.items():
        stage_started = time.perf_counter()
        results.update(stage())
        results[f"stage_{name}_seconds"] = round(time.perf_counter() - stage_started, 1)
    results["seconds"] = round(time.perf_counter() - started, 1)

    results_path = args.output_dir / "results.json"
    results_path.write_text(json.dumps(results, indent=2))
    print(f"\nResults ({results_path}):")
    for name, value in results.items():
        if not isinstance(value, dict):
            print(f"  {name:32s} {value}")
    return results


if __name__ == "__main__":
    main()
