"""PyTorch training: datasets, TinyLSTM/TinyGRU, the default recipe, the training loop, checkpoints.

Imports only contract/ (the cell and readout registries, stacking, limits), never codegen/ or host/; the
QAT stage reaches training through ``fit(..., finetune=...)``.
"""
