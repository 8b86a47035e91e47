"""Tasks: what a model does (classify, multilabel, regress, anomaly, segment, detect, custom) and its metric.

`edgekit fit` scores the teacher and every compressed model with the task's metric, so the accuracy budget
(`--max-accuracy-drop`) means the same thing for every kind of model. Pure numpy; no TensorFlow.

Detection layout: when the validation .npz (or the data .npz, when no validation file is given) holds
`gt_boxes` (N, M, 4) [y1, x1, y2, x2] and `gt_labels` (N, M) ints with -1 for padding, and the model outputs a
box head (N, A, 4) and a class head (N, A, C) with the same A (probabilities, or logits: softmax is applied when
rows do not sum to 1; no background class), `detect` is scored by mAP@0.5: each anchor is one detection with
class = arg-max and score = its probability, the top 100 per image kept (edgekit.tasks.detection).
Otherwise `detect` scores worst-head fidelity to the teacher.

    >>> from edgekit.tasks import Head, detect_task
    >>> detect_task((Head("recon", (128,), "linear"),), input_shape=(128,)).name
    'anomaly'
"""

from edgekit.tasks.custom import load_metric
from edgekit.tasks.heads import heads_of
from edgekit.tasks.task import METRIC_NAMES, TASK_NAMES, Head, Score, Task, detect_task

__all__ = ["METRIC_NAMES", "TASK_NAMES", "Head", "Score", "Task", "detect_task", "heads_of", "load_metric"]
