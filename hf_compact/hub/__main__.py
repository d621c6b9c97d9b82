"""Push a saved model, pipeline or training output folder to the Hub with its model card.

    python -m hf_compact.hub outputs/cct-cifar10 your-name/cct_7_3x1_32-cifar10 --dataset cifar10

The folder's `all_results.json` / `results.json` and `training_config.json` (written by the training scripts) fill
the card's evaluation and training sections. With `--local_dir`, the upload is staged there and kept.
"""

from __future__ import annotations

import argparse

from .push import push_to_hub


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="save_pretrained folder (model, pipeline or a training script's --output_dir)")
    parser.add_argument("repo_id", help="Hub repository, 'user/name'")
    parser.add_argument("--dataset", default=None, help="training dataset (Hub id) for the card's metadata")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--local_dir", default=None, help="empty folder to stage the upload in (kept)")
    parser.add_argument("--commit_message", default="Upload with hf-compact")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--create_pr", action="store_true")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    args = parser.parse_args(argv)
    commit = push_to_hub(
        args.folder,
        args.repo_id,
        dataset=args.dataset,
        license=args.license,
        local_dir=args.local_dir,
        commit_message=args.commit_message,
        private=args.private or None,
        revision=args.revision,
        create_pr=args.create_pr,
        token=args.token,
    )
    print(f"Uploaded {args.folder} to {commit.commit_url}")


if __name__ == "__main__":
    main()
