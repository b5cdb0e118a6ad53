"""`ecgfill derive-limb`."""

from __future__ import annotations

from ecgfill.commands._batch import Inputs, OutputDir, OutputFormat, Overwrite, run_file_batch
from ecgfill.commands._common import JsonOutput, Workers, handle_errors

NAME = "derive-limb"
HELP = (
    "Derive the missing limb leads (III, aVR, aVL, aVF ...) exactly from two of I, II, III and "
    "write each record as WFDB; chest leads pass through as measured."
)


@handle_errors
def command(
    inputs: Inputs,
    output_dir: OutputDir,
    overwrite: Overwrite = False,
    output_format: OutputFormat = "wfdb",
    workers: Workers = 1,
    json_output: JsonOutput = False,
) -> None:
    from ecgfill.api import derive_limb_job

    run_file_batch(
        inputs, output_dir, derive_limb_job, fmt=output_format, overwrite=overwrite,
        workers=workers, json_output=json_output, label="Deriving limb leads",
    )
