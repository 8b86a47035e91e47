"""Tasks: what a model does (classify, multilabel, regress, anomaly, segment, detect, custom) and its metric.

`edgekit fit` scores the teacher and every compressed model with the task's metric, so the accuracy budget
(`--max-accuracy-drop`) means the same thing for every kind of model. Pure numpy; no TensorFlow.

    >>> from edgekit.tasks import Head, detect_task
    >>> detect_task((Head("recon", (128,), "linear"),), input_shape=(128,)).name
    'anomaly'
"""

from edgekit.tasks.custom import load_metric
from edgekit.tasks.heads import heads_of
from edgekit.tasks.task import METRIC_NAMES, TASK_NAMES, Head, Score, Task, detect_task

__all__ = ["METRIC_NAMES", "TASK_NAMES", "Head", "Score", "Task", "detect_task", "heads_of", "load_metric"]
