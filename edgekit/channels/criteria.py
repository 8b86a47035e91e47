"""Names of the channel-importance criteria (one home; the scoring lives in edgekit.prune.importance)."""

CRITERIA = ("l1", "l2", "bn", "taylor")
# Criteria that rank channels from the weights alone, without samples.
DATA_FREE_CRITERIA = ("l1", "l2", "bn")
