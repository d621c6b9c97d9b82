"""Steps to quality of the demo's DiTs: DiT's DDPM objective vs flow matching, then the samplers of flow matching.

Trains the image DiT and the video DiT of ``make demo`` with each objective (same model, data, seed, batch and EMA;
each objective's demo recipe: its learning rate schedule, and for the video DiT's flow matching its timestep shift;
``training/train_dit.py`` with its command line) and judges the EMA pipeline with the demo's CCT every
``--image_eval_every`` / ``--video_eval_every`` steps (DDPM's constant rate: one run resumed from its checkpoint; flow
matching's cosine decay, which depends on the run's length: one run per evaluation point): class agreement and
Frechet CCT distance (images: the best guidance of a sweep by the demo's rule; videos: per frame). Both objectives
sample with the same solver and number of network evaluations (DPM-Solver++, 2nd order, 25 steps; flow sigmas for
flow matching). It prints a table and the first step at which each objective meets the demo's targets (images:
agreement >= 0.95 with a Frechet CCT distance <= 1.81, videos: agreement >= 0.9), then compares the flow-matching
samplers (flow Euler, DPM-Solver++ and UniPC with flow sigmas) at 10, 16 and 25 steps.

Needs the demo's CCT and ViToks in ``--demo_dir`` (``cct/``, ``vitok/``, ``vitok_video/``, as ``make demo`` leaves
them); missing ones are trained with the demo's stages. Figures depend on steps only, not on the machine's speed.

    python benchmarks/dit_objectives.py --demo_dir outputs/demo
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_TARGET = {"class_agreement": 0.95, "frechet_cct_distance": 1.81}  # the DDPM demo's figure
VIDEO_TARGET = {"class_agreement": 0.9}
SOLVER_STEPS = 25
SAMPLERS = ("euler", "dpmsolver++", "unipc")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo_dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/dit_objectives"))
    parser.add_argument("--objectives", nargs="+", default=["ddpm", "flow_matching"])
    parser.add_argument("--parts", nargs="+", default=["image", "video"], choices=("image", "video"))
    parser.add_argument("--image_steps", type=int, default=1500, help="Most image DiT steps.")
    parser.add_argument("--video_steps", type=int, default=3000, help="Most video DiT steps.")
    parser.add_argument("--image_eval_every", type=int, default=50)
    parser.add_argument("--video_eval_every", type=int, default=100)
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1.5, 2.0, 3.0, 4.0])
    parser.add_argument("--video_guidance_scales", type=float, nargs="+", default=[4.0, 6.0])
    parser.add_argument(
        "--keep_going", action="store_true", help="Train to the most steps even after the target is met."
    )
    parser.add_argument(
        "--sampler_steps", type=int, nargs="*", default=[10, 16, 25], help="None: no sampler comparison."
    )
    parser.add_argument(
        "--extra_flags",
        default="",
        help="More train_dit.py flags for every run, as one string (e.g. '--lr_warmup_steps 50'); they come after "
        "the demo's and override them.",
    )
    return parser.parse_args(argv)


def solver(pipeline, objective: str):
    """DPM-Solver++ (2nd order) for either objective: the DDPM demo's fast sampler, or with flow sigmas."""
    from diffusers import DPMSolverMultistepScheduler

    from hf_compact.dit.samplers import fast_scheduler

    if objective == "ddpm":
        return fast_scheduler(pipeline.scheduler.config)
    return DPMSolverMultistepScheduler(
        num_train_timesteps=pipeline.scheduler.config.num_train_timesteps,
        use_flow_sigmas=True,
        flow_shift=flow_shift_of(pipeline.scheduler),
        prediction_type="flow_prediction",
        solver_order=2,
    )


def flow_shift_of(scheduler) -> float:
    config = scheduler.config
    return config["shift"] if "shift" in config else config["flow_shift"]


def flow_scheduler(name: str, reference):
    """A flow-matching sampler on the noise levels (shift) of ``reference``."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    shift, timesteps = flow_shift_of(reference), reference.config.num_train_timesteps
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=timesteps, shift=shift)
    solver_class = DPMSolverMultistepScheduler if name == "dpmsolver++" else UniPCMultistepScheduler
    return solver_class(
        num_train_timesteps=timesteps,
        use_flow_sigmas=True,
        flow_shift=shift,
        prediction_type="flow_prediction",
        solver_order=2,
    )


def judge_images(pipeline, judge, guidance_scales, steps: int) -> dict:
    from demo.dit import choose_guidance, guidance_sweep

    sweep, _ = guidance_sweep(pipeline, judge, 18, guidance_scales, steps)
    guidance, _ = choose_guidance(sweep)
    return {"guidance_scale": guidance, **sweep[str(guidance)]}


def judge_clips(pipeline, judge, guidance_scales, steps: int) -> dict:
    import torch

    from demo.judge import NUM_CLASSES
    from demo.video import sample_clips

    labels = torch.arange(NUM_CLASSES).repeat_interleave(4)
    rows = [
        {
            "guidance_scale": scale,
            "class_agreement": judge.clip_agreement(sample_clips(pipeline, 4, scale, steps), labels),
        }
        for scale in guidance_scales
    ]
    return max(rows, key=lambda row: row["class_agreement"])


def meets(row: dict, target: dict) -> bool:
    return row["class_agreement"] >= target["class_agreement"] and row.get("frechet_cct_distance", 0) <= target.get(
        "frechet_cct_distance", float("inf")
    )


def pipeline_class(part: str):
    """The pipeline class that loads the DiTs of ``part`` ("image" or "video")."""
    from hf_compact import DiTImagePipeline, DiTVideoPipeline

    return DiTImagePipeline if part == "image" else DiTVideoPipeline


def last_value(flags: list[str], name: str) -> str:
    """The value of the last ``name`` among ``flags`` (a later flag overrides an earlier one, as in argparse)."""
    return flags[len(flags) - flags[::-1].index(name)]


def train_and_judge(part: str, objective: str, args, judge, log) -> list[dict]:
    """Judge a DiT every ``eval_every`` steps; stop at the target unless asked not to.

    With a constant learning rate (after warmup) one run is trained in segments of ``eval_every`` steps and judged
    after each; with a schedule that depends on the run's length (the flow-matching recipe's cosine decay), every
    evaluation point is a run of its own of that many steps, judged at its end (as the demo would train it)."""
    from demo.dit import image_dit_flags
    from demo.recipes import run_recipe
    from demo.video import video_dit_flags

    run_dir = args.output_dir / f"{part}_{objective}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    if part == "image":
        flags_of, vae, most, every = image_dit_flags, args.demo_dir / "vitok", args.image_steps, args.image_eval_every
        target, guidance_scales, judged = IMAGE_TARGET, args.guidance_scales, judge_images
    else:
        flags_of, vae, most, every = (
            video_dit_flags,
            args.demo_dir / "vitok_video",
            args.video_steps,
            args.video_eval_every,
        )
        target, guidance_scales, judged = VIDEO_TARGET, args.video_guidance_scales, judge_clips
    rows = []
    for steps in range(every, most + 1, every):
        flags = flags_of(run_dir, vae, steps, objective) + shlex.split(args.extra_flags)
        if last_value(flags, "--lr_scheduler") in ("constant", "constant_with_warmup"):
            # each segment extends the run: a resume that changes --max_train_steps only
            flags += ["--resume_from_checkpoint", "latest", "--allow_changed_flags", "--checkpoints_total_limit", "1"]
        else:
            flags += ["--overwrite_output_dir"]
        started = time.perf_counter()
        results = run_recipe("train_dit.py", flags)
        train_seconds = time.perf_counter() - started
        folder = Path(flags[flags.index("--output_dir") + 1])
        pipeline = pipeline_class(part).from_pretrained(folder)
        pipeline.set_progress_bar_config(disable=True)
        pipeline.scheduler = solver(pipeline, objective)
        row = {
            "part": part,
            "objective": objective,
            "step": steps,
            **judged(pipeline, judge, guidance_scales, SOLVER_STEPS),
        }
        row["segment_seconds"] = round(train_seconds, 1)
        row["final_train_loss"] = round(results.get("final_loss", results.get("train_loss", float("nan"))), 4)
        rows.append(row)
        log(row)
        if meets(row, target) and not args.keep_going:
            break
    return rows


def compare_samplers(part: str, args, judge, log) -> list[dict]:
    """Every flow-matching sampler at every step count on the last flow-matching DiT of ``part``."""
    folder = args.output_dir / f"{part}_flow_matching" / ("dit" if part == "image" else "dit_video")
    pipeline = pipeline_class(part).from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    saved = pipeline.scheduler
    rows = []
    for name in SAMPLERS:
        for steps in args.sampler_steps:
            pipeline.scheduler = flow_scheduler(name, saved)
            if part == "image":
                row = judge_images(pipeline, judge, args.guidance_scales, steps)
            else:
                row = judge_clips(pipeline, judge, args.video_guidance_scales, steps)
            rows.append({"part": part, "sampler": name, "sampling_steps": steps, **row})
            log(rows[-1])
    return rows


def ensure_demo_models(demo_dir: Path) -> None:
    """Train the demo's CCT, ViTok and video ViTok with the demo's stages where ``demo_dir`` lacks them."""
    from demo import cct, video, vitok

    if not (demo_dir / "cct" / "config.json").is_file():
        cct.run(demo_dir)
    if not (demo_dir / "vitok" / "config.json").is_file():
        vitok.run(demo_dir)
    if not (demo_dir / "vitok_video" / "config.json").is_file():
        video.train_video_vitok(demo_dir)


def first_steps(rows: list[dict], part: str, target: dict) -> dict[str, int | None]:
    firsts = {}
    for row in rows:
        if row["part"] == part and meets(row, target):
            firsts.setdefault(row["objective"], row["step"])
    return firsts


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from demo.judge import DigitJudge

    args.output_dir.mkdir(parents=True, exist_ok=True)
    ensure_demo_models(args.demo_dir)
    judge = DigitJudge(args.demo_dir / "cct")
    log_path = args.output_dir / "rows.jsonl"
    log_path.write_text("")

    def log(row: dict) -> None:
        print(f"[dit_objectives] {row}", flush=True)
        with log_path.open("a") as file:
            file.write(json.dumps(row) + "\n")

    report = {"real_halves_frechet_cct_distance": round(judge.real_halves_distance(), 2), "rows": [], "samplers": []}
    for part in args.parts:
        for objective in args.objectives:
            report["rows"] += train_and_judge(part, objective, args, judge, log)
    for part in args.parts:
        if "flow_matching" in args.objectives and args.sampler_steps:
            report["samplers"] += compare_samplers(part, args, judge, log)

    print(f"\nSteps to quality (DPM-Solver++ {SOLVER_STEPS} steps for both objectives):")
    print(f"{'part':6s} {'objective':14s} {'step':>6s} {'agreement':>10s} {'Frechet CCT':>12s} {'guidance':>9s}")
    for row in report["rows"]:
        print(
            f"{row['part']:6s} {row['objective']:14s} {row['step']:6d} {row['class_agreement']:10.4f} "
            f"{row.get('frechet_cct_distance', float('nan')):12.2f} {row['guidance_scale']:9.1f}"
        )
    for part, target in (("image", IMAGE_TARGET), ("video", VIDEO_TARGET)):
        if part in args.parts:
            report[f"{part}_first_step_at_target"] = first_steps(report["rows"], part, target)
            print(f"first step at the {part} target {target}: {report[f'{part}_first_step_at_target']}")
    print("\nFlow-matching samplers (network evaluations per sample = steps, x2 with guidance):")
    for row in report["samplers"]:
        print(
            f"{row['part']:6s} {row['sampler']:12s} {row['sampling_steps']:3d} steps: agreement "
            f"{row['class_agreement']:.4f}, Frechet CCT {row.get('frechet_cct_distance', float('nan')):.2f}, "
            f"guidance {row['guidance_scale']}"
        )
    (args.output_dir / "results.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
