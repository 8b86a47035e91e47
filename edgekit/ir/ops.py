"""Which TFLite builtin ops each runtime can execute (pure data plus two small lookups).

TFLM_BUILTINS is the set of builtin kernels registered by the tflite-micro build edgekit installs
(read from its kernel registration symbols; tests/ir/test_ops.py re-reads them to catch drift).
LiteRT runs every builtin op; what it cannot run without the Flex delegate is `SELECT_TF_OPS`/custom ops.
"""

from __future__ import annotations

# Keras layer classes by what they compute (the IR's op names are Keras class names).
CONV_OPS = frozenset({"Conv1D", "Conv2D", "Conv3D"})
TRANSPOSED_CONV_OPS = frozenset({"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})
DEPTHWISE_OPS = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
SEPARABLE_OPS = frozenset({"SeparableConv1D", "SeparableConv2D"})
DENSE_OPS = frozenset({"Dense"})
MAC_OPS = CONV_OPS | TRANSPOSED_CONV_OPS | DEPTHWISE_OPS | SEPARABLE_OPS | DENSE_OPS
POOL_OPS = frozenset({"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                      "AveragePooling3D"})
GLOBAL_POOL_OPS = frozenset({"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                             "GlobalMaxPooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling3D"})
RESHAPE_OPS = frozenset({"Flatten", "Reshape"})
MERGE_OPS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
ACTIVATION_OPS = frozenset({"Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "ThresholdedReLU"})
# Layers that do no arithmetic (layout, identity at inference, or a copy at most).
NO_MATH_OPS = frozenset({"InputLayer", "Flatten", "Reshape", "Permute", "Dropout", "SpatialDropout1D",
                         "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                         "ActivityRegularization", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
                         "Cropping2D", "Concatenate", "RepeatVector", "Embedding"})
# TFOpLambda functions (tf_keras's record of `x + 3.0`, `tf.nn.relu6(x)` ...) that act element by element:
# with only scalar operands besides one tensor they pass channels through unchanged.
ELEMENTWISE_TF_FUNCTIONS = frozenset({
    "__operators__.add", "math.add", "__operators__.sub", "math.subtract", "math.multiply",
    "__operators__.truediv", "math.truediv", "math.divide", "math.negative", "__operators__.neg", "math.abs",
    "math.square", "math.sqrt", "math.rsqrt", "math.exp", "math.sigmoid", "math.tanh", "math.maximum",
    "math.minimum", "clip_by_value", "nn.relu", "nn.relu6", "nn.silu", "nn.swish", "nn.gelu", "nn.elu",
    "nn.leaky_relu", "nn.sigmoid", "cast", "identity",
})
FOLDABLE_INTO = MAC_OPS  # BatchNormalization right after these folds into their kernel and bias

KERNEL_ROLES = frozenset({"kernel", "recurrent_kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"})

TFLM_BUILTINS = frozenset([
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL",
    "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CONCATENATION", "CONV_2D",
    "COS", "CUMSUM", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "DYNAMIC_UPDATE_SLICE", "ELU",
    "EMBEDDING_LOOKUP", "EQUAL", "EXPAND_DIMS", "EXP", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED",
    "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF", "L2_NORMALIZATION", "L2_POOL_2D",
    "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "LOG_SOFTMAX",
    "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2",
    "PRELU", "QUANTIZE", "READ_VARIABLE", "REDUCE_ALL", "REDUCE_MAX", "REDUCE_MIN", "RELU6", "RELU", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN",
    "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARED_DIFFERENCE",
    "SQUARE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE", "WHILE", "ZEROS_LIKE"
])

# Kinds `edgekit.costmodel.memory.lower` emits that are not builtin names themselves.
_PSEUDO = {"SEPARABLE": ("DEPTHWISE_CONV_2D", "CONV_2D"), "MUL_ADD": ("MUL", "ADD")}


def builtin_ops(kind: str) -> tuple[str, ...]:
    """The builtin op names a lowered op kind stands for."""
    return _PSEUDO.get(kind, tuple(kind.split("+")))


def supported(op: str, runtime: str) -> bool:
    """Whether `runtime` ('litert' or 'tflm') has a kernel for builtin `op`."""
    if op.startswith(("CUSTOM", "FLEX")) or op == "DELEGATE":
        return False
    if runtime == "tflm":
        return op in TFLM_BUILTINS
    return op.isupper()  # LiteRT: every builtin
