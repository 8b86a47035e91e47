"""One click command per module (prune, distill, export, bench, plan, calibrate, fit).

Each module defines `command` (a click.Command) and imports TensorFlow only inside the command body, so
`edgekit --help` stays fast. `edgekit.cli` registers every module listed in COMMANDS that exists.
"""

COMMANDS = ("prune", "distill", "export", "bench", "plan", "calibrate", "fit")
