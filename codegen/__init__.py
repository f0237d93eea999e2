"""From a float model to the board's integer model: calibration and quantization, the numpy golden reference,
the C emitter, the model blob, the export directory, and quantization-aware fine-tuning (qat.py).

Imports contract/ and trainer/ (checkpoints, datasets), never host/.
"""
