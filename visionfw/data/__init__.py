"""Images in and out: MATLAB-compatible bicubic, colour conversion, file I/O,
benchmark datasets and the training input pipeline."""
