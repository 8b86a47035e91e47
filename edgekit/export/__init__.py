"""Export: turn a (fitted) Keras model into deployable artefacts (TFLite flatbuffers, MCU sources).

Modules:
    tflite      convert() at a precision (batch 1, static shapes), op list, agreement with Keras
    qat         quantization-aware (and sparsity-preserving) fine-tuning with tfmot
    sparse      tfmot sparsity in runtime-usable layouts, the converter's sparse encoding, who skips zeros
    xnnpack     whether XNNPACK's sparse (NCHW) inference conditions hold for a float model
    flatbuffer  read / edit / write .tflite files (16-byte aligned buffers), op -> Keras layer names
    strip       drop names, signatures and metadata for microcontrollers; where the bytes go
    mcu         TFLite Micro sources: C array, op resolver, arena constant, example main
    writing     all-or-nothing writes of the exported files
"""
