"""`make demo` (``python -m demo.run``): the package's main job on built-in data (scikit-learn's digits), on CPU, no
downloads. Every model is trained by a recipe of ``training/`` run with its command line (:mod:`demo.recipes`).

Two chains of stages run side by side in two processes (``--num_processes``), one torch thread each:

* images: CCT vs ViT-Lite vs an SVC on the digits (:mod:`demo.cct`: held-out accuracy, the CCT saved and reloaded
  with ``pipeline("image-classification")``), then a small ViTok autoencoder on the same digits (:mod:`demo.vitok`:
  held-out PSNR, a reconstruction grid), then a class-conditional DiT on its latents (:mod:`demo.dit`: samples per
  class judged by the demo's CCT, a sample grid);
* videos: a video ViTok and a video DiT on moving digits (:mod:`demo.video`), whose clips the CCT judges frame by
  frame once both chains are done (GIF).

Every stage has a fixed step budget and seed, and every process runs one intra-op thread, so the figures do not
depend on how fast or busy the machine is, nor on how many cores it has: ``taskset -c 0 make demo`` gives the same
figures, only slower. When one chain ends, the other takes its core if the machine leaves it idle
(:func:`take_freed_cores`: twice the intra-op threads). Whether and when that happens depends on the machine, so it
must not change a result: the demo runs MKL's GEMMs in strict conditional-numerical-reproducibility mode
(``MKL_CBWR=AUTO,STRICT``), in which they give the same bits with any number of threads (by default, on some CPUs, a
weight-gradient GEMM sums in another order with two threads, and a video DiT trained with one or two threads differs
after 150 steps). ``results.json`` records the steps
and seconds of every stage. The video chain writes its log to ``video.log`` in the output folder; the image chain
prints to the console.

Every number lands in ``outputs/demo/results.json``; images in ``outputs/demo/``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import accelerate  # noqa: F401  (imported before the workers fork, so that every recipe finds it loaded)
import datasets  # noqa: F401
import torch
import transformers  # noqa: F401

from . import cct, dit, video, vitok

# MKL's strict CNR mode: GEMMs that give the same bits with any number of threads (for MKL 2019.3 and later, at no cost
# measured here). MKL reads it at the process's first GEMM, so it is set before any torch operation.
REPRODUCIBLE_MKL_MODE = "AUTO,STRICT"


def idle_cores(interval: float = 0.5) -> float | None:
    """How many cores the whole machine left idle over the next ``interval`` seconds (``/proc/stat``; ``None``
    where there is none)."""

    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all

    try:
        idle_before, total_before = idle_and_total()
        time.sleep(interval)
        idle_after, total_after = idle_and_total()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return cores * (idle_after - idle_before) / max(total_after - total_before, 1)


def take_freed_cores(
    num_threads: int, cores_freed: multiprocessing.synchronize.Event | None, min_idle_cores: float = 0.5
) -> None:
    """Pool initializer: ``num_threads`` torch threads now, and once ``cores_freed`` is set (the other chain ended),
    as many as this process may use, up to twice ``num_threads`` — if the machine then leaves at least
    ``min_idle_cores`` idle (:func:`idle_cores`). On a core that another program keeps busy, a second torch thread
    waits for it at every operation, and a step takes 10-30x longer than with one thread.

    torch's thread count belongs to the thread that sets it, so the switch is made by a signal handler, which Python
    runs on the main thread between two operations; a watcher thread raises the signal when the event is set. The
    signal is SIGUSR2: the training engine reads SIGTERM and SIGUSR1 as preemption (checkpoint and exit).
    """
    torch.set_num_threads(num_threads)
    if cores_freed is None or not hasattr(signal, "SIGUSR2"):
        return
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    more_threads = min(2 * num_threads, usable_cores)
    signal.signal(signal.SIGUSR2, lambda signum, frame: torch.set_num_threads(more_threads))

    def raise_when_freed() -> None:
        cores_freed.wait()
        idle = idle_cores() if min_idle_cores > 0 else None
        if idle is None or idle >= min_idle_cores:
            signal.raise_signal(signal.SIGUSR2)
        else:
            print(f"[demo] a core was freed, but only {idle:.1f} is idle: staying at {num_threads} thread(s)")

    threading.Thread(target=raise_when_freed, name="take_freed_cores", daemon=True).start()


def image_chain(output_dir: Path) -> dict:
    """CCT, ViTok and the image DiT, one after the other (the DiT needs both)."""
    results: dict = {}
    stages = {
        "cct": lambda: cct.run(output_dir),
        "vitok": lambda: vitok.run(output_dir),
        "dit": lambda: dit.run(output_dir, vitok_path=output_dir / "vitok", classifier_path=output_dir / "cct"),
    }
    for name, stage in stages.items():
        started = time.perf_counter()
        results.update(stage())
        results[f"stage_{name}_seconds"] = round(time.perf_counter() - started, 1)
    return results


def video_chain(output_dir: Path) -> tuple[dict, torch.Tensor]:
    """The video ViTok and video DiT, logging to ``output_dir / "video.log"``."""
    log = open(output_dir / "video.log", "w")  # stays open for the life of this worker process
    os.dup2(log.fileno(), sys.stdout.fileno())
    os.dup2(log.fileno(), sys.stderr.fileno())
    started = time.perf_counter()
    results, clips = video.run(output_dir)
    results["stage_video_seconds"] = round(time.perf_counter() - started, 1)
    results["video_torch_threads_at_end"] = torch.get_num_threads()
    return results, clips


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/demo"))
    parser.add_argument(
        "--num_processes", type=int, choices=(1, 2), default=2,
        help="Run the image and video chains side by side (2) or one after the other (1); the figures are the same.",
    )  # fmt: skip
    parser.add_argument("--num_threads", type=int, default=1, help="torch intra-op threads per process.")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MKL_CBWR", REPRODUCIBLE_MKL_MODE)  # inherited by the workers, which run every GEMM

    started = time.perf_counter()
    results: dict = {
        "torch_threads": args.num_threads, "processes": args.num_processes, "mkl_cbwr": os.environ["MKL_CBWR"],
    }  # fmt: skip
    # Forked workers inherit the imports (torch, transformers, diffusers: seconds per process); nothing here has run a
    # torch operation yet, so no thread pool is forked. Elsewhere fork is unsafe (macOS) or missing (Windows).
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    cores_freed = context.Event() if args.num_processes > 1 else None
    with ProcessPoolExecutor(
        args.num_processes, context, initializer=take_freed_cores, initargs=(args.num_threads, cores_freed)
    ) as pool:
        images = pool.submit(image_chain, args.output_dir)
        videos = pool.submit(video_chain, args.output_dir)
        wait([images, videos], return_when=FIRST_COMPLETED)
        if cores_freed is not None:
            cores_freed.set()
        results.update(images.result())
        print(f"[demo] image stages done; waiting for the video stages (log: {args.output_dir / 'video.log'})")
        video_results, clips = videos.result()
    results.update(video_results)
    results.update(video.judge(args.output_dir, args.output_dir / "cct", clips))
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
