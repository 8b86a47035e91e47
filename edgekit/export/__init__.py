"""Export: turn a (fitted) Keras model into deployable artefacts (TFLite flatbuffers, MCU sources)."""
