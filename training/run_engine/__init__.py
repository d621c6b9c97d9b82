"""The training engine of the recipes in ``training/``: one run of a script, from its flags and run folder to its
results (:mod:`.run`), with cluster behaviour: a locked run folder (:mod:`.run_lock`), resumes that refuse changed
flags (:mod:`.run_history`) and preemption signals (:mod:`.preemption`).

It is not part of the hf-compact package: a script run as ``python training/<script>.py`` (or under ``accelerate
launch`` / ``torchrun``) finds it beside itself; the models, data, losses and checkpoint format it uses are the
package's.
"""

from .preemption import PREEMPTED_EXIT_CODE, PREEMPTION_SIGNALS, RunPreempted
from .run import TrainingRun, add_run_arguments, check_run_arguments, prepare_output_dir, updates_per_epoch
from .run_history import RESUME_FLAGS
from .run_lock import RunFolderInUseError

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "PREEMPTION_SIGNALS",
    "RESUME_FLAGS",
    "RunFolderInUseError",
    "RunPreempted",
    "TrainingRun",
    "add_run_arguments",
    "check_run_arguments",
    "prepare_output_dir",
    "updates_per_epoch",
]
