"""Speed measurements (`pneumocxr bench`), each beside its yardsticks measured in the same run
(a plain eager PyTorch loop, a large GEMM); they run the training and prediction code itself.

Belongs here: timing. Does not belong here: anything the answers depend on.
"""
