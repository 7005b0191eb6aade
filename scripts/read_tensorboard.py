"""Reads TensorBoard event files with the tensorboard package's own reader and prints every
scalar as JSON {tag: [[step, value], ...]} (the check of nanoreward's event-file writer).

    python3 scripts/read_tensorboard.py LOGDIR
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
